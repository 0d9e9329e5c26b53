//! The Job watch's client, behind the shared [`KubeGate`]: a tower layer
//! that makes each list and watch request of `kube::runtime::watcher` wait
//! for the gate's rate limit (`KUBE_API_QPS`/`KUBE_API_BURST`, shared with
//! the Kube actor and the Lease) and counts it in
//! `orchestrator_kube_requests_total{verb="list"|"watch",outcome}` and
//! `orchestrator_kube_request_seconds`.
//!
//! What is and is not covered:
//! - every request the watch makes is rate-bound and counted once: each
//!   page of a (re)list (`verb="list"`, up to 500 Jobs a page) and each
//!   (re)connection of the watch stream (`verb="watch"`);
//! - a watch's time is until the API server answers with headers; the
//!   events streamed after that are neither rate-bound nor counted (they
//!   are `orchestrator_job_watch_events_total`), and an error the server
//!   sends inside the stream (e.g. `410 Gone`) shows as the relist it
//!   causes, not as a failed request;
//! - the watch has no per-request timeout or retry from the gate:
//!   `kube::runtime`'s backoff re-establishes it.
//!
//! The gate's wait happens inside the request's future, which tower
//! services only start when first polled, so nothing is sent before it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use std::collections::BTreeMap;

use futures::stream::{BoxStream, StreamExt};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use super::gate::KubeGate;
use super::jobspec::MANAGED_SELECTOR;
use super::slim::SlimJob;

/// One event of the Job watch, tagged with the namespace whose watch
/// produced it (a relist's start and end carry no object to say so).
pub type NamespacedEvent = (Arc<str>, Result<watcher::Event<SlimJob>, watcher::Error>);

/// The events of the Job watch: one `kube::runtime::watcher` stream per
/// watched namespace over its managed Jobs (decoded slim), each with its
/// default backoff, merged into one stream; on one client whose requests go
/// through `gate`; each answered list or watch request is noted in
/// `health`.
///
/// One watch per namespace rather than one cluster-wide watch: the
/// service's RBAC stays a Role per namespace (a cluster-wide watch needs a
/// ClusterRole over every namespace's Jobs), at the cost of one watch
/// connection per namespace (measured in `benches/namespace_watch.rs`, see
/// `docs/architecture.md`).
pub type JobEvents = BoxStream<'static, NamespacedEvent>;

/// Starts the Job watch's streams over `namespaces` (see [`JobEvents`]).
pub fn job_events(
    gate: &KubeGate,
    config: kube::Config,
    namespaces: &[String],
    health: Arc<WatchHealth>,
) -> Result<JobEvents, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    let client = builder.with_layer(&Metered(gate.clone(), health)).build();
    let cfg = watcher::Config::default()
        .labels(MANAGED_SELECTOR)
        .timeout(WATCH_TIMEOUT_SECONDS);
    let streams = namespaces.iter().map(|ns| {
        let api: Api<SlimJob> = Api::namespaced(client.clone(), ns);
        let tag: Arc<str> = ns.as_str().into();
        watcher(api, cfg.clone())
            .default_backoff()
            .map(move |ev| (tag.clone(), ev))
            .boxed()
    });
    Ok(futures::stream::select_all(streams).boxed())
}

/// The namespace of a namespaced request path
/// (`/apis/batch/v1/namespaces/<ns>/jobs`).
fn namespace_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    parts.find(|p| *p == "namespaces")?;
    parts.next().filter(|ns| !ns.is_empty())
}

/// How long the Job watch may hear nothing from the API server — no event,
/// no answered list or watch request — before it counts as stalled. The
/// watch asks to be ended every [`WATCH_TIMEOUT_SECONDS`] and then
/// reconnects, so a live watch is heard at least that often.
pub const WATCH_SILENCE: Duration = Duration::from_secs(600);

/// The `timeoutSeconds` of each watch request (the API server ends the
/// watch then; `kube::runtime` reconnects from where it was).
pub const WATCH_TIMEOUT_SECONDS: u32 = 290;

