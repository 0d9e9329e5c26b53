//! The audit trail in Kubernetes' own terms: every decision about a Job is
//! a core/v1 `Event` on it, so `kubectl describe job <name>` tells its
//! story (accepted from which delivery, token or sender; admitted; waiting
//! and why; superseded; cancelled and by whom; retried).
//!
//! [`Audit::record`] never blocks and never fails its caller: it takes a
//! token from this replica's event budget ([`RATE_PER_SECOND`], bursts of
//! [`BURST`]), then *tells* the Kube actor ([`RecordEvent`]), which creates
//! the Event through the gate (on its share for reads, so Job creates keep
//! half of the API rate). An Event beyond the budget, one a full Kube
//! mailbox refuses, and one the API server refuses are dropped and counted
//! in `orchestrator_audit_events_total{outcome}` (`recorded`,
//! `rate_limited`, `refused`, `failed`): an event storm costs the API
//! server at most the budget.
//!
//! The Event names its Job by kind, apiVersion, namespace, name and uid —
//! kubectl matches `involvedObject.uid`, so the uid comes from the Job just
//! created or cancelled, or from the watch store's record; when neither
//! knows it the Kube actor reads the Job first. Messages are bounded
//! ([`MAX_MESSAGE_BYTES`]) and text from outside (logins, delivery ids) is
//! quoted and escaped ([`quoted`]).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use k8s_openapi::api::batch::v1::Job;

use super::kube_actor::KubeActor;
use super::store::JobStore;
use crate::actors::Mailbox;
use crate::metrics::Metrics;

/// Events per second this replica may create (steady rate).
pub const RATE_PER_SECOND: u32 = 10;
/// Events this replica may create at once.
pub const BURST: u32 = 50;
/// Longest Event message, bytes (Kubernetes allows more; a story line
/// needs less).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The `source.component` and `reportingComponent` of every Event.
pub const COMPONENT: &str = "orchestrator";

/// Event reasons (CamelCase, as Kubernetes writes them).
pub mod reason {
    /// A Job was created for an accepted event (source, delivery / token / sender).
    pub const ACCEPTED: &str = "Accepted";
    /// The scheduler admitted (unsuspended) the Job.
    pub const ADMITTED: &str = "Admitted";
    /// The scheduler keeps the Job queued (and says why).
    pub const WAITING: &str = "Waiting";
    /// The Job waits for a budget.
    pub const BUDGET_WAIT: &str = "BudgetWait";
    /// A repeated trigger for the Job's issue / PR was ignored because the
    /// Job is live (`on_repeat: ignore`).
    pub const REPEAT_IGNORED: &str = "RepeatIgnored";
    /// A newer run of the same issue / PR replaced the Job.
    pub const SUPERSEDED: &str = "Superseded";
    /// The Job was cancelled (by whom).
    pub const CANCELLED: &str = "Cancelled";
    /// The Job is a retry of another one.
    pub const RETRIED: &str = "Retried";
    /// Kueue mode: a Job held back by a budget was handed to Kueue.
    pub const QUEUED_IN_KUEUE: &str = "QueuedInKueue";
    /// Kueue mode: Kueue evicted the running Job; it is queued again.
    pub const EVICTED: &str = "Evicted";
}

/// `Normal` or `Warning`, the two Event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Who or what cancelled a Job (the Cancelled / Superseded Event says it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelledBy {
    /// `/agent cancel`, by this GitHub login.
    Command { login: String },
    /// `DELETE /api/v1/jobs/{name}`, by this API identity
    /// (`<kind>-token:<8 hex>`, a hash, never the token).
    Api { identity: String },
    /// A resolved Grafana alert.
    AlertResolved,
    /// A newer run of the same issue / PR (`on_repeat: supersede`).
    Superseded {
        /// The new Job.
        by_job: String,
        /// Where the new run came from (delivery, sender), said as is
        /// (already quoted by the caller).
        because: String,
    },
}

