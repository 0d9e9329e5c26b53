//! Signed callbacks of a task's state changes to its `callback_url` (API
//! and PM tasks).
//!
//! ```text
//!  JobWatcher ─ changed(record) ─▶ lane of the Job (one delivery at a time)
//!                                     │ read the newest record from the store
//!                                     │ owed events: its path queued → running → final,
//!                                     │   after the last acknowledged state
//!                                     │ POST the first one (signed), until a 2xx
//!                                     ▼
//!                  mark on the Job: orchestrator.dev/callback-state = acknowledged state
//! ```
//!
//! **Which events.** A Job's events follow its path: `queued` (always),
//! `running` (if it ever started: it has a start time, or is running or
//! finished), then its final state (`succeeded`, `failed`, `timed_out` or
//! `cancelled`) once it has one. The path is read off the Job's newest
//! record at each turn, so a Job that went queued → running → succeeded
//! while an earlier delivery was still retrying is owed `running` and then
//! `succeeded`, each in turn; states are never skipped backwards and the
//! final state is always delivered. (A Job cancelled while suspended again
//! after running may have lost its start time: it is then owed `queued` →
//! `cancelled`.)
//!
//! **Guarantees.** At least once, in order, per Job: one lane per Job sends
//! one event at a time, and the next only after the receiver acknowledged
//! the previous one with a `2xx`. Failures are retried with exponential
//! backoff (1 s doubling to 60 s; a `Retry-After` of the receiver is
//! honoured) until `REPORT_GIVE_UP_SECONDS`, then given up (counted,
//! logged; the periodic sweep tries a Job again while it is live or ended
//! within that time). Each acknowledged state is marked on the Job, so a
//! restarted or new leader resumes after it; the event being delivered when
//! a leader stopped is sent again (the receiver deduplicates on `event_id`).
//! Only the Lease holder delivers.
//!
//! **No SSRF.** The URL's host was checked against `CALLBACK_ALLOWED_HOSTS`
//! when the task was accepted, and is checked again before each attempt. A
//! host name is resolved by [`GuardedResolver`], which drops every address
//! that is loopback, private, link-local, CGNAT, multicast or otherwise
//! internal (IPv4-mapped forms included) unless it is inside a listed
//! address or CIDR, and the connection goes only to the addresses it kept —
//! no check-then-connect race. No proxy, no redirects, 10 s per attempt,
//! at most 64 KiB of an answer read. A URL refused this way is dropped for
//! good. Logs name the host only, never the URL (it may carry a token) nor
//! the secret.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::cluster::jobs::Jobs;
use crate::cluster::jobspec::ANNOTATION_CALLBACK_STATE;
use crate::cluster::lease::Leader;
use crate::config::callback::{canonical, CallbackConfig};
use crate::config::Secret;
use crate::job::record::time_text;
use crate::job::{JobRecord, JobState};
use crate::metrics::reports::ReportMetrics;

/// The metric target of callbacks.
const TARGET: &str = "callback";
/// First wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts of one event (without `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Budget of one attempt (connect, send, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an answer read (the rest is dropped with the connection).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Attempts in flight at once, over all Jobs.
const MAX_IN_FLIGHT: usize = 64;
/// Bounded memory: a map past this many entries is cleared (what it held
/// is on the Jobs' marks).
const MEMORY: usize = 10_000;

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Orchestrator-Signature";
/// The event id header (the body's `event_id`).
pub const EVENT_ID_HEADER: &str = "X-Orchestrator-Event-Id";

/// A callback's order in a Job's path: queued, running, final.
fn rank(state: JobState) -> u8 {
    match state {
        JobState::Queued => 0,
        JobState::Running => 1,
        _ => 2,
    }
}

fn rank_of(text: Option<&str>) -> Option<u8> {
    text.and_then(JobState::parse).map(rank)
}

/// The states a Job's callbacks report, in order (see the module docs).
pub fn path(record: &JobRecord) -> Vec<JobState> {
    let mut p = vec![JobState::Queued];
    let ran = record.started_at.is_some()
        || record.state == JobState::Running
        || record.state.is_finished();
    if ran {
        p.push(JobState::Running);
    }
    if !record.state.is_live() {
        p.push(record.state);
    }
    p
}