/// What `/ready` needs to know about the Job watch: when it was last heard
/// from, and since when the watch of each namespace keeps failing (one
/// namespace's failing watch is not hidden by the others' answers).
#[derive(Debug)]
pub struct WatchHealth {
    heard: Mutex<tokio::time::Instant>,
    failing_since: Mutex<BTreeMap<String, tokio::time::Instant>>,
}

impl Default for WatchHealth {
    fn default() -> Self {
        WatchHealth {
            heard: Mutex::new(tokio::time::Instant::now()),
            failing_since: Mutex::new(BTreeMap::new()),
        }
    }
}

impl WatchHealth {
    /// The API server answered the watch of `namespace` (or, `None`, of a
    /// namespace not known), or it delivered an event.
    pub fn heard(&self, namespace: Option<&str>) {
        let now = tokio::time::Instant::now();
        *self.heard.lock().unwrap_or_else(PoisonError::into_inner) = now;
        if let Some(ns) = namespace {
            self.failing_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(ns);
        }
    }

    /// The watch of `namespace` failed (it retries with backoff).
    pub fn failed(&self, namespace: &str) {
        let mut since = self
            .failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since
            .entry(namespace.to_string())
            .or_insert_with(tokio::time::Instant::now);
    }

    /// The namespaces (`home`'s, or the others') whose watch kept failing
    /// for `failing_for` at `now`, in words.
    fn failing(
        &self,
        now: tokio::time::Instant,
        failing_for: Duration,
        home: bool,
        home_ns: &str,
    ) -> Vec<String> {
        self.failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(ns, _)| (*ns == home_ns) == home)
            .map(|(ns, since)| (ns, now.saturating_duration_since(*since)))
            .filter(|(_, for_)| *for_ >= failing_for)
            .map(|(ns, for_)| {
                format!(
                    "the Kubernetes Job watch has been failing for {} s in namespace {ns:?} (see the log)",
                    for_.as_secs()
                )
            })
            .collect()
    }

    /// The tenant namespaces (all but `home`) whose watch kept failing for
    /// `failing_for`: reported, not unready (see
    /// `crate::cluster::preflight::Report::degraded`).
    pub fn degraded(
        &self,
        now: tokio::time::Instant,
        failing_for: Duration,
        home: &str,
    ) -> Vec<String> {
        self.failing(now, failing_for, false, home)
    }

    /// Why the watch is not healthy at `now`: the watch of the service's
    /// own namespace `home` kept failing for longer than `failing_for`, or
    /// the whole watch was silent for [`WATCH_SILENCE`].
    pub fn unhealthy(
        &self,
        now: tokio::time::Instant,
        failing_for: Duration,
        home: &str,
    ) -> Option<String> {
        if let Some(why) = self.failing(now, failing_for, true, home).pop() {
            return Some(why);
        }
        let heard = *self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        let quiet = now.saturating_duration_since(heard);
        (quiet >= WATCH_SILENCE).then(|| {
            format!(
                "the Kubernetes Job watch has heard nothing from the API server for {} s",
                quiet.as_secs()
            )
        })
    }
}

/// The layer: wraps a service so each request waits for the gate and is
/// counted.
#[derive(Clone)]
pub struct Metered(KubeGate, Arc<WatchHealth>);

impl<S> Layer<S> for Metered {
    type Service = MeteredService<S>;
    fn layer(&self, inner: S) -> MeteredService<S> {
        MeteredService {
            inner,
            gate: self.0.clone(),
            health: self.1.clone(),
        }
    }
}

/// The service [`Metered`] builds.
pub struct MeteredService<S> {
    inner: S,
    gate: KubeGate,
    health: Arc<WatchHealth>,
}

/// The verb of a read request, as the API server's audit log names it.
fn verb(method: &Method, query: Option<&str>) -> &'static str {
    let watching =
        query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match *method {
        Method::GET if watching => "watch",
        Method::GET => "list",
        _ => "other",
    }
}