impl CancelledBy {
    /// The Event reason: `Superseded` or `Cancelled`.
    pub fn reason(&self) -> &'static str {
        match self {
            CancelledBy::Superseded { .. } => reason::SUPERSEDED,
            _ => reason::CANCELLED,
        }
    }

    /// The Event message.
    pub fn message(&self) -> String {
        match self {
            CancelledBy::Command { login } => {
                format!(
                    "cancelled by the /agent cancel command of {}",
                    quoted(login)
                )
            }
            CancelledBy::Api { identity } => {
                format!("cancelled through the API by {}", quoted(identity))
            }
            CancelledBy::AlertResolved => "cancelled: its Grafana alert resolved".to_string(),
            CancelledBy::Superseded { by_job, because } => {
                format!("superseded by job {by_job} ({because}); cancelled")
            }
        }
    }
}

/// Asks the Kube actor to create one Event on a Job (sent by [`Audit`]).
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<(), super::kube_actor::KubeError>")]
pub struct RecordEvent {
    pub job: String,
    /// The Job's namespace, where the Event goes (`None`: the service's own).
    pub namespace: Option<String>,
    /// The Job's uid; `None`: the actor reads the Job for it.
    pub uid: Option<String>,
    pub kind: EventType,
    pub reason: &'static str,
    /// Bounded and escaped already.
    pub message: String,
    /// Counts the outcome of the create.
    pub metrics: Arc<Metrics>,
}

/// The event budget: `per_second` Events a second, bursts of `burst`;
/// beyond it, [`Budget::take`] says no and counts the drop. Never waits.
pub struct Budget<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    dropped: AtomicU64,
}

impl Budget {
    /// A budget on the real clock.
    pub fn new(per_second: u32, burst: u32) -> Budget {
        Budget::with_clock(per_second, burst, DefaultClock::default())
    }
}

impl<C: Clock> Budget<C> {
    /// A budget on `clock` (tests use a fake one). A zero rate is one a
    /// second; a zero burst is the rate.
    pub fn with_clock(per_second: u32, burst: u32, clock: C) -> Budget<C> {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Budget {
            limiter: RateLimiter::direct_with_clock(
                Quota::per_second(rate).allow_burst(burst),
                clock,
            ),
            dropped: AtomicU64::new(0),
        }
    }

    /// Takes one Event's token: false (and one more drop counted) when the
    /// budget is spent.
    pub fn take(&self) -> bool {
        let ok = self.limiter.check().is_ok();
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Events dropped so far for want of budget.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The recorder (cheap to clone; one budget per replica).
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    kube: Mailbox<KubeActor>,
    store: JobStore,
    budget: Budget,
    metrics: Arc<Metrics>,
}

impl Audit {
    /// A recorder with the default budget ([`RATE_PER_SECOND`], [`BURST`]).
    pub fn new(kube: Mailbox<KubeActor>, store: JobStore, metrics: Arc<Metrics>) -> Audit {
        Audit::with_rate(kube, store, metrics, RATE_PER_SECOND, BURST)
    }

    /// A recorder allowing `per_second` Events a second in bursts of `burst`.
    pub fn with_rate(
        kube: Mailbox<KubeActor>,
        store: JobStore,
        metrics: Arc<Metrics>,
        per_second: u32,
        burst: u32,
    ) -> Audit {
        Audit {
            inner: Arc::new(Inner {
                kube,
                store,
                budget: Budget::new(per_second, burst),
                metrics,
            }),
        }
    }

    /// Queues an Event on Job `job` (uid `uid`, else the store's; in the
    /// namespace the store has it in). Never waits; answers whether it was
    /// queued (false: dropped and counted).
    pub fn record(
        &self,
        job: &str,
        uid: Option<&str>,
        kind: EventType,
        reason: &'static str,
        message: &str,
    ) -> bool {
        self.record_in(job, None, uid, kind, reason, message)
    }

