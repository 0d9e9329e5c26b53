//! Fault injection and request statistics (simulator-only; served under
//! `/_sim/`, outside every Kubernetes path).
//!
//! `GET /_sim/faults` shows the active faults, `PUT /_sim/faults` replaces
//! them with the JSON body below (absent fields are off), `DELETE
//! /_sim/faults` clears them, `POST /_sim/compact` drops the watch history,
//! `GET /_sim/stats` reports request counts per verb/resource/status, the
//! requests received and not yet answered (`in_flight`, per verb/resource),
//! the `ERROR` events sent inside 200 streams (`stream_errors`, per
//! verb/resource/code: a watch from a compacted version is a 200 whose
//! one event is a 410) and the number of open watches. A spec that does not validate (a rate outside
//! [0, 1], a non-error status, an unknown field, a negative or zero duration)
//! is answered `400 {"error": "..."}` and changes nothing.
//!
//! How clients see each fault: latency delays the answer (watches: the start
//! of the stream), `latency_rules` add latency to matching requests only; an error rule answers with a `Status` body of the chosen
//! code (429 and 503 with `Retry-After`); `watch_close_after_seconds` ends
//! every watch stream — also those already open — that long after it opened,
//! as the API server's own watch timeout does; after a compaction a watch or
//! `continue` token from an older resourceVersion gets 410 `Expired`;
//! `down_for_seconds` answers every Kubernetes request (discovery included)
//! with 503 until the period ends.
//!
//! ```json
//! {
//!   "latency_ms": 50, "jitter_ms": 20,
//!   "latency_rules": [{"verb": "update", "resource": "leases", "ms": 12000}],
//!   "errors": [{"verb": "create", "resource": "jobs", "rate": 0.5, "status": 503, "retry_after": 1}],
//!   "watch_close_after_seconds": 5,
//!   "down_for_seconds": 10,
//!   "compact": true
//! }
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;

/// One error-rate rule: requests matching verb and resource fail with
/// `status` with probability `rate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`); absent or `*` matches all.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource plural (`jobs`, `pods`, …); absent or `*` matches all.
    #[serde(default)]
    pub resource: Option<String>,
    /// Probability in [0, 1].
    pub rate: f64,
    /// HTTP status to answer: 429, 500, 503 or 504 are typical.
    #[serde(default = "default_status")]
    pub status: u16,
    /// `Retry-After` seconds (429 and 503 default to 1).
    #[serde(default)]
    pub retry_after: Option<u64>,
}

/// Extra latency for the requests matching verb and resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyRule {
    /// Kubernetes verb; absent or `*` matches all.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource plural; absent or `*` matches all.
    #[serde(default)]
    pub resource: Option<String>,
    /// Added to each matching request, in milliseconds.
    pub ms: u64,
}

fn matches(rule_verb: Option<&str>, rule_res: Option<&str>, verb: &str, resource: &str) -> bool {
    rule_verb.is_none_or(|v| v == "*" || v == verb)
        && rule_res.is_none_or(|x| x == "*" || x == resource)
}

fn default_status() -> u16 {
    503
}

/// The fault configuration, as set by flags or `PUT /_sim/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Added to every Kubernetes request, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Uniform random extra latency in [0, jitter_ms].
    #[serde(default)]
    pub jitter_ms: u64,
    /// Latency added to matching requests only (on top of `latency_ms`).
    #[serde(default)]
    pub latency_rules: Vec<LatencyRule>,
    #[serde(default)]
    pub errors: Vec<ErrorRule>,
    /// Close every watch stream this many seconds after it opened.
    #[serde(default)]
    pub watch_close_after_seconds: Option<f64>,
    /// Answer every Kubernetes request with 503 for this many seconds from now.
    #[serde(default)]
    pub down_for_seconds: Option<f64>,
    /// One-shot: drop the watch history now (older resourceVersions get 410).
    #[serde(default)]
    pub compact: bool,
}

