//! `POST /webhook/github`, following GitHub's delivery contract: headers
//! `X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`; JSON body up
//! to 25 MB; an answer within 10 s.

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tracing_actix_web::RootSpan;

use super::error::RouteError;
use super::{read_body, AppState, SourceHandle};
use crate::scheduler::Enqueued;
use crate::sources::actor::{Submit, SubmitError};
use crate::sources::github::{route, verify_signature, SignatureError};
use crate::sources::Decision;
use crate::task::Task;

/// GitHub gives a delivery 10 s; answer 503 a little before that.
const BUDGET: Duration = Duration::from_secs(9);

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub async fn webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, RouteError> {
    let started = Instant::now();
    span.record("source", "github");
    let metrics = &state.metrics;
    let result = handle(&req, payload, &state, &span, started).await;
    let decision = match &result {
        Ok((d, _)) => *d,
        Err(e) => e.code(),
    };
    span.record("decision", decision);
    metrics.decision("github", decision);
    match &result {
        Ok((d, _)) => tracing::info!(decision = d, "github delivery"),
        Err(e) => tracing::info!(decision, error = %e, "github delivery refused"),
    }
    result.map(|(_, r)| r)
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    span: &RootSpan,
    started: Instant,
) -> Result<(&'static str, HttpResponse), RouteError> {
    let event = header(req, "x-github-event")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RouteError::BadRequest("missing X-GitHub-Event header".into()))?;
    span.record("event", event);
    let delivery = header(req, "x-github-delivery")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RouteError::BadRequest("missing X-GitHub-Delivery header".into()))?;
    span.record("delivery", delivery);
    let ct = header(req, "content-type").unwrap_or("");
    // Media types are case-insensitive (RFC 9110, 8.3.1).
    let media_type = ct.split(';').next().map(str::trim).unwrap_or("");
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(RouteError::BadRequest(format!(
            "content type must be application/json (got {:?}); set the webhook's content type to application/json",
            ct.chars().take(100).collect::<String>()
        )));
    }
    let body = read_body(req, payload, state.config.github_max_body_bytes).await?;
    if !state.config.allow_insecure_no_signature || !state.config.github_webhook_secrets.is_empty() {
        verify_signature(
            &state.config.github_webhook_secrets,
            req.headers().get("x-hub-signature-256").map(|v| v.as_bytes()),
            &body,
        )
        .map_err(|e| match e {
            SignatureError::NoSecret => RouteError::Internal("no webhook secret configured".into()),
            other => RouteError::Unauthorized(other.to_string()),
        })?;
    }
    let decision = route(event, delivery, &body, &state.rules, &state.trust).map_err(|e| {
        if e.is_client_error() {
            RouteError::BadRequest(e.to_string())
        } else {
            RouteError::Internal(e.to_string())
        }
    })?;
    match decision {
        Decision::Ping => Ok(("ping", HttpResponse::Ok().json(json!({"status": "pong"})))),
        Decision::Ignored { reason } => {
            if reason == "untrusted" {
                tracing::warn!(event, delivery, "ignored a delivery from an untrusted sender");
            }
            Ok((
                "ignored",
                HttpResponse::Accepted().json(json!({"status": "ignored", "reason": reason})),
            ))
        }
        Decision::Task(task) => submit(&state.github, task, span, started + BUDGET).await,
    }
}

/// Hands a Task to its source actor and maps the outcome to an answer.
pub async fn submit(
    source: &SourceHandle,
    task: Box<Task>,
    span: &RootSpan,
    deadline: Instant,
) -> Result<(&'static str, HttpResponse), RouteError> {
    span.record("job", task.job_name().as_str());
    let Ok(_permit) = source.permits.clone().try_acquire_owned() else {
        return Err(RouteError::Unavailable(format!(
            "the {} source is at capacity; retry shortly",
            source.name
        )));
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let sent = tokio::time::timeout(left, source.addr.send(Submit { task, deadline })).await;
    let outcome = match sent {
        Err(_) => return Err(RouteError::Unavailable("timed out persisting the task; retry".into())),
        Ok(Err(e)) => return Err(RouteError::Unavailable(format!("source actor unavailable: {e}"))),
        Ok(Ok(o)) => o,
    };
    match outcome {
        Ok(Enqueued::Queued(job)) => Ok((
            "queued",
            HttpResponse::Accepted().json(json!({"status": "queued", "job": job})),
        )),
        Ok(Enqueued::Duplicate(job)) => Ok((
            "duplicate",
            HttpResponse::Ok().json(json!({"status": "duplicate", "job": job})),
        )),
        Err(SubmitError::RateLimited(l)) => Err(RouteError::RateLimited {
            scope: l.scope,
            retry_after: l.retry_after,
        }),
        Err(SubmitError::Invalid(m)) => Err(RouteError::Unprocessable(m)),
        Err(SubmitError::Unavailable(m)) => Err(RouteError::Unavailable(m)),
    }
}