    /// [`Self::record`] on Job `job` of `namespace` (else the store's).
    fn record_in(
        &self,
        job: &str,
        namespace: Option<&str>,
        uid: Option<&str>,
        kind: EventType,
        reason: &'static str,
        message: &str,
    ) -> bool {
        let metrics = &self.inner.metrics;
        if !self.inner.budget.take() {
            metrics.service().audit_event("rate_limited");
            tracing::debug!(job, reason, "audit event dropped: over the event budget");
            return false;
        }
        let stored = (uid.is_none() || namespace.is_none())
            .then(|| self.inner.store.get(job))
            .flatten();
        let uid = uid.map(str::to_string).or_else(|| {
            stored
                .as_ref()
                .and_then(|r| r.uid.as_deref().map(str::to_string))
        });
        let namespace = namespace
            .map(str::to_string)
            .or_else(|| stored.as_ref().map(|r| r.namespace.to_string()));
        let msg = RecordEvent {
            job: job.to_string(),
            namespace,
            uid,
            kind,
            reason,
            message: bounded(message),
            metrics: metrics.clone(),
        };
        match self.inner.kube.tell(msg) {
            Ok(()) => true,
            Err(e) => {
                metrics.service().audit_event("refused");
                tracing::debug!(job, reason, error = %e, "audit event dropped");
                false
            }
        }
    }

    /// `Accepted` on a Job just created (`job` as the API server answered).
    pub fn accepted(&self, job: &Job, message: &str) -> bool {
        self.on(job, EventType::Normal, reason::ACCEPTED, message)
    }

    /// `Retried` on the new Job `job`, a retry of `of`.
    pub fn retried(&self, job: &Job, of: &str, by: &str) -> bool {
        let message = format!("retry of job {of}, asked for by {by}");
        self.on(job, EventType::Normal, reason::RETRIED, &message)
    }

    /// `Cancelled` or `Superseded` on a Job just cancelled.
    pub fn cancelled(&self, job: &Job, by: &CancelledBy) -> bool {
        let kind = match by {
            CancelledBy::Superseded { .. } => EventType::Normal,
            _ => EventType::Warning,
        };
        self.on(job, kind, by.reason(), &by.message())
    }

    /// `Admitted`: the scheduler unsuspended Job `job`.
    pub fn admitted(&self, job: &str) -> bool {
        self.record(
            job,
            None,
            EventType::Normal,
            reason::ADMITTED,
            "admitted by the scheduler: unsuspended, its pod starts",
        )
    }

    /// `Admitted` in Kueue mode: Kueue admitted Job `job` from `queue`.
    pub fn kueue_admitted(&self, job: &str, uid: Option<&str>, queue: &str) -> bool {
        let message = format!(
            "admitted by Kueue from LocalQueue {}: its pod starts",
            quoted(queue)
        );
        self.record(job, uid, EventType::Normal, reason::ADMITTED, &message)
    }

    /// `Evicted`: Kueue evicted the running Job `job` (its `n`th eviction)
    /// and requeued it in `queue`.
    pub fn kueue_evicted(&self, job: &str, uid: Option<&str>, queue: &str, n: u32) -> bool {
        let message = format!(
            "evicted by Kueue, requeued in LocalQueue {} (eviction {n}); its pod was stopped and starts again when Kueue readmits it",
            quoted(queue)
        );
        self.record(job, uid, EventType::Warning, reason::EVICTED, &message)
    }

    /// `Waiting`: the scheduler keeps Job `job` queued, because `why`
    /// (e.g. "the concurrency limit (2) is reached"). For the scheduler:
    /// call it when the reason changes, not on every pass.
    pub fn waiting(&self, job: &str, why: &str) -> bool {
        let message = format!("queued: {why}");
        self.record(job, None, EventType::Normal, reason::WAITING, &message)
    }

    /// `BudgetWait`: Job `job` waits for a budget, because `why`.
    pub fn budget_wait(&self, job: &str, why: &str) -> bool {
        let message = format!("waiting for budget: {why}");
        self.record(job, None, EventType::Warning, reason::BUDGET_WAIT, &message)
    }

