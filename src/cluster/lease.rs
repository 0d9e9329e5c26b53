//! Leader election on a `coordination.k8s.io/v1` Lease: every replica
//! accepts webhooks, only the Lease holder admits queued Jobs.
//!
//! The guarantees are client-go's:
//! - acquire, renew and take-over are resourceVersion-guarded writes, so two
//!   replicas can never both win one round;
//! - the holder leads only until `renew deadline` after the start of its
//!   last successful renewal ([`Leader::is_leader`] reads the monotonic
//!   clock, so a hung API call cannot extend leadership: every call's
//!   timeout ends at that moment too);
//! - a candidate takes over only after it has seen the same holder and
//!   `renewTime` unchanged for a whole lease duration on its own monotonic
//!   clock — timestamps written by other machines are never compared with
//!   the local clock;
//! - `lease duration > renew deadline`, so the old holder has stopped before
//!   anyone may take over;
//! - a graceful shutdown stops admitting, then releases the Lease so
//!   another replica takes over within one retry period.
//!
//! We keep this small loop instead of `kube-lease-manager` or `kubert`'s
//! lease module: both decide expiry by comparing the Lease's `renewTime`
//! (another machine's wall clock) with the local wall clock, and neither
//! ties "stop admitting" to the renew deadline independently of a hung
//! call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

use super::gate::{KubeError, KubeGate};
use crate::config::LeaderConfig;
use crate::metrics::Metrics;

/// Lease name shared by the replicas.
pub const LEASE_NAME: &str = "orchestrator-scheduler";

/// This replica's identity: `POD_NAME` (set by the Deployment) or host name,
/// pid and a random suffix.
pub fn identity_from_env() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "orchestrator".into());
            format!(
                "{host}-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )
        })
}

/// Leadership of this replica, shared by the Lease loop (writer), the
/// scheduler and the Kube actor (readers) and `GET /api/v1/leader`.
#[derive(Clone, Debug)]
pub struct Leader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identity: String,
    base: Instant,
    /// Nanoseconds after `base` until which this replica leads (0: not).
    until: AtomicU64,
    /// The holder last seen on the Lease (None: nobody or not seen yet).
    holder: Mutex<Option<String>>,
}

impl Leader {
    /// Not leading, as `identity`.
    pub fn new(identity: impl Into<String>) -> Self {
        Leader {
            inner: Arc::new(Inner {
                identity: identity.into(),
                base: Instant::now(),
                until: AtomicU64::new(0),
                holder: Mutex::new(None),
            }),
        }
    }

    /// This replica's identity on the Lease.
    pub fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// Until when this replica leads, if it does now.
    pub fn valid_until(&self) -> Option<Instant> {
        let n = self.inner.until.load(Ordering::SeqCst);
        let until = self.inner.base + Duration::from_nanos(n);
        (n > 0 && Instant::now() < until).then_some(until)
    }

    /// Whether this replica leads now (by the monotonic clock).
    pub fn is_leader(&self) -> bool {
        self.valid_until().is_some()
    }

    /// The holder last seen on the Lease.
    pub fn holder(&self) -> Option<String> {
        self.inner
            .holder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lead_until(&self, until: Instant) {
        let n = until.saturating_duration_since(self.inner.base).as_nanos();
        let n = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        self.inner.until.store(n, Ordering::SeqCst);
    }

    /// Stops leading now.
    pub fn step_down(&self) {
        self.inner.until.store(0, Ordering::SeqCst);
    }

    fn saw_holder(&self, holder: Option<&str>) {
        *self.inner.holder.lock().unwrap_or_else(|p| p.into_inner()) =
            holder.filter(|h| !h.is_empty()).map(str::to_string);
    }
}

/// The part of a Lease a candidate watches for change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: String,
    renew: Option<String>,
    duration: Option<i32>,
}