/// The next event a Job is owed after the acknowledged state `acked`: the
/// state and the one before it on the path.
fn next_event(record: &JobRecord, acked: Option<u8>) -> Option<(JobState, Option<JobState>)> {
    let p = path(record);
    let i = p.iter().position(|s| acked.is_none_or(|a| rank(*s) > a))?;
    Some((p[i], i.checked_sub(1).map(|j| p[j])))
}

/// The task's id as its source knows it: a PM task's id, an API task's
/// `Idempotency-Key`; `None` otherwise.
fn task_id(record: &JobRecord) -> Option<String> {
    let key = record.dedup_key.as_deref()?;
    if let Some(id) = key.strip_prefix("pm-agent:task:") {
        return Some(id.to_string());
    }
    // `<source>:idempotency:<kind>-token:<hash>:<key>`
    let parts: Vec<&str> = key.splitn(5, ':').collect();
    match parts.as_slice() {
        [_, "idempotency", _, _, k] => Some((*k).to_string()),
        _ => None,
    }
}

/// The body of the callback of `state` (see the README's Callbacks).
pub fn body(
    record: &JobRecord,
    state: JobState,
    previous: Option<JobState>,
    now: DateTime<Utc>,
) -> Value {
    let time = |t: Option<&DateTime<Utc>>| t.map(time_text);
    let cancelled = record
        .cancelled_at
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
    let succeeded = match state {
        JobState::Queued | JobState::Running => Value::Null,
        s => json!(s == JobState::Succeeded),
    };
    let reason = if state.is_live() {
        None
    } else {
        record
            .conditions
            .iter()
            .filter(|c| c.status == "True" && matches!(c.kind.as_str(), "Complete" | "Failed"))
            .find_map(|c| c.reason.clone())
    };
    json!({
        "event_id": format!("{}:{}", record.name, state.as_str()),
        "job": &*record.name,
        "task_id": task_id(record),
        "state": state.as_str(),
        "previous_state": previous.map(JobState::as_str),
        "timestamps": {
            "created": time(record.created_at.as_ref()),
            "started": time(record.started_at.as_ref()),
            "finished": time(record.completed_at.as_ref()),
            "cancelled": time(cancelled.as_ref()),
        },
        "outcome": {"succeeded": succeeded, "reason": reason},
        "sent_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

/// The `X-Orchestrator-Signature` value of `body` sent at unix time `t`.
pub fn signature(secret: &Secret, t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this never fails.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose()) {
        Ok(m) => m,
        Err(_) => return format!("t={t},v1="),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether an address is internal: loopback, unspecified, private,
/// link-local, CGNAT, multicast, broadcast, reserved or documentation
/// (IPv4-mapped and -compatible IPv6 forms as their IPv4 address).
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (64..128).contains(&b))
        || ip.is_multicast()
        || ip.is_broadcast()
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || ip.is_documentation()
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = || {
        let o = ip.octets();
        Ipv4Addr::new(o[12], o[13], o[14], o[15])
    };
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || ip.is_multicast()
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        // ::a.b.c.d (IPv4-compatible, deprecated): internal as a whole.
        || s[..6].iter().all(|x| *x == 0)
        // NAT64 (64:ff9b::/96): as the IPv4 address it carries.
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && internal_v4(embedded_v4()))
}

/// Whether a callback may connect to `ip`: an address inside a listed
/// address or CIDR always; else only a public one.
pub fn address_allowed(ip: IpAddr, nets: &[IpNet]) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip)) || !is_internal(ip)
}

/// Every address of a name was refused (none public, none listed).
#[derive(Debug)]
pub struct AddressRefused;

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "every address of the callback host is internal and not on CALLBACK_ALLOWED_HOSTS",
        )
    }
}

impl std::error::Error for AddressRefused {}