/// The metric outcome of an answer's status.
fn outcome(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "ok",
        401 | 403 => "forbidden",
        404 => "not_found",
        410 => "expired",
        429 | 500..=599 => "unavailable",
        _ => "invalid",
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<Request<B>> for MeteredService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let verb = verb(req.method(), req.uri().query());
        let namespace = namespace_of(req.uri().path()).map(str::to_string);
        let answer = self.inner.call(req);
        let gate = self.gate.clone();
        let health = self.health.clone();
        Box::pin(async move {
            gate.until_ready().await;
            let started = Instant::now();
            let r = answer.await;
            let outcome = match &r {
                Ok(resp) => outcome(resp.status()),
                Err(_) => "unavailable",
            };
            if outcome == "ok" {
                health.heard(namespace.as_deref());
            }
            gate.metrics()
                .kube_request(verb, outcome, started.elapsed());
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_watch_is_unhealthy_after_failing_for_the_period_or_a_long_silence() {
        let h = WatchHealth::default();
        let period = Duration::from_secs(30);
        let now = tokio::time::Instant::now;
        let home = "orchestrator";
        assert_eq!(h.unhealthy(now(), period, home), None);
        h.failed(home);
        h.failed("team-b");
        tokio::time::advance(Duration::from_secs(29)).await;
        h.failed(home);
        // Another namespace's answers do not hide the failures.
        h.heard(Some("team-a"));
        h.heard(None);
        assert_eq!(h.unhealthy(now(), period, home), None);
        assert!(h.degraded(now(), period, home).is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        let why = h.unhealthy(now(), period, home).expect("failing for 30 s");
        assert!(
            why.contains("has been failing for 30 s in namespace \"orchestrator\""),
            "{why}"
        );
        // A tenant namespace's failing watch is reported, not unready.
        h.heard(Some(home));
        assert_eq!(h.unhealthy(now(), period, home), None);
        let degraded = h.degraded(now(), period, home);
        assert_eq!(degraded.len(), 1);
        assert!(degraded[0].contains("\"team-b\""), "{degraded:?}");
        h.heard(Some("team-b"));
        assert!(h.degraded(now(), period, home).is_empty());
        tokio::time::advance(WATCH_SILENCE).await;
        let why = h.unhealthy(now(), period, home).expect("silent");
        assert!(why.contains("heard nothing"), "{why}");
    }

    #[test]
    fn a_request_s_namespace_is_read_from_its_path() {
        assert_eq!(
            namespace_of("/apis/batch/v1/namespaces/team-a/jobs"),
            Some("team-a")
        );
        assert_eq!(namespace_of("/apis/batch/v1/jobs"), None);
        assert_eq!(namespace_of("/api/v1/namespaces/"), None);
    }

    #[test]
    fn list_and_watch_requests_are_told_apart() {
        assert_eq!(
            verb(&Method::GET, Some("labelSelector=a&limit=500")),
            "list"
        );
        assert_eq!(
            verb(
                &Method::GET,
                Some("labelSelector=a&watch=true&resourceVersion=5")
            ),
            "watch"
        );
        assert_eq!(verb(&Method::GET, None), "list");
        assert_eq!(verb(&Method::GET, Some("allowWatchBookmarks=true")), "list");
        assert_eq!(verb(&Method::POST, None), "other");
    }

    #[test]
    fn statuses_map_to_the_gate_s_outcomes() {
        assert_eq!(outcome(StatusCode::OK), "ok");
        assert_eq!(outcome(StatusCode::FORBIDDEN), "forbidden");
        assert_eq!(outcome(StatusCode::GONE), "expired");
        assert_eq!(outcome(StatusCode::TOO_MANY_REQUESTS), "unavailable");
        assert_eq!(outcome(StatusCode::SERVICE_UNAVAILABLE), "unavailable");
        assert_eq!(outcome(StatusCode::UNPROCESSABLE_ENTITY), "invalid");
    }
}
