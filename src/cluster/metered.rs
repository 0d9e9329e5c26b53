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
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use futures::stream::{BoxStream, StreamExt};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use super::gate::KubeGate;
use super::jobspec::MANAGED_SELECTOR;
use super::slim::SlimJob;

/// The events of the one Job watch: a `kube::runtime::watcher` stream
/// over the managed Jobs in `namespace` (decoded slim), with its default
/// backoff, on a client whose requests go through `gate`.
pub type JobEvents = BoxStream<'static, Result<watcher::Event<SlimJob>, watcher::Error>>;

/// Starts the Job watch's stream (see [`JobEvents`]).
pub fn job_events(
    gate: &KubeGate,
    config: kube::Config,
    namespace: &str,
) -> Result<JobEvents, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    let client = builder.with_layer(&Metered(gate.clone())).build();
    let api: Api<SlimJob> = Api::namespaced(client, namespace);
    let cfg = watcher::Config::default().labels(MANAGED_SELECTOR);
    Ok(watcher(api, cfg).default_backoff().boxed())
}

/// The layer: wraps a service so each request waits for the gate and is
/// counted.
#[derive(Clone)]
pub struct Metered(KubeGate);

impl<S> Layer<S> for Metered {
    type Service = MeteredService<S>;
    fn layer(&self, inner: S) -> MeteredService<S> {
        MeteredService {
            inner,
            gate: self.0.clone(),
        }
    }
}

/// The service [`Metered`] builds.
pub struct MeteredService<S> {
    inner: S,
    gate: KubeGate,
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
        let answer = self.inner.call(req);
        let gate = self.gate.clone();
        Box::pin(async move {
            gate.until_ready().await;
            let started = Instant::now();
            let r = answer.await;
            let outcome = match &r {
                Ok(resp) => outcome(resp.status()),
                Err(_) => "unavailable",
            };
            gate.metrics()
                .kube_request(verb, outcome, started.elapsed());
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
