//! Service-level metrics next to the domain ones in [`crate::metrics`]
//! (the middleware that records requests, through handles from
//! [`ServiceMetrics::requests_of`] and [`ServiceMetrics::latency_of`], is in
//! `src/http/request_metrics.rs`):
//! `orchestrator_build_info{version, git_sha}` (always 1); the HTTP requests
//! served, by route pattern (never the raw path: names in paths are
//! unbounded), method and status class (`2xx` … `5xx`), with their latency;
//! and how long Jobs wait in the queue (creation → admission, observed by the
//! leader that admits) and run (start → completion, observed by every
//! replica that watched the Job finish).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The git commit the binary was built from (`build.rs`), or `unknown`.
pub const GIT_SHA: &str = match option_env!("ORCHESTRATOR_GIT_SHA") {
    Some(s) => s,
    None => "unknown",
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    git_sha: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The build, HTTP request and Job timing metrics.
#[derive(Clone)]
pub struct ServiceMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    queue_wait: Histogram,
    run: Family<OutcomeLabels, Histogram>,
    audit: Family<OutcomeLabels, Counter>,
}

/// Buckets for Job durations: 1 s … about 9 h.
fn job_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl ServiceMetrics {
    /// Registers every metric of this module in `registry`.
    pub fn register(registry: &mut Registry) -> ServiceMetrics {
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                git_sha: GIT_SHA.into(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels say which version and git commit is running",
            build,
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status class",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 14))) as fn() -> Histogram,
        );
        registry.register(
            "http_request_seconds",
            "Time to answer an HTTP request (until the response head), by route pattern",
            latency.clone(),
        );
        let queue_wait = job_buckets();
        registry.register(
            "queue_wait_seconds",
            "Time a Job waited in the queue, from creation to admission",
            queue_wait.clone(),
        );
        let run = Family::<OutcomeLabels, Histogram>::new_with_constructor(
            job_buckets as fn() -> Histogram,
        );
        registry.register(
            "job_run_seconds",
            "Run time of finished Jobs (status.startTime to completion), by outcome (succeeded, failed)",
            run.clone(),
        );
        let audit = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "audit_events",
            "Kubernetes Events of the audit trail, by outcome (recorded; dropped: rate_limited, refused by a full Kube mailbox, failed at the API server)",
            audit.clone(),
        );
        ServiceMetrics {
            requests,
            latency,
            queue_wait,
            run,
            audit,
        }
    }

    /// Creates the series whose labels are known up front: run time by
    /// outcome, and requests no route matched (by method and status class).
    pub(super) fn initialise_known_labels(&self) {
        for outcome in ["succeeded", "failed"] {
            let _ = self.run.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
        for method in ["GET", "POST"] {
            for class in ["2xx", "4xx", "5xx"] {
                let _ = self.requests.get_or_create(&RequestLabels {
                    route: "unmatched".into(),
                    method: method.into(),
                    status_class: class.into(),
                });
            }
        }
        let _ = self.latency.get_or_create(&RouteLabels {
            route: "unmatched".into(),
        });
        for outcome in ["recorded", "rate_limited", "refused", "failed"] {
            let _ = self.audit.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
    }

    /// Counts one audit Event by outcome (`recorded`, `rate_limited`,
    /// `refused`, `failed`).
    pub fn audit_event(&self, outcome: &str) {
        self.audit
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A Job was admitted now: observes its time in the queue.
    pub fn admitted(&self, job: &k8s_openapi::api::batch::v1::Job) {
        if let Some(created) = &job.metadata.creation_timestamp {
            let waited = k8s_openapi::jiff::Timestamp::now().duration_since(created.0);
            self.queue_wait.observe(waited.as_secs_f64().max(0.0));
        }
    }

    /// A Job was seen admitted after `seconds` in the queue (Kueue mode:
    /// Kueue admits, the watch sees it).
    pub fn waited(&self, seconds: f64) {
        self.queue_wait.observe(seconds.max(0.0));
    }

    /// A watched Job finished: observes its run time.
    pub fn finished(&self, job: &k8s_openapi::api::batch::v1::Job) {
        let Some(status) = &job.status else { return };
        let Some(started) = &status.start_time else {
            return;
        };
        let outcome = if status.succeeded.unwrap_or(0) > 0 {
            "succeeded"
        } else {
            "failed"
        };
        let ended = status
            .completion_time
            .as_ref()
            .map_or_else(k8s_openapi::jiff::Timestamp::now, |t| t.0);
        let ran = ended.duration_since(started.0).as_secs_f64().max(0.0);
        self.run
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .observe(ran);
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        self.requests_of(route, method, STATUS_CLASSES[status_class(status)])
            .inc();
        self.latency_of(route).observe(seconds);
    }

    /// The counter of requests to `route` by `method` (one of [`METHODS`]
    /// or `other`) answered with `status_class` (one of [`STATUS_CLASSES`]):
    /// a handle to keep, so that counting costs an atomic increment.
    pub fn requests_of(&self, route: &str, method: &str, status_class: &str) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.into(),
                method: method.into(),
                status_class: status_class.into(),
            })
            .clone()
    }

    /// The latency histogram of `route` (a handle to keep).
    pub fn latency_of(&self, route: &str) -> Histogram {
        self.latency
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .clone()
    }
}

/// The methods `http_requests` names; any other is `other`.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The status classes of `http_requests`, by [`status_class`].
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index in [`STATUS_CLASSES`] of an HTTP status.
pub fn status_class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_requests_by_route_and_status_class() {
        let mut registry = Registry::with_prefix("orchestrator");
        let m = ServiceMetrics::register(&mut registry);
        m.observe("/webhook/github", "POST", 202, 0.01);
        m.observe("/webhook/github", "POST", 503, 0.01);
        m.observe("/api/v1/jobs/{name}", "BREW", 404, 0.01);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains(&format!(
            "orchestrator_build_info{{version=\"{}\",git_sha=\"{GIT_SHA}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(out.contains(r#"orchestrator_http_requests_total{route="/webhook/github",method="POST",status_class="2xx"} 1"#), "{out}");
        assert!(out.contains(r#"status_class="5xx"} 1"#), "{out}");
        assert!(out.contains(r#"orchestrator_http_requests_total{route="/api/v1/jobs/{name}",method="other",status_class="4xx"} 1"#), "{out}");
    }
}
