//! The actix-web front end: routes, shared state, health and readiness.
//! Handlers do the CPU work that parallelises (body limits, signatures,
//! decoding) and send one small typed message to a source actor; they never
//! talk to Kubernetes.

pub mod error;
pub mod github;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, HttpResponse};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::sources::actor::SourceActor;
use crate::sources::github::TrustConfig;
use error::RouteError;

/// Readiness inputs.
#[derive(Debug, Default)]
pub struct Health {
    /// The Job watch has listed everything (so the API server answered).
    pub synced: Arc<AtomicBool>,
    /// Shutdown has begun.
    pub draining: AtomicBool,
}

/// A source actor with its in-flight bound.
#[derive(Clone)]
pub struct SourceHandle {
    pub addr: Addr<SourceActor>,
    pub permits: Arc<Semaphore>,
    pub name: &'static str,
}

/// State shared by every worker.
pub struct AppState {
    pub config: Arc<Config>,
    pub rules: Arc<Rules>,
    pub trust: TrustConfig,
    pub github: SourceHandle,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}

/// Root span of every request: request id plus the fields handlers fill in.
pub struct RootSpan;

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(
            request,
            source = tracing::field::Empty,
            event = tracing::field::Empty,
            delivery = tracing::field::Empty,
            job = tracing::field::Empty,
            decision = tracing::field::Empty
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics))
        .route("/webhook/github", web::post().to(github::webhook))
        .default_service(web::to(not_found));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let h = &state.health;
    if h.draining.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "draining"}));
    }
    if !h.synced.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "reason": "the Kubernetes Job watch is not synced yet"}));
    }
    HttpResponse::Ok().json(json!({"status": "ready"}))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"status": "error", "error": "not_found", "message": "no such route"}))
}

/// Reads a request body up to `limit` bytes (413 beyond), checking
/// `Content-Length` first so an oversized body is refused before reading.
pub async fn read_body(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, RouteError> {
    if let Some(len) = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(RouteError::TooLarge(limit));
        }
    }
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| RouteError::BadRequest(format!("reading the body failed: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(RouteError::TooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
