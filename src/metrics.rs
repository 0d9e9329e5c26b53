//! Prometheus metrics: an owned registry passed explicitly to the HTTP layer
//! and the actors (no globals). Exposed at `GET /metrics`.
//!
//! Label values are bounded sets (source, decision, verb, outcome, actor):
//! never delivery ids, repositories or anything a sender controls.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    source: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubeLabels {
    verb: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabels {
    actor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// Every metric of the service.
/// Asks an actor to stop; its supervisor restarts it with fresh derived
/// state (used to recover a wedged actor, and by the supervision tests).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Restart;

pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    kube_requests: Family<KubeLabels, Counter>,
    kube_latency: Family<KubeLabels, Histogram>,
    actor_restarts: Family<ActorLabels, Counter>,
    mailbox_full: Family<ActorLabels, Counter>,
    jobs: Family<StateLabels, Gauge>,
    watchers: Gauge,
    admitted: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("orchestrator");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "webhook_decisions",
            "Events answered, by source and decision (queued, duplicate, ignored, rejected, rate_limited, unavailable)",
            decisions.clone(),
        );
        let kube_requests = Family::<KubeLabels, Counter>::default();
        registry.register(
            "kube_requests",
            "Kubernetes API calls by verb and outcome",
            kube_requests.clone(),
        );
        let kube_latency = Family::<KubeLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 14))) as fn() -> Histogram,
        );
        registry.register(
            "kube_request_seconds",
            "Kubernetes API call latency",
            kube_latency.clone(),
        );
        let actor_restarts = Family::<ActorLabels, Counter>::default();
        registry.register(
            "actor_restarts",
            "Actors restarted by their supervisor",
            actor_restarts.clone(),
        );
        let mailbox_full = Family::<ActorLabels, Counter>::default();
        registry.register(
            "mailbox_full",
            "Messages refused because an actor's mailbox was full (answered 503)",
            mailbox_full.clone(),
        );
        let jobs = Family::<StateLabels, Gauge>::default();
        registry.register("jobs", "Managed Jobs by state", jobs.clone());
        let watchers = Gauge::default();
        registry.register(
            "job_watchers",
            "Live per-Job watcher actors",
            watchers.clone(),
        );
        let admitted = Counter::default();
        registry.register(
            "jobs_admitted",
            "Queued Jobs admitted (unsuspended) by the scheduler",
            admitted.clone(),
        );
        Arc::new(Metrics {
            registry,
            decisions,
            kube_requests,
            kube_latency,
            actor_restarts,
            mailbox_full,
            jobs,
            watchers,
            admitted,
        })
    }

    pub fn decision(&self, source: &str, decision: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                source: source.into(),
                decision: decision.into(),
            })
            .inc();
    }

    pub fn kube_request(&self, verb: &str, outcome: &str, took: Duration) {
        let l = KubeLabels {
            verb: verb.into(),
            outcome: outcome.into(),
        };
        self.kube_requests.get_or_create(&l).inc();
        self.kube_latency
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    pub fn actor_restarted(&self, actor: &str) {
        self.actor_restarts
            .get_or_create(&ActorLabels {
                actor: actor.into(),
            })
            .inc();
    }

    pub fn mailbox_full(&self, actor: &str) {
        self.mailbox_full
            .get_or_create(&ActorLabels {
                actor: actor.into(),
            })
            .inc();
    }

    /// Sets the number of Jobs in each state.
    pub fn set_jobs(&self, queued: usize, running: usize) {
        for (state, n) in [("queued", queued), ("running", running)] {
            self.jobs
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(n as i64);
        }
    }

    /// Restarts counted for `actor` so far.
    pub fn restarts(&self, actor: &str) -> u64 {
        self.actor_restarts
            .get_or_create(&ActorLabels {
                actor: actor.into(),
            })
            .get()
    }

    pub fn watchers(&self) -> &Gauge {
        &self.watchers
    }

    pub fn admitted(&self) {
        self.admitted.inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
