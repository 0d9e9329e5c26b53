//! Prometheus metrics: an owned registry passed explicitly to the HTTP layer
//! and the actors (no globals). Exposed at `GET /metrics`.
//!
//! Label values are bounded sets (source, decision, verb, outcome, actor):
//! never delivery ids, repositories or anything a sender controls.

pub mod dedup;
pub mod demux;
pub mod kueue;
pub mod reports;
pub mod service;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: String,
}

/// The metrics of one actor (see [`Metrics::actor`]); clones share values.
#[derive(Clone, Debug)]
pub struct ActorMetrics {
    /// Messages sent to the actor and not yet taken up (or, for requests,
    /// not yet answered).
    pub mailbox_depth: Gauge,
    /// Messages handled.
    pub messages: Counter,
    /// Time spent in the handler.
    pub handling: Histogram,
    /// Messages refused because the actor's mailbox was full.
    pub overflow: Counter,
    /// Restarts by its supervisor (after a panic or a stop).
    pub restarts: Counter,
}

/// Every metric of the service.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    /// Handles to `decisions` for every known source and decision (by
    /// [`KNOWN_SOURCES`] × [`KNOWN_DECISIONS`] index): counting one is an
    /// atomic increment, with no lock and no label strings.
    known_decisions: Vec<Counter>,
    kube_requests: Family<KubeLabels, Counter>,
    kube_latency: Family<KubeLabels, Histogram>,
    actor_restarts: Family<ActorLabels, Counter>,
    actor_overflow: Family<ActorLabels, Counter>,
    actor_depth: Family<ActorLabels, Gauge>,
    actor_messages: Family<ActorLabels, Counter>,
    actor_handling: Family<ActorLabels, Histogram>,
    leader: Gauge,
    leader_transitions: Counter,
    jobs: Family<StateLabels, Gauge>,
    waiting: Family<ReasonLabels, Gauge>,
    budgets_exhausted: Family<ScopeLabels, Gauge>,
    watchers: Gauge,
    admitted: Counter,
    service: service::ServiceMetrics,
    reports: reports::ReportMetrics,
    dedup: dedup::DedupMetrics,
    demux: Arc<demux::DemuxStats>,
    kueue: kueue::KueueMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Sources of `webhook_decisions`.
