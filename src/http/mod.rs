//! The actix-web front end: routes, shared state, health and readiness.
//! Handlers do the CPU work that parallelises (body limits, signatures,
//! decoding) and send one small typed message to a source actor; they never
//! talk to Kubernetes.

pub mod auth;
pub mod body;
pub mod commands;
pub mod dashboard;
pub mod error;
pub mod github;
pub mod grafana;
pub mod jobs;
pub mod leader;
pub mod openapi;
pub mod parser_errors;
pub mod pipeline;
pub mod recent;
pub mod request_metrics;
pub mod schema;
pub mod tasks;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, HttpMessage, HttpResponse};
use serde_json::json;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

use crate::actors::Mailbox;
use crate::cluster::jobs::Jobs;
use crate::cluster::lease::Leader;
use crate::config::Config;
use crate::events::{EventLog, NewEvent};
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::sources::actor::SourceActor;
use crate::sources::github::TrustConfig;
pub use body::{read_body, BodyPermit};
use error::RouteError;

/// Readiness inputs.
#[derive(Debug, Default)]
pub struct Health {
    /// The Job watch has listed everything (so the API server answered).
    pub synced: Arc<AtomicBool>,
    /// Shutdown has begun.
    pub draining: AtomicBool,
    /// The latest preflight report (`None` before the first round).
    pub preflight: crate::cluster::preflight::Latest,
    /// The Job watch's failures and silence.
    pub watch: Arc<crate::cluster::metered::WatchHealth>,
    /// When a graceful stop begins: the moment by which requests still in
    /// flight must have answered, before the server closes their
    /// connections ([`Health::stop_answering_by`]).
    answer_by: std::sync::Mutex<Option<tokio::time::Instant>>,
    stopping: tokio::sync::Notify,
}

impl Health {
    /// A stop has begun: requests in flight answer by `at` at the latest.
    pub fn stop_answering_by(&self, at: tokio::time::Instant) {
        *self
            .answer_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at);
        self.stopping.notify_waiters();
    }

    /// Resolves when a request in flight must answer because the service
    /// is stopping (never, while it is not).
    pub async fn must_answer(&self) {
        loop {
            // Created before the check: a stop announced in between wakes it.
            let announced = self.stopping.notified();
            let at = *self
                .answer_by
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(at) = at {
                tokio::time::sleep_until(at).await;
                return;
            }
            announced.await;
        }
    }
}

/// A source actor's bounded mailbox.
pub type SourceHandle = Mailbox<SourceActor>;

/// State shared by every worker.
pub struct AppState {
    pub config: Arc<Config>,
    pub rules: Arc<Rules>,
    pub trust: TrustConfig,
    pub github: SourceHandle,
    pub grafana: SourceHandle,
    pub pm_agent: SourceHandle,
    pub cli: SourceHandle,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub events: Arc<EventLog>,
    /// The Jobs: the watch store's records and indexes (read-only here),
    /// and the operator's calls (fetch, cancel, logs) through the Kube actor.
    pub jobs: Jobs,
    /// Reporting back (`/agent status` refreshes a report through it).
    pub reporting: crate::report::Reporting,
    /// This replica's leadership (`GET /api/v1/leader`).
    pub leader: Leader,
    /// What unauthenticated request bodies may buffer ([`body`]).
    pub bodies: Arc<body::BodyBudget>,
    /// `API_RATE_LIMIT_PER_TOKEN_PER_MINUTE`, per API token.
    pub token_limits: auth::TokenLimits,
    /// The Jobs this replica answered 2xx for a moment ago.
    pub recent: recent::RecentJobs,
    /// The source actors' dedup cache: the Jobs this replica persisted
    /// recently (a resolved alert's Job the watch has not delivered yet).
    pub dedup: crate::sources::intake::DedupCache,
    /// The dedup record (keys accepted within `DEDUP_RETENTION_SECONDS`).
    pub record: crate::cluster::dedup::DedupRecord,
    /// The web dashboard's session key and log follows ([`dashboard`]).
    pub dashboard: dashboard::Dashboard,
}

/// What an event is about, for the events log (all optional).
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// A body to read the rest from, and how, when the events log is read
    /// ([`EventLog::record_deferred`]): the other fields are then unused.
    pub deferred: Option<(web::Bytes, crate::events::ReadSubject)>,
    /// `owner/name`.
    pub repository: Option<String>,
    /// The issue or pull request number.
    pub number: Option<u64>,
    /// Who sent it.
    pub sender: Option<String>,
    /// The payload's action (GitHub's `labeled`, …).
    pub action: Option<String>,
}

impl Subject {
    /// The subject of a Task.
    pub fn of_task(task: &crate::task::Task) -> Subject {
        Subject {
            deferred: None,
            repository: task.repository.clone(),
            number: task.issue_number.or(task.pr_number),
            sender: task.requested_by.clone(),
            action: task.labels.get("action").cloned(),
        }
    }
}

/// A handled event: the decision, the Job it led to, and the answer.
pub struct Answer {
    pub decision: &'static str,
    pub job: Option<String>,
    pub reason: Option<String>,
    /// A duplicate whose Job is deleted (the dedup record knew its key).
    pub gone: bool,
    pub response: HttpResponse,
    /// What the event was about (repository, issue/PR, sender).
    pub subject: Subject,
}