    fn on(&self, job: &Job, kind: EventType, reason: &'static str, message: &str) -> bool {
        let Some(name) = job.metadata.name.as_deref() else {
            return false;
        };
        self.record_in(
            name,
            job.metadata.namespace.as_deref(),
            job.metadata.uid.as_deref(),
            kind,
            reason,
            message,
        )
    }
}

/// Text from outside as an Event shows it: in quotes, quotes, backslashes
/// and control characters escaped, cut to 128 bytes.
pub fn quoted(text: &str) -> String {
    crate::telemetry::Untrusted(text.as_bytes()).to_string()
}

/// `message` cut to [`MAX_MESSAGE_BYTES`] on a character boundary, control
/// characters (newlines included) escaped.
pub fn bounded(message: &str) -> String {
    let room = MAX_MESSAGE_BYTES - '…'.len_utf8();
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES));
    for c in message.chars() {
        let piece = if c.is_control() {
            format!("\\u{{{:x}}}", c as u32)
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > room {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The Event object for `msg` in `namespace`, at `now`.
pub(super) fn event_for(
    msg: &RecordEvent,
    uid: Option<String>,
    namespace: &str,
    instance: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> k8s_openapi::api::core::v1::Event {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    let ts = Time(now);
    // Unique per Event: the Job's name and the time in nanoseconds, as
    // client-go's recorder names them.
    let stamp = now.as_nanosecond();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", msg.job, stamp)),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(msg.job.clone()),
            namespace: Some(namespace.to_string()),
            uid,
            ..ObjectReference::default()
        },
        reason: Some(msg.reason.to_string()),
        message: Some(msg.message.clone()),
        type_: Some(msg.kind.as_str().to_string()),
        count: Some(1),
        first_timestamp: Some(ts.clone()),
        last_timestamp: Some(ts),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(instance.to_string()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_its_burst_then_its_rate_and_counts_the_drops() {
        use governor::clock::FakeRelativeClock;
        use std::time::Duration;
        let clock = FakeRelativeClock::default();
        let budget = Budget::with_clock(RATE_PER_SECOND, BURST, clock.clone());
        // A storm of 1000 at once: the burst passes, the rest is dropped.
        let passed = (0..1000).filter(|_| budget.take()).count();
        assert_eq!(passed, BURST as usize);
        assert_eq!(budget.dropped(), 1000 - u64::from(BURST));
        // Then the steady rate: 10 a second, whatever is asked.
        clock.advance(Duration::from_secs(1));
        let passed = (0..1000).filter(|_| budget.take()).count();
        assert_eq!(passed, RATE_PER_SECOND as usize);
        // A quiet spell refills the burst, no more.
        clock.advance(Duration::from_secs(60));
        let passed = (0..1000).filter(|_| budget.take()).count();
        assert_eq!(passed, BURST as usize);
        // Degenerate settings still bound: 0/s is 1/s, burst 0 is the rate.
        let tiny = Budget::with_clock(0, 0, FakeRelativeClock::default());
        assert_eq!((0..10).filter(|_| tiny.take()).count(), 1);
    }

    #[test]
    fn messages_are_bounded_and_escaped() {
        let long = "x".repeat(5000);
        let b = bounded(&long);
        assert!(b.len() <= MAX_MESSAGE_BYTES, "{}", b.len());
        assert!(b.ends_with('…'));
        assert_eq!(bounded("a\nb\u{7}"), "a\\u{a}b\\u{7}");
        let multi = "é".repeat(2000);
        assert!(bounded(&multi).len() <= MAX_MESSAGE_BYTES);
        assert_eq!(quoted("ev\"il\nlogin"), "\"ev\\\"il\\u{a}login\"");
        let by = CancelledBy::Command {
            login: "a\"b".into(),
        };
        assert_eq!(by.reason(), "Cancelled");
        assert!(by.message().contains("\"a\\\"b\""), "{}", by.message());
    }
}