const KNOWN_SOURCES: &[&str] = &["github", "grafana", "pm-agent", "cli"];
/// Decisions of `webhook_decisions` (see its help text).
const KNOWN_DECISIONS: &[&str] = &[
    "queued",
    "duplicate",
    "ignored",
    "ping",
    "command",
    "processed",
    "unauthorized",
    "bad_request",
    "payload_too_large",
    "unprocessable",
    "invalid",
    "not_found",
    "forbidden",
    "rate_limited",
    "unavailable",
    "internal",
];
/// Verbs of `kube_requests` (the gate's calls, the watch, the probes).
const KNOWN_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "patch",
    "delete",
    "preflight",
    "version",
    "event",
];
/// Outcomes of `kube_requests` (`KubeError::metric_label`, and `ok`).
const KNOWN_KUBE_OUTCOMES: &[&str] = &[
    "ok",
    "already_exists",
    "conflict",
    "not_found",
    "namespace_missing",
    "invalid",
    "forbidden",
    "unavailable",
];
/// Job states (`jobs`; the names of `job::JobState`, which this layer
/// does not import).
const KNOWN_JOB_STATES: &[&str] = &[
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
];
/// Actors and supervised tasks (`actor_*` families).
const KNOWN_ACTORS: &[&str] = &[
    "github",
    "grafana",
    "pm-agent",
    "cli",
    "scheduler",
    "kube",
    "job_watcher",
    "job_watch",
    "lease",
    "preflight",
    "report_sweep",
];

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("orchestrator");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "webhook_decisions",
            "Events answered, by source and decision: queued, duplicate, ignored, ping or command (GitHub; a slash command's outcome is in orchestrator_github_commands), processed (a Grafana notification; each alert's outcome is in /api/v1/events), or the error code of a refused request: unauthorized, bad_request, payload_too_large, unprocessable, invalid, not_found, forbidden, rate_limited, unavailable, internal",
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
        let actor_overflow = Family::<ActorLabels, Counter>::default();
        registry.register(
            "actor_mailbox_overflow",
            "Messages refused because an actor's mailbox was full (the HTTP edge answers 503)",
            actor_overflow.clone(),
        );
        let actor_depth = Family::<ActorLabels, Gauge>::default();
        registry.register(
            "actor_mailbox_depth",
            "Messages waiting for an actor (requests: until answered)",
            actor_depth.clone(),
        );
        let actor_messages = Family::<ActorLabels, Counter>::default();
        registry.register(
            "actor_messages",
            "Messages handled by each actor",
            actor_messages.clone(),
        );
        let actor_handling = Family::<ActorLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_01, 4.0, 10))) as fn() -> Histogram,
        );
        registry.register(
            "actor_handling_seconds",
            "Time an actor spends in a handler (for a handler answering with a future, until the future is handed off)",
            actor_handling.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the scheduler Lease and admits Jobs, else 0",
            leader.clone(),
        );
        let leader_transitions = Counter::default();
        registry.register(
            "leader_transitions",
            "Times this replica gained or lost the scheduler Lease",
            leader_transitions.clone(),
        );
        let jobs = Family::<StateLabels, Gauge>::default();
        registry.register("jobs", "Managed Jobs by state", jobs.clone());
        let waiting = Family::<ReasonLabels, Gauge>::default();
        registry.register(
            "jobs_waiting",
            "Queued Jobs held back, by reason: budget (a daily budget of their repository or source is spent), repository_cap, source_cap, concurrency_key (another task of the issue or PR runs), global_cap (MAX_CONCURRENT_JOBS), kueue (SCHEDULER=kueue: in a Kueue LocalQueue, for Kueue to admit)",
            waiting.clone(),
        );
        let budgets_exhausted = Family::<ScopeLabels, Gauge>::default();
        registry.register(
            "budget_exhausted",
            "Daily budgets spent now, by scope (repository: agent-minutes or USD of one repository; source: agent-minutes of one source); their queued Jobs wait until 00:00 UTC",
            budgets_exhausted.clone(),
        );
        let watchers = Gauge::default();
        registry.register(
            "job_watchers",
            "Live per-Job watcher actors",
            watchers.clone(),
        );
        let admitted = Counter::default();
        registry.register(
            "jobs_admitted",
            "Queued Jobs admitted: unsuspended by the scheduler, or (SCHEDULER=kueue) seen admitted by Kueue",
            admitted.clone(),
        );
        let service = service::ServiceMetrics::register(&mut registry);
        let reports = reports::ReportMetrics::register(&mut registry);
        let dedup = dedup::DedupMetrics::register(&mut registry);
        let kueue = kueue::KueueMetrics::register(&mut registry);
        let demux = Arc::new(demux::DemuxStats::default());
        registry.register(
            "job_watch_events",
            "Job watch events applied to the store",
            demux.events.clone(),
        );
        registry.register(
            "job_watcher_messages",
            "Messages from the watch demux to per-Job watcher actors",
            demux.to_watchers.clone(),
        );
        registry.register(
            "job_watch_scheduler_messages",
            "Job state notifications sent to the scheduler by the watch demux and watchers",
            demux.to_scheduler.clone(),
        );
        registry.register(
            "job_watch_overflows",
            "Notifications a full mailbox refused (the newer state is re-read from the store)",
            demux.overflows.clone(),
        );
        registry.register(
            "jobs_tracked",
            "Managed Jobs in the watch store",
            demux.tracked.clone(),
        );
        let known_decisions = KNOWN_SOURCES
            .iter()
            .flat_map(|source| {
                KNOWN_DECISIONS.iter().map(|decision| {
                    decisions
                        .get_or_create(&DecisionLabels {
                            source: (*source).into(),
                            decision: (*decision).into(),
                        })
                        .clone()
                })
            })
            .collect();
        let m = Metrics {
            registry,
            service,
            reports,
            dedup,
            decisions,
            known_decisions,
            kube_requests,
            kube_latency,
            actor_restarts,
            actor_overflow,
            actor_depth,
            actor_messages,
            actor_handling,
            leader,
            leader_transitions,
            jobs,
            waiting,
            budgets_exhausted,
            watchers,
            admitted,
            demux,
            kueue,
        };
        m.initialise_known_labels();
        Arc::new(m)
    }

    /// Creates every labelled series whose label values are known up front
    /// (sources, decisions, verbs, outcomes, actors, states), so a fresh
    /// replica exports zeros rather than nothing: `rate()`, dashboards and
    /// alert rules see a series from the first scrape.
    fn initialise_known_labels(&self) {
        for &source in KNOWN_SOURCES {
            for &decision in KNOWN_DECISIONS {
                let _ = self.decisions.get_or_create(&DecisionLabels {
                    source: source.into(),
                    decision: decision.into(),
                });
            }
        }
        for &verb in KNOWN_VERBS {
            for &outcome in KNOWN_KUBE_OUTCOMES {
                let l = KubeLabels {
                    verb: verb.into(),
                    outcome: outcome.into(),
                };
                let _ = self.kube_requests.get_or_create(&l);
                // Latency histograms: the common outcome only (a histogram
                // is 17 series; the rest appear with their first call).
                if outcome == "ok" {
                    let _ = self.kube_latency.get_or_create(&l);
                }
            }
        }
        for &actor in KNOWN_ACTORS {
            let _ = self.actor(actor);
        }
        for &state in KNOWN_JOB_STATES {
            let _ = self.jobs.get_or_create(&StateLabels {
                state: state.into(),
            });
        }
        self.set_waiting(&[
            ("budget", 0),
            ("repository_cap", 0),
            ("source_cap", 0),
            ("concurrency_key", 0),
            ("global_cap", 0),
            ("kueue", 0),
        ]);
        self.set_budgets_exhausted(0, 0);
        self.service.initialise_known_labels();
        self.reports.initialise_known_labels();
    }

    pub fn decision(&self, source: &str, decision: &str) {
        let known = KNOWN_SOURCES
            .iter()
            .position(|s| *s == source)
            .and_then(|s| {
                let d = KNOWN_DECISIONS.iter().position(|d| *d == decision)?;
                self.known_decisions.get(s * KNOWN_DECISIONS.len() + d)
            });
        match known {
            Some(counter) => {
                counter.inc();
            }
            None => {
                self.decisions
                    .get_or_create(&DecisionLabels {
                        source: source.into(),
                        decision: decision.into(),
                    })
                    .inc();
            }
        }
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

    /// The metrics of actor `actor` (created on first use).
    pub fn actor(&self, actor: &str) -> ActorMetrics {
        let l = ActorLabels {
            actor: actor.into(),
        };
        ActorMetrics {
            mailbox_depth: self.actor_depth.get_or_create(&l).clone(),
            messages: self.actor_messages.get_or_create(&l).clone(),
            handling: self.actor_handling.get_or_create(&l).clone(),
            overflow: self.actor_overflow.get_or_create(&l).clone(),
            restarts: self.actor_restarts.get_or_create(&l).clone(),
        }
    }

    /// Whether this replica leads (`orchestrator_leader`); a change is
    /// counted in `orchestrator_leader_transitions_total`. Returns whether
    /// it changed.
    pub fn set_leader(&self, leading: bool) -> bool {
        let now = i64::from(leading);
        let changed = self.leader.set(now) != now;
        if changed {
            self.leader_transitions.inc();
        }
        changed
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

    /// Sets the queued Jobs held back per reason (every reason named).
    pub fn set_waiting(&self, counts: &[(&str, usize)]) {
        for (reason, n) in counts {
            self.waiting
                .get_or_create(&ReasonLabels {
                    reason: reason.to_string(),
                })
                .set(*n as i64);
        }
    }

    /// Sets the number of spent budgets per scope (`repository`, `source`).
    pub fn set_budgets_exhausted(&self, repositories: usize, sources: usize) {
        for (scope, n) in [("repository", repositories), ("source", sources)] {
            self.budgets_exhausted
                .get_or_create(&ScopeLabels {
                    scope: scope.into(),
                })
                .set(n as i64);
        }
    }

    /// Restarts counted for `actor` so far.
    pub fn restarts(&self, actor: &str) -> u64 {
        self.actor(actor).restarts.get()
    }

    pub fn watchers(&self) -> &Gauge {
        &self.watchers
    }

    /// `build_info`, HTTP request and Job timing metrics ([`service`]).
    pub fn service(&self) -> &service::ServiceMetrics {
        &self.service
    }

    /// What Kueue did to the Jobs (`SCHEDULER=kueue`).
    pub fn kueue(&self) -> &kueue::KueueMetrics {
        &self.kueue
    }

    /// The dedup record's keys and shard writes.
    pub fn dedup(&self) -> &dedup::DedupMetrics {
        &self.dedup
    }

    /// Reporting's counters (GitHub calls, reports, slash commands).
    pub fn reports(&self) -> &reports::ReportMetrics {
        &self.reports
    }

    /// The watch demux's work counters (registered here).
    pub fn demux_stats(&self) -> Arc<demux::DemuxStats> {
        self.demux.clone()
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