impl Answer {
    pub fn new(decision: &'static str, job: Option<String>, response: HttpResponse) -> Self {
        Answer {
            decision,
            job,
            reason: None,
            gone: false,
            response,
            subject: Subject::default(),
        }
    }
}

/// Records the outcome of an event in the events log.
pub fn record_outcome(
    state: &AppState,
    source: &'static str,
    event: &str,
    delivery: Option<&str>,
    result: &Result<Answer, RouteError>,
) {
    let none = Subject::default();
    let refused;
    let (decision, reason, job, subject) = match result {
        Ok(a) => (
            a.decision,
            a.reason.as_deref(),
            a.job.as_deref(),
            &a.subject,
        ),
        Err(e) => {
            refused = e.event_reason();
            (e.event_decision(), Some(refused.as_str()), None, &none)
        }
    };
    let e = NewEvent {
        source,
        event,
        delivery,
        decision,
        reason,
        job,
        repository: subject.repository.as_deref(),
        number: subject.number,
        sender: subject.sender.as_deref(),
        action: subject.action.as_deref(),
    };
    match &subject.deferred {
        Some((body, read)) => state.events.record_deferred(e, body.clone(), *read),
        None => state.events.record(e),
    }
}

/// Root span of every request: request id plus the fields handlers fill in.
///
/// Built here rather than with `tracing_actix_web::root_span!` because that
/// macro logs the whole target, query string included, and callers put
/// credentials there (`?token=`, Grafana's `?password=`): `http.target` is
/// the path only.
pub struct RootSpan;

impl RootSpanBuilder for RootSpan {
    /// The fields are computed and written only when the span is enabled
    /// (the macro evaluates them after the level check): a service logging
    /// at `warn` pays for none of them.
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %request.match_pattern().unwrap_or_default(),
            http.flavor = ?request.version(),
            http.client_ip = %client_addr(
                request.peer_addr(),
                request.headers(),
                request
                    .app_data::<web::Data<AppState>>()
                    .map_or(&[][..], |s| &s.config.trusted_proxies[..]),
            ),
            http.user_agent = %crate::telemetry::Untrusted(
                request
                    .headers()
                    .get("user-agent")
                    .map_or(&b""[..], |v| v.as_bytes()),
            ),
            http.target = %request.path(),
            http.status_code = tracing::field::Empty,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
            request_id = %request
                .extensions()
                .get::<tracing_actix_web::RequestId>()
                .map_or_else(error::RequestId::default, |id| error::RequestId(**id)),
            source = tracing::field::Empty,
            event = tracing::field::Empty,
            delivery = tracing::field::Empty,
            job = tracing::field::Empty,
            decision = tracing::field::Empty
        )
    }

    /// Records the status on the span and logs each refused request once:
    /// the webhook routes log their own decision, every other route's
    /// error answer is logged here (4xx at info, 5xx at warn).
    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        let (status, error, route) = match outcome {
            Ok(r) => {
                let Some(error) = r.response().error() else {
                    return;
                };
                (r.status(), error.to_string(), r.request().match_pattern())
            }
            Err(e) => (e.as_response_error().status_code(), e.to_string(), None),
        };
        if route.is_some_and(|r| r.starts_with("/webhook/")) {
            return;
        }
        let _entered = span.enter();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %error, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = %error, "request refused");
        }
    }
}

/// A route path; another method on it is answered 405 with `Allow`.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", allow))
            .json(json!({
                "status": "error",
                "error": "method_not_allowed",
                "message": format!("this route accepts {allow}"),
            }))
    }))
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // Probes and load balancers may ask with HEAD: same answer, no body.
    cfg.service(
        resource("/health", "GET, HEAD")
            .route(web::get().to(health))
            .route(web::head().to(health)),
    )
    .service(
        resource("/ready", "GET, HEAD")
            .route(web::get().to(ready))
            .route(web::head().to(ready)),
    )
    .service(resource("/metrics", "GET").route(web::get().to(metrics)))
    .service(resource("/webhook/github", "POST").route(web::post().to(github::webhook)))
    .service(
        resource("/webhook/grafana", "POST, PUT")
            .route(web::post().to(grafana::webhook))
            .route(web::put().to(grafana::webhook)),
    )
    .service(resource("/api/v1/tasks", "POST").route(web::post().to(tasks::create_task)))
    .service(resource("/api/v1/pm/tasks", "POST").route(web::post().to(tasks::create_pm_task)))
    .service(resource("/api/v1/pm/tasks/{id}", "GET").route(web::get().to(tasks::get_pm_task)))
    .service(resource("/api/v1/jobs", "GET").route(web::get().to(jobs::list_jobs)))
    .service(
        resource("/api/v1/jobs/{name}", "GET, DELETE")
            .route(web::get().to(jobs::get_job))
            .route(web::delete().to(jobs::cancel_job)),
    )
    .service(resource("/api/v1/jobs/{name}/logs", "GET").route(web::get().to(jobs::job_logs)))
    .service(resource("/api/v1/events", "GET").route(web::get().to(jobs::events)))
    .service(resource("/api/v1/leader", "GET").route(web::get().to(leader::leader)))
    .service(resource("/api/v1/openapi.json", "GET").route(web::get().to(openapi::document)))
    .configure(dashboard::routes)
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| RouteError::BadRequest(format!("bad query string: {e}")).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| RouteError::BadRequest(format!("bad path: {e}")).into()),
    )
    .default_service(web::to(not_found));
}