fn record(spec: &LeaseSpec) -> Record {
    Record {
        holder: spec.holder_identity.clone().unwrap_or_default(),
        renew: spec
            .renew_time
            .as_ref()
            .or(spec.acquire_time.as_ref())
            .map(|t| t.0.to_string()),
        duration: spec.lease_duration_seconds,
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// What a replica does with the Lease it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// It holds the Lease: renew it.
    Renew,
    /// Another holder's Lease has not changed for a whole lease duration
    /// (or nobody holds it): take it over.
    Take,
    /// Another holder's Lease is live: leave it.
    Wait,
}

/// The take-over rule, apart from the API calls: a candidate may take
/// another holder's Lease only once it has seen the same record (holder,
/// renew time, duration) unchanged for that holder's duration — or its own,
/// if longer — on its own monotonic clock.
#[derive(Debug)]
struct Election {
    lease_duration: Duration,
    /// The Lease record last seen and when it was first seen like that
    /// (tokio's clock: the real monotonic clock, or a paused one in tests).
    observed: Option<(Record, tokio::time::Instant)>,
}

impl Election {
    fn new(lease_duration: Duration) -> Self {
        Election {
            lease_duration,
            observed: None,
        }
    }

    /// What `me` does with the Lease `seen` at `now`.
    fn decide(&mut self, seen: &Record, me: &str, now: tokio::time::Instant) -> Decision {
        let first_seen = match &self.observed {
            Some((r, at)) if r == seen => *at,
            _ => {
                self.observed = Some((seen.clone(), now));
                now
            }
        };
        if seen.holder == me {
            return Decision::Renew;
        }
        let theirs = Duration::from_secs(u64::try_from(seen.duration.unwrap_or(0)).unwrap_or(0));
        let wait = theirs.max(self.lease_duration);
        if !seen.holder.is_empty() && now.duration_since(first_seen) < wait {
            return Decision::Wait;
        }
        Decision::Take
    }
}

/// The election loop of one replica.
pub struct Elector {
    api: Api<Lease>,
    gate: KubeGate,
    config: LeaderConfig,
    leader: Leader,
    metrics: Arc<Metrics>,
    election: Election,
}

impl Elector {
    /// An elector for the Lease in `namespace`, calling through `gate`.
    pub fn new(
        gate: KubeGate,
        namespace: &str,
        config: LeaderConfig,
        leader: Leader,
        metrics: Arc<Metrics>,
    ) -> Self {
        Elector {
            api: Api::namespaced(gate.client(), namespace),
            gate,
            election: Election::new(config.lease_duration),
            config,
            leader,
            metrics,
        }
    }

    fn secs(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs_f64().ceil() as i64)
            .unwrap_or(15)
            .max(1)
    }

    /// One round: acquire or renew if allowed. Returns whether the write
    /// succeeded (this replica holds the Lease as of `started`).
    async fn try_acquire_or_renew(&mut self, deadline: Instant) -> Result<bool, KubeError> {
        let api = &self.api;
        let got = self
            .gate
            .once(deadline, "get", || api.get_opt(LEASE_NAME))
            .await?;
        let me = self.leader.identity().to_string();
        let secs = self.secs();
        let Some(mut lease) = got else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            let pp = PostParams::default();
            return match self
                .gate
                .once(deadline, "create", || api.create(&pp, &lease))
                .await
            {
                Ok(_) => Ok(true),
                Err(KubeError::AlreadyExists | KubeError::Conflict(_)) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_default();
        let seen = record(spec);
        self.leader.saw_holder(Some(&seen.holder));
        match self
            .election
            .decide(&seen, &me, tokio::time::Instant::now())
        {
            Decision::Wait => return Ok(false),
            Decision::Renew => {
                spec.renew_time = Some(now());
                spec.lease_duration_seconds = Some(secs);
            }
            Decision::Take => {
                spec.holder_identity = Some(me);
                spec.acquire_time = Some(now());
                spec.renew_time = Some(now());
                spec.lease_duration_seconds = Some(secs);
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        let pp = PostParams::default();
        match self
            .gate
            .once(deadline, "update", || api.replace(LEASE_NAME, &pp, &lease))
            .await
        {
            Ok(_) => Ok(true),
            Err(KubeError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn set_leading(&self, leading: bool) {
        if leading {
            self.leader.saw_holder(Some(self.leader.identity()));
        }
        if self.metrics.set_leader(leading) {
            tracing::info!(identity = %self.leader.identity(), leader = leading, "scheduler lease");
        }
    }

    /// Runs until cancelled; calls `on_change` (with the new value) each
    /// time leadership changes.
    pub async fn run(mut self, on_change: impl Fn(bool)) {
        let mut leading = false;
        // A failing call is logged once, and once more when calls work
        // again (the preflight checks and `/ready` say why meanwhile).
        let mut failing = false;
        self.metrics.set_leader(false);
        loop {
            let started = Instant::now();
            // A holder's calls end when its leadership would; a candidate's
            // within a renew deadline (a slower win would already be void).
            let deadline = self
                .leader
                .valid_until()
                .unwrap_or(started + self.config.renew_deadline);
            let tried = self.try_acquire_or_renew(deadline).await;
            if tried.is_ok() && std::mem::take(&mut failing) {
                tracing::info!("scheduler lease calls work again");
            }
            match tried {
                Ok(true) => {
                    let until = started + self.config.renew_deadline;
                    if Instant::now() < until {
                        self.leader.lead_until(until);
                    }
                }
                Ok(false) => self.leader.step_down(),
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "scheduler lease call failed; retrying quietly until it works");
                    }
                }
            }
            let now_leading = self.leader.is_leader();
            if now_leading != leading {
                leading = now_leading;
                self.set_leading(leading);
                on_change(leading);
            }
            // Wake at the next retry, or when leadership would lapse.
            let mut next = started + self.config.retry_period;
            if let Some(until) = self.leader.valid_until() {
                next = next.min(until);
            }
            tokio::time::sleep_until(next.max(Instant::now()).into()).await;
            if leading && !self.leader.is_leader() {
                leading = false;
                self.set_leading(false);
                on_change(false);
            }
        }
    }

    /// Gives the Lease up if this replica holds it (graceful shutdown): stops
    /// leading first, then clears the holder so another replica takes over
    /// at once.
    pub async fn release(
        gate: &KubeGate,
        namespace: &str,
        leader: &Leader,
        metrics: &Metrics,
        within: Duration,
    ) {
        leader.step_down();
        metrics.set_leader(false);
        let api: Api<Lease> = Api::namespaced(gate.client(), namespace);
        let deadline = Instant::now() + within;
        let Ok(Some(mut lease)) = gate.once(deadline, "get", || api.get_opt(LEASE_NAME)).await
        else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(leader.identity()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        let pp = PostParams::default();
        match gate
            .once(deadline, "update", || api.replace(LEASE_NAME, &pp, &lease))
            .await
        {
            Ok(_) => tracing::info!("scheduler lease released"),
            Err(e) => tracing::warn!(error = %e, "could not release the scheduler lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renew: &str, duration: i32) -> Record {
        Record {
            holder: holder.into(),
            renew: Some(renew.into()),
            duration: Some(duration),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_candidate_takes_over_only_after_a_whole_unchanged_lease_duration() {
        let mut e = Election::new(Duration::from_secs(15));
        let other = lease("b", "t1", 15);
        assert_eq!(
            e.decide(&other, "a", tokio::time::Instant::now()),
            Decision::Wait
        );
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(
            e.decide(&other, "a", tokio::time::Instant::now()),
            Decision::Wait
        );
        // The holder renews: the clock starts again from this sighting.
        let renewed = lease("b", "t2", 15);
        assert_eq!(
            e.decide(&renewed, "a", tokio::time::Instant::now()),
            Decision::Wait
        );
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(
            e.decide(&renewed, "a", tokio::time::Instant::now()),
            Decision::Wait
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            e.decide(&renewed, "a", tokio::time::Instant::now()),
            Decision::Take
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_duration_on_the_lease_is_honoured_and_a_released_one_is_free() {
        let mut e = Election::new(Duration::from_secs(15));
        let long = lease("b", "t1", 60);
        assert_eq!(
            e.decide(&long, "a", tokio::time::Instant::now()),
            Decision::Wait
        );
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(
            e.decide(&long, "a", tokio::time::Instant::now()),
            Decision::Wait
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            e.decide(&long, "a", tokio::time::Instant::now()),
            Decision::Take
        );
        // Released (no holder): free at once; our own: renewed.
        let mut e = Election::new(Duration::from_secs(15));
        assert_eq!(
            e.decide(&lease("", "t3", 1), "a", tokio::time::Instant::now()),
            Decision::Take
        );
        assert_eq!(
            e.decide(&lease("a", "t4", 15), "a", tokio::time::Instant::now()),
            Decision::Renew
        );
    }
}