/// Resolves callback hosts, keeping only the addresses a callback may
/// connect to: the client connects to nothing else.
pub struct GuardedResolver {
    nets: Arc<Vec<IpNet>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let nets = self.nets.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found.filter(|a| address_allowed(a.ip(), &nets)).collect();
            if kept.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether the SSRF guard refused a request's addresses.
fn refused_by_guard(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<AddressRefused>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// One attempt's failure.
enum Failure {
    /// Refused for good (the URL or its addresses are not allowed).
    Refused(&'static str),
    /// Try again: after the receiver's `Retry-After` if it gave one.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
}

struct Inner {
    config: CallbackConfig,
    secret: Secret,
    http: reqwest::Client,
    jobs: Jobs,
    leader: Leader,
    metrics: ReportMetrics,
    give_up: Duration,
    in_flight: tokio::sync::Semaphore,
    /// Jobs whose lane runs → whether it was asked again meanwhile.
    lanes: Mutex<HashMap<Arc<str>, bool>>,
    /// The acknowledged state's rank per Job, until the Job's mark shows it.
    acked: Mutex<HashMap<Arc<str>, u8>>,
    /// Jobs whose callback was refused for good.
    dropped: Mutex<HashSet<Arc<str>>>,
}

/// Delivers callbacks (clones share their lanes).
#[derive(Clone)]
pub struct CallbackReporter {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The host of a URL, for logs (never the whole URL: it may carry a token).
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "(unparsable)".into())
}

impl CallbackReporter {
    /// The reporter, if callbacks are configured (`CALLBACK_SECRET`).
    pub fn new(
        config: &CallbackConfig,
        jobs: Jobs,
        leader: Leader,
        metrics: ReportMetrics,
        give_up: Duration,
    ) -> Option<CallbackReporter> {
        let secret = config.secret.clone()?;
        let resolver = GuardedResolver {
            nets: Arc::new(config.nets.clone()),
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("orchestrator/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(resolver))
            .build();
        let http = match http {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "could not set up the callback HTTP client; no callbacks");
                return None;
            }
        };
        tracing::info!(
            names = config.names.len(),
            addresses = config.nets.len(),
            "delivering task callbacks"
        );
        Some(CallbackReporter {
            inner: Arc::new(Inner {
                config: config.clone(),
                secret,
                http,
                jobs,
                leader,
                metrics,
                give_up,
                in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
                lanes: Mutex::default(),
                acked: Mutex::default(),
                dropped: Mutex::default(),
            }),
        })
    }

    /// The rank of the last state acknowledged: this process's newer one,
    /// else the Job's mark.
    fn acked(&self, record: &JobRecord) -> Option<u8> {
        let stored = rank_of(record.callback_mark.as_deref());
        let mine = lock(&self.inner.acked).get(&record.name).copied();
        stored.max(mine)
    }

    /// Whether a record is owed a callback.
    pub fn owes(&self, record: &JobRecord) -> bool {
        record.callback_url.is_some()
            && !lock(&self.inner.dropped).contains(&record.name)
            && next_event(record, self.acked(record)).is_some()
    }

    /// The Job changed: queue a callback if it is owed one (never waits).
    pub fn changed(&self, record: &JobRecord) {
        if self.owes(record) {
            self.enqueue(&record.name);
        }
    }

    /// Queues every given Job still owed a callback (on taking the Lease,
    /// and periodically): those live, and those that ended within the last
    /// `REPORT_GIVE_UP_SECONDS`; the count queued.
    pub fn sweep(&self, records: impl IntoIterator<Item = Arc<JobRecord>>) -> usize {
        if !self.inner.leader.is_leader() {
            return 0;
        }
        let horizon =
            Utc::now() - chrono::Duration::from_std(self.inner.give_up).unwrap_or_default();
        let mut n = 0;
        for r in records {
            let recent = r.state.is_live()
                || r.completed_at.is_some_and(|t| t > horizon)
                || r.cancelled_at.is_some_and(|t| t > horizon.timestamp());
            if recent && self.owes(&r) {
                self.enqueue(&r.name);
                n += 1;
            }
        }
        n
    }

    fn enqueue(&self, name: &Arc<str>) {
        if !self.inner.leader.is_leader() {
            return;
        }
        let start = {
            let mut lanes = lock(&self.inner.lanes);
            match lanes.get_mut(name) {
                Some(again) => {
                    *again = true;
                    false
                }
                None => {
                    lanes.insert(name.clone(), false);
                    true
                }
            }
        };
        if start {
            let me = self.clone();
            let name = name.clone();
            tokio::spawn(async move { me.run_lane(name).await });
        }
    }

    /// Delivers one Job's owed events in order until none is owed.
    async fn run_lane(self, name: Arc<str>) {
        loop {
            lock(&self.inner.lanes).insert(name.clone(), false);
            // A panic in one delivery must not strand the lane.
            let me = self.clone();
            let job = name.clone();
            if let Err(e) = tokio::spawn(async move { me.deliver_owed(job).await }).await {
                tracing::error!(job = %name, error = %e, "callback panicked; dropped");
                self.inner.metrics.report(TARGET, "dropped");
            }
            let mut lanes = lock(&self.inner.lanes);
            if lanes.get(&name).copied() == Some(true) {
                continue;
            }
            lanes.remove(&name);
            return;
        }
    }

    /// Sends the Job's owed events one after the other, each until it is
    /// acknowledged; stops when none is owed, on losing the Lease, on a
    /// refusal, or when one is given up.
    async fn deliver_owed(&self, name: Arc<str>) {
        let mut current: Option<(JobState, Instant, Duration)> = None;
        loop {
            if !self.inner.leader.is_leader() {
                return;
            }
            // (A Job deleted right after its last change is still owed it.)
            let Some((record, _)) = self.inner.jobs.stored_or_deleted(&name) else {
                return;
            };
            let Some(url) = record.callback_url.as_deref() else {
                return;
            };
            if lock(&self.inner.dropped).contains(&name) {
                return;
            }
            let Some((state, previous)) = next_event(&record, self.acked(&record)) else {
                return;
            };
            // A new event starts its own clock and backoff.
            let (started, backoff) = match current {
                Some((s, started, backoff)) if s == state => (started, backoff),
                _ => (Instant::now(), FIRST_BACKOFF),
            };
            let now = Utc::now();
            let body = body(&record, state, previous, now);
            let wait = match self.attempt(url, &body, now.timestamp()).await {
                Ok(()) => {
                    self.inner.metrics.report(TARGET, "reported");
                    self.acknowledged(&name, state).await;
                    current = None;
                    continue;
                }
                Err(Failure::Refused(why)) => {
                    tracing::warn!(job = %name, host = %host_of(url), reason = why, "callback refused; dropped");
                    self.inner.metrics.report(TARGET, "dropped");
                    let mut dropped = lock(&self.inner.dropped);
                    if dropped.len() >= MEMORY {
                        dropped.clear();
                    }
                    dropped.insert(name.clone());
                    return;
                }
                Err(Failure::Retry { why, retry_after }) => {
                    let wait = retry_after.unwrap_or(backoff);
                    tracing::info!(job = %name, host = %host_of(url), state = state.as_str(), error = %why, retry_in_s = wait.as_secs_f64(), "callback failed; retrying");
                    current = Some((state, started, (backoff * 2).min(MAX_BACKOFF)));
                    wait
                }
            };
            if started.elapsed() + wait > self.inner.give_up {
                tracing::warn!(job = %name, host = %host_of(url), state = state.as_str(), after_s = started.elapsed().as_secs(), "callback given up");
                self.inner.metrics.report(TARGET, "given_up");
                return;
            }
            self.inner.metrics.report(TARGET, "retried");
            tokio::time::sleep(wait).await;
        }
    }

    /// One signed POST of `body` to `url`.
    async fn attempt(&self, url: &str, body: &Value, t: i64) -> Result<(), Failure> {
        // Checked when the task was accepted; again here (the annotation
        // may be older than the configuration).
        let url = self
            .inner
            .config
            .check_url(url)
            .map_err(|_| Failure::Refused("the URL is not allowed (CALLBACK_ALLOWED_HOSTS)"))?;
        // An address literal is not resolved: the allowlist alone decides
        // (check_url required it to be listed).
        let bytes = serde_json::to_vec(body).map_err(|e| Failure::Retry {
            why: e.to_string(),
            retry_after: None,
        })?;
        let event_id = body["event_id"].as_str().unwrap_or_default().to_string();
        let _permit = self
            .inner
            .in_flight
            .acquire()
            .await
            .map_err(|_| Failure::Retry {
                why: "shutting down".into(),
                retry_after: None,
            })?;
        let sent = self
            .inner
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(EVENT_ID_HEADER, event_id)
            .header(SIGNATURE_HEADER, signature(&self.inner.secret, t, &bytes))
            .body(bytes)
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) if refused_by_guard(&e) => {
                return Err(Failure::Refused(
                    "the host resolves only to internal addresses",
                ))
            }
            Err(e) => {
                let why = if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "could not connect".to_string()
                } else {
                    "request failed".to_string()
                };
                return Err(Failure::Retry {
                    why,
                    retry_after: None,
                });
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        // Read a little of the answer (keeps the connection reusable),
        // never more than MAX_ANSWER_BYTES.
        let mut read = 0usize;
        while read < MAX_ANSWER_BYTES {
            match resp.chunk().await {
                Ok(Some(c)) => read += c.len(),
                _ => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Retry {
                why: format!("answered {}", status.as_u16()),
                retry_after,
            })
        }
    }

    /// The receiver acknowledged `state`: remember it, and mark it on the Job.
    async fn acknowledged(&self, name: &Arc<str>, state: JobState) {
        {
            let mut acked = lock(&self.inner.acked);
            if acked.len() >= MEMORY {
                acked.clear();
            }
            let r = acked.entry(name.clone()).or_insert(rank(state));
            *r = (*r).max(rank(state));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let wrote = self
            .inner
            .jobs
            .annotate(
                name.to_string(),
                vec![(
                    ANNOTATION_CALLBACK_STATE.to_string(),
                    Some(state.as_str().to_string()),
                )],
                // Never move the mark back (a late write of an old leader).
                |current, new| {
                    let new = new.first().and_then(|(_, v)| rank_of(v.as_deref()));
                    new > rank_of(current)
                },
                deadline,
            )
            .await;
        if let Err(e) = wrote {
            tracing::info!(job = %name, error = %e, "could not mark the callback as acknowledged; kept in memory");
        }
    }
}

/// A `Retry-After` value: seconds, or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ConditionView;

    fn record(state: JobState) -> JobRecord {
        JobRecord {
            uid: None,
            name: "pm-agent-implement-abc".into(),
            namespace: "default".into(),
            rv: 1,
            state,
            created: 1_700_000_000,
            created_at: DateTime::from_timestamp(1_700_000_000, 0),
            source: Some("pm-agent".into()),
            kind: None,
            repository: None,
            repository_name: None,
            priority: 0,
            concurrency_key: None,
            dedup_key: Some("pm-agent:task:42".into()),
            url: None,
            cancelled_at: None,
            started_at: None,
            completed_at: None,
            conditions: Vec::new(),
            active: 0,
            succeeded: 0,
            failed: 0,
            task: None,
            report_mark: None,
            callback_url: Some("https://hooks.example.com/cb".into()),
            callback_mark: None,
            kueue: None,
        }
    }

    #[test]
    fn the_path_is_queued_running_final_and_the_next_event_follows_the_mark() {
        let q = record(JobState::Queued);
        assert_eq!(path(&q), vec![JobState::Queued]);
        assert_eq!(next_event(&q, None), Some((JobState::Queued, None)));
        assert_eq!(next_event(&q, Some(0)), None);
        let mut done = record(JobState::Succeeded);
        done.started_at = DateTime::from_timestamp(1_700_000_010, 0);
        assert_eq!(
            path(&done),
            vec![JobState::Queued, JobState::Running, JobState::Succeeded]
        );
        assert_eq!(
            next_event(&done, Some(0)),
            Some((JobState::Running, Some(JobState::Queued)))
        );
        assert_eq!(
            next_event(&done, Some(1)),
            Some((JobState::Succeeded, Some(JobState::Running)))
        );
        assert_eq!(next_event(&done, Some(2)), None);
        // Cancelled while queued: no running.
        let c = record(JobState::Cancelled);
        assert_eq!(path(&c), vec![JobState::Queued, JobState::Cancelled]);
        // Acknowledged running, then cancelled without a start time: the
        // final state still comes, nothing goes back.
        assert_eq!(
            next_event(&c, Some(1)),
            Some((JobState::Cancelled, Some(JobState::Queued)))
        );
    }

    #[test]
    fn the_body_carries_the_event_the_task_id_and_the_outcome() {
        let mut r = record(JobState::Failed);
        r.started_at = DateTime::from_timestamp(1_700_000_010, 0);
        r.completed_at = DateTime::from_timestamp(1_700_000_070, 0);
        r.conditions.push(ConditionView {
            kind: "Failed".into(),
            status: "True".into(),
            reason: Some("BackoffLimitExceeded".into()),
            message: None,
            last_transition_time: None,
        });
        let now = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let b = body(&r, JobState::Failed, Some(JobState::Running), now);
        assert_eq!(b["event_id"], "pm-agent-implement-abc:failed");
        assert_eq!(b["task_id"], "42");
        assert_eq!(b["previous_state"], "running");
        assert_eq!(b["timestamps"]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(b["timestamps"]["finished"], "2023-11-14T22:14:30Z");
        assert_eq!(b["timestamps"]["cancelled"], Value::Null);
        assert_eq!(b["outcome"]["succeeded"], false);
        assert_eq!(b["outcome"]["reason"], "BackoffLimitExceeded");
        assert_eq!(b["sent_at"], "2023-11-14T22:15:00Z");
        let b = body(&r, JobState::Running, Some(JobState::Queued), now);
        assert_eq!(b["outcome"]["succeeded"], Value::Null);
        assert_eq!(b["outcome"]["reason"], Value::Null);
        let mut api = record(JobState::Queued);
        api.dedup_key = Some("cli:idempotency:cli-token:0123abcd:key:with:colons".into());
        assert_eq!(task_id(&api).as_deref(), Some("key:with:colons"));
        api.dedup_key = Some("cli:request:5f0c".into());
        assert_eq!(task_id(&api), None);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_and_the_body() {
        let secret = Secret::new("a-callback-secret-0123");
        let sig = signature(&secret, 1_700_000_000, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a-callback-secret-0123").unwrap();
        mac.update(b"1700000000.{}");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("t=1700000000,v1={want}"));
    }

    #[test]
    fn internal_addresses_are_refused_unless_listed() {
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "10.3.4.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_internal(ip), "{ip}");
            assert!(!address_allowed(ip, &[]), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "172.32.0.1",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_internal(ip), "{ip}");
            assert!(address_allowed(ip, &[]), "{ip}");
        }
        let nets: Vec<IpNet> = vec![
            "10.1.0.0/16".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        assert!(address_allowed("10.1.2.3".parse().unwrap(), &nets));
        assert!(address_allowed("::ffff:127.0.0.1".parse().unwrap(), &nets));
        assert!(!address_allowed("10.2.0.1".parse().unwrap(), &nets));
        assert!(!address_allowed("::1".parse().unwrap(), &nets));
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_only_to_internal_addresses() {
        use reqwest::dns::Resolve;
        let guard = GuardedResolver {
            nets: Arc::new(Vec::new()),
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let e = guard.resolve(name).await.err().expect("refused");
        assert!(e.is::<AddressRefused>());
        let guard = GuardedResolver {
            nets: Arc::new(vec![
                "127.0.0.0/8".parse().unwrap(),
                "::1/128".parse().unwrap(),
            ]),
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = guard.resolve(name).await.expect("kept").collect();
        assert!(!addrs.is_empty());
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