/// Liveness: 200 while the process serves.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process serves")))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 once the preflight checks pass and the Job watch is
/// synced; 503 before, while a check fails (each failure listed in words,
/// without internal addresses: no API server URL, no IPs), and while
/// draining. A tenant namespace's failed check (or failing watch) leaves it
/// ready, listed under `degraded`.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "Not ready (failed checks listed) or draining")))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let h = &state.health;
    if h.draining.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "draining"}));
    }
    let report = h.preflight.read().ok().and_then(|r| r.clone());
    let Some(report) = report else {
        return HttpResponse::ServiceUnavailable().json(
            json!({"status": "not_ready", "reason": "the preflight checks have not finished yet"}),
        );
    };
    if !report.passed() {
        // Anyone who reaches the service may ask: no internal addresses
        // (the log and `orchestrator doctor` have the full words).
        let report = report.public();
        let failed: Vec<&str> = report.failures().map(|c| c.message.as_str()).collect();
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "reason": failed.join("; "),
            "failed": failed,
            "checks": report.checks,
        }));
    }
    if !state.record.loaded() {
        return HttpResponse::ServiceUnavailable().json(
            json!({"status": "not_ready", "reason": "the dedup record has not been read yet"}),
        );
    }
    if !h.synced.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(
            json!({"status": "not_ready", "reason": "the Kubernetes Job watch is not synced yet"}),
        );
    }
    let failing_for = state.config.job_watch_failing;
    let (now, home) = (tokio::time::Instant::now(), &state.config.namespace);
    if let Some(why) = h.watch.unhealthy(now, failing_for, home) {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "reason": why, "failed": [why]}));
    }
    // A tenant namespace that does not work fails only its rules' tasks:
    // ready, saying so.
    let mut degraded: Vec<String> = report
        .public()
        .degraded()
        .map(|c| c.message.clone())
        .collect();
    degraded.extend(h.watch.degraded(now, failing_for, home));
    if degraded.is_empty() {
        return HttpResponse::Ok().json(json!({"status": "ready"}));
    }
    HttpResponse::Ok().json(json!({"status": "ready", "degraded": degraded}))
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({"status": "error", "error": "not_found", "message": "no such route"}))
}

/// [`body::read_unauthenticated_body`] for this server's budget and the
/// request's client address ([`client_addr`]).
pub async fn read_unauthenticated_body(
    req: &actix_web::HttpRequest,
    payload: web::Payload,
    limit: usize,
    state: &AppState,
) -> Result<(web::Bytes, BodyPermit), RouteError> {
    let addr = client_addr(
        req.peer_addr(),
        req.headers(),
        &state.config.trusted_proxies,
    );
    body::read_unauthenticated_body(req, payload, limit, &state.bodies, addr).await
}

/// The client's address: the peer's, or — when the peer is one of
/// `trusted` proxies — the right-most `X-Forwarded-For` entry that is not
/// itself a trusted proxy. `Forwarded` and the headers of untrusted peers
/// are ignored (anyone can write them).
pub fn client_addr(
    peer: Option<SocketAddr>,
    headers: &actix_web::http::header::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return peer;
        };
        hops.extend(value.split(',').map(str::trim));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop
            .parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        h
    }

    #[test]
    fn x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
        let proxies: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().expect("cidr"),
            "fd00::1/128".parse().expect("cidr"),
        ];
        let peer = |ip: &str| Some(SocketAddr::new(ip.parse().expect("ip"), 40000));
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        // From an untrusted peer the header is anyone's words.
        let h = forwarded(&["203.0.113.9"]);
        assert_eq!(
            client_addr(peer("198.51.100.7"), &h, &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(client_addr(peer("10.1.2.3"), &h, &[]), ip("10.1.2.3"));
        // Behind trusted proxies: the right-most entry that is not one of them.
        let h = forwarded(&["1.1.1.1, 203.0.113.9", "10.0.0.5"]);
        assert_eq!(
            client_addr(peer("10.1.2.3"), &h, &proxies),
            ip("203.0.113.9")
        );
        let h = forwarded(&["[2001:db8::7]:443"]);
        assert_eq!(
            client_addr(peer("fd00::1"), &h, &proxies),
            ip("2001:db8::7")
        );
        // A garbled entry stops the walk at the last trusted hop.
        let h = forwarded(&["203.0.113.9, not-an-address"]);
        assert_eq!(client_addr(peer("10.1.2.3"), &h, &proxies), ip("10.1.2.3"));
        // No header: the proxy itself.
        assert_eq!(
            client_addr(peer("10.1.2.3"), &HeaderMap::new(), &proxies),
            ip("10.1.2.3")
        );
    }
}