impl FaultSpec {
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.latency_rules.iter().enumerate() {
            if r.ms as f64 > MAX_SECONDS * 1000.0 {
                return Err(format!(
                    "latency_rules[{i}].ms must be at most {} ms",
                    MAX_SECONDS * 1000.0
                ));
            }
        }
        for (i, r) in self.errors.iter().enumerate() {
            if !(0.0..=1.0).contains(&r.rate) {
                return Err(format!("errors[{i}].rate must be within 0 and 1"));
            }
            if !(400..=599).contains(&r.status) {
                return Err(format!(
                    "errors[{i}].status must be an HTTP error status (400-599)"
                ));
            }
        }
        if self
            .watch_close_after_seconds
            .is_some_and(|s| !s.is_finite() || s <= 0.0 || s > MAX_SECONDS)
        {
            return Err(format!(
                "watch_close_after_seconds must be a positive number of seconds up to {MAX_SECONDS}"
            ));
        }
        if self
            .down_for_seconds
            .is_some_and(|s| !s.is_finite() || !(0.0..=MAX_SECONDS).contains(&s))
        {
            return Err(format!(
                "down_for_seconds must be a non-negative number of seconds up to {MAX_SECONDS}"
            ));
        }
        Ok(())
    }
}

/// Largest duration a fault may name (one day): keeps `Duration` arithmetic
/// far from overflow.
const MAX_SECONDS: f64 = 86_400.0;

#[derive(Default)]
struct State {
    spec: FaultSpec,
    down_until: Option<Instant>,
    /// (verb, resource, code) → count.
    counts: BTreeMap<(String, String, u16), u64>,
    /// (verb, resource) → requests received and not yet answered.
    in_flight: BTreeMap<(String, String), u64>,
    /// (verb, resource, code) → 200 streams that carried an `ERROR` event
    /// of that code (a watch from a compacted resourceVersion: 410).
    stream_errors: BTreeMap<(String, String, u16), u64>,
}

/// A request being served: counted in `in_flight` until [`InFlight::done`]
/// counts its answer (or until dropped, if the client went away first).
pub struct InFlight<'a> {
    faults: &'a Faults,
    key: Option<(String, String)>,
}

impl InFlight<'_> {
    /// Counts the answer, with its status, in place of the request in flight.
    pub fn done(mut self, code: u16) {
        if let Some((verb, resource)) = self.key.take() {
            let mut s = self.faults.lock();
            s.end_flight(&verb, &resource);
            *s.counts.entry((verb, resource, code)).or_default() += 1;
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some((verb, resource)) = self.key.take() {
            self.faults.lock().end_flight(&verb, &resource);
        }
    }
}

impl State {
    fn end_flight(&mut self, verb: &str, resource: &str) {
        let key = (verb.to_string(), resource.to_string());
        if let Some(n) = self.in_flight.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&key);
            }
        }
    }
}

/// Active faults and request counters, shared by all workers.
pub struct Faults {
    state: Mutex<State>,
    /// The current `watch_close_after_seconds`, so open watches follow changes.
    watch_close: tokio::sync::watch::Sender<Option<Duration>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Mutex::default(),
            watch_close: tokio::sync::watch::Sender::new(None),
        }
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the active faults. Returns whether a compaction was asked for.
    pub fn set(&self, spec: FaultSpec) -> bool {
        let mut s = self.lock();
        s.down_until = spec
            .down_for_seconds
            .and_then(|d| Duration::try_from_secs_f64(d).ok())
            .and_then(|d| Instant::now().checked_add(d));
        let compact = spec.compact;
        let close = spec
            .watch_close_after_seconds
            .and_then(|d| Duration::try_from_secs_f64(d).ok());
        self.watch_close
            .send_if_modified(|c| std::mem::replace(c, close) != close);
        s.spec = FaultSpec {
            compact: false,
            ..spec
        };
        compact
    }

    /// The active faults, with the remaining down time.
    pub fn show(&self) -> Value {
        let s = self.lock();
        let mut v = serde_json::to_value(&s.spec).unwrap_or(json!({}));
        let remaining = s
            .down_until
            .map(|t| t.saturating_duration_since(Instant::now()).as_secs_f64())
            .filter(|r| *r > 0.0);
        v["down_for_seconds"] = json!(remaining);
        v
    }

    /// How long after opening a watch stream is closed (`None`: not closed).
    pub fn watch_close_after(&self) -> Option<Duration> {
        *self.watch_close.borrow()
    }

    /// Follows `watch_close_after`, for watches already open when it changes.
    pub fn watch_close_changes(&self) -> tokio::sync::watch::Receiver<Option<Duration>> {
        self.watch_close.subscribe()
    }

    /// Decides the fate of one request: a delay to apply, then maybe an error.
    pub fn decide(&self, verb: &str, resource: &str) -> (Duration, Option<ApiError>) {
        let s = self.lock();
        let mut delay = Duration::from_millis(s.spec.latency_ms);
        if s.spec.jitter_ms > 0 {
            delay += Duration::from_millis(rand::random_range(0..=s.spec.jitter_ms));
        }
        for r in &s.spec.latency_rules {
            if matches(r.verb.as_deref(), r.resource.as_deref(), verb, resource) {
                delay += Duration::from_millis(r.ms);
            }
        }
        if s.down_until.is_some_and(|t| Instant::now() < t) {
            let mut e = ApiError::service_unavailable("the API server is down (simulated fault)");
            e.retry_after = None;
            return (Duration::ZERO, Some(e));
        }
        for r in &s.spec.errors {
            if matches(r.verb.as_deref(), r.resource.as_deref(), verb, resource)
                && rand::random::<f64>() < r.rate
            {
                return (delay, Some(ApiError::injected(r.status, r.retry_after)));
            }
        }
        (delay, None)
    }

    /// Counts a request as in flight until it is answered.
    pub fn begin(&self, verb: &str, resource: &str) -> InFlight<'_> {
        let key = (verb.to_string(), resource.to_string());
        *self.lock().in_flight.entry(key.clone()).or_default() += 1;
        InFlight {
            faults: self,
            key: Some(key),
        }
    }

    /// Counts one answered request.
    pub fn record(&self, verb: &str, resource: &str, code: u16) {
        *self
            .lock()
            .counts
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default() += 1;
    }

    /// Counts one `ERROR` event of status `code` in a 200 stream (the
    /// request itself is counted with its HTTP status, 200).
    pub fn record_stream_error(&self, verb: &str, resource: &str, code: u16) {
        *self
            .lock()
            .stream_errors
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default() += 1;
    }

    /// `ERROR` events sent in 200 streams, as a JSON array like `counts`.
    pub fn stream_errors(&self) -> Value {
        let s = self.lock();
        s.stream_errors
            .iter()
            .map(|((verb, res, code), n)| {
                json!({"verb": verb, "resource": res, "code": code, "count": n})
            })
            .collect()
    }

    /// Request counts as a JSON array.
    pub fn counts(&self) -> Value {
        self.counts_and_in_flight().0
    }

    /// Answered request counts and the requests in flight (both JSON
    /// arrays), taken together: a request is in exactly one of them.
    pub fn counts_and_in_flight(&self) -> (Value, Value) {
        let s = self.lock();
        let counts = s
            .counts
            .iter()
            .map(|((verb, res, code), n)| {
                json!({"verb": verb, "resource": res, "code": code, "count": n})
            })
            .collect();
        let in_flight = s
            .in_flight
            .iter()
            .map(|((verb, res), n)| json!({"verb": verb, "resource": res, "count": n}))
            .collect();
        (Value::Array(counts), Value::Array(in_flight))
    }
}
