//! `POST /webhook/github`, following GitHub's delivery contract: headers
//! `X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`; JSON body up
//! to 25 MB; an answer within 10 s.

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tracing_actix_web::RootSpan;

use super::error::RouteError;
use super::{read_unauthenticated_body, Answer, AppState, SourceHandle};
use crate::actors::Refused;
use crate::job::JobExtras;
use crate::scheduler::Enqueued;
use crate::sources::actor::Submit;
use crate::sources::github::{route, verify_signature, SignatureError};
use crate::sources::Decision;
use crate::task::Task;
use crate::telemetry::Untrusted;

/// GitHub gives a delivery 10 s; answer 503 a little before that.
const BUDGET: Duration = Duration::from_secs(9);

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A GitHub webhook delivery (signed with `X-Hub-Signature-256`).
#[utoipa::path(post, path = "/webhook/github", tag = "webhooks", operation_id = "github_webhook",
    request_body(content = Object, description = "The GitHub event payload", content_type = "application/json"),
    params(
        ("X-GitHub-Event" = String, Header, description = "Event name"),
        ("X-GitHub-Delivery" = String, Header, description = "Delivery id (redeliveries keep it)"),
        ("X-Hub-Signature-256" = String, Header, description = "sha256=HMAC of the body")),
    responses(
        (status = 202, description = "Queued (a suspended Job exists), ignored with a reason, or a slash command's outcome (`{\"status\": \"command\", \"command\", \"outcome\": done|nothing_to_do, \"jobs\"}`)", body = super::schema::SubmitAnswer),
        (status = 200, description = "Duplicate, or pong for ping", body = super::schema::SubmitAnswer),
        (status = 400, description = "Missing headers, non-JSON, malformed payload", body = super::schema::ErrorBody),
        (status = 401, description = "Missing or wrong signature", body = super::schema::ErrorBody),
        (status = 413, description = "Body too large", body = super::schema::ErrorBody),
        (status = 429, description = "Rate limited (Retry-After)", body = super::schema::ErrorBody),
        (status = 503, description = "At capacity or Kubernetes unavailable (Retry-After)", body = super::schema::ErrorBody)))]
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
        Ok(a) => a.decision,
        Err(e) => e.code(),
    };
    span.record("decision", decision);
    metrics.decision("github", decision);
    match &result {
        Ok(a) => tracing::info!(decision = a.decision, "github delivery"),
        Err(e) => tracing::info!(decision, error = %e, "github delivery refused"),
    }
    let event = header(&req, "x-github-event").unwrap_or("");
    super::record_outcome(
        &state,
        "github",
        event,
        header(&req, "x-github-delivery"),
        &result,
    );
    result.map(|a| a.response)
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    span: &RootSpan,
    started: Instant,
) -> Result<Answer, RouteError> {
    let event = header(req, "x-github-event")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RouteError::BadRequest("missing X-GitHub-Event header".into()))?;
    let delivery = header(req, "x-github-delivery")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RouteError::BadRequest("missing X-GitHub-Delivery header".into()))?;
    let ct = header(req, "content-type").unwrap_or("");
    // Media types are case-insensitive (RFC 9110, 8.3.1).
    let media_type = ct.split(';').next().map(str::trim).unwrap_or("");
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(RouteError::BadRequest(format!(
            "content type must be application/json (got {:?}); set the webhook's content type to application/json",
            ct.chars().take(100).collect::<String>()
        )));
    }
    let (body, budget) =
        read_unauthenticated_body(req, payload, state.config.github_max_body_bytes, state).await?;
    if !state.config.allow_insecure_no_signature || !state.config.github_webhook_secrets.is_empty()
    {
        verify_signature(
            &state.config.github_webhook_secrets,
            req.headers()
                .get("x-hub-signature-256")
                .map(|v| v.as_bytes()),
            &body,
        )
        .map_err(|e| match e {
            SignatureError::NoSecret => RouteError::Internal("no webhook secret configured".into()),
            other => RouteError::Unauthorized(other.to_string()),
        })?;
    }
    // Authenticated: the body's share of the unauthenticated budget is
    // returned, and the headers (the caller's words, not covered by the
    // signature) go on the log line — quoted and cut.
    budget.release();
    span.record(
        "event",
        tracing::field::display(Untrusted(event.as_bytes())),
    );
    span.record(
        "delivery",
        tracing::field::display(Untrusted(delivery.as_bytes())),
    );
    let decision = route(event, delivery, &body, &state.rules, &state.trust).map_err(|e| {
        if e.is_client_error() {
            RouteError::BadRequest(e.to_string())
        } else {
            RouteError::Internal(e.to_string())
        }
    })?;
    match decision {
        Decision::Ping => Ok(Answer::new(
            "ping",
            None,
            HttpResponse::Ok().json(json!({"status": "pong"})),
        )),
        Decision::Ignored { reason } => {
            if reason == "untrusted" {
                tracing::warn!("ignored a delivery from an untrusted sender");
            }
            let response =
                HttpResponse::Accepted().json(json!({"status": "ignored", "reason": reason}));
            Ok(Answer {
                decision: "ignored",
                job: None,
                reason: Some(reason),
                response,
                subject: subject_of(&body),
            })
        }
        Decision::UntrustedCommand { command, login } => {
            super::commands::untrusted(state, command, &login);
            let reason = "untrusted".to_string();
            let response =
                HttpResponse::Accepted().json(json!({"status": "ignored", "reason": reason}));
            Ok(Answer {
                decision: "ignored",
                job: None,
                reason: Some(reason),
                response,
                subject: subject_of(&body),
            })
        }
        Decision::Command(command) => {
            super::commands::act(state, command, span, started + BUDGET).await
        }
        Decision::Task(task) => {
            submit(
                state,
                &state.github,
                task,
                JobExtras::default(),
                span,
                started + BUDGET,
            )
            .await
        }
    }
}

/// Hands a Task to its source actor and maps the outcome to an answer;
/// the Job of a 2xx answer is remembered for a minute in
/// [`super::recent`], so this replica's read routes know it before the
/// watch delivers it.
pub async fn submit(
    state: &AppState,
    source: &SourceHandle,
    task: Box<Task>,
    extras: JobExtras,
    span: &RootSpan,
    deadline: Instant,
) -> Result<Answer, RouteError> {
    span.record("job", task.job_name().as_str());
    let subject = super::Subject::of_task(&task);
    let (task_source, dedup_key) = (task.source.as_str(), task.dedup_key.clone());
    let remember = |job: &str| {
        state
            .recent
            .insert(job, task_source, &dedup_key, Instant::now())
    };
    let left = deadline.saturating_duration_since(Instant::now());
    // Refused at once when the source's mailbox is full (counted in
    // orchestrator_actor_mailbox_overflow_total): 503 with Retry-After.
    let asked = tokio::time::timeout(
        left,
        source.ask(Submit {
            task,
            extras,
            deadline,
        }),
    );
    // A graceful stop closes connections at the end of its grace: answer
    // 503 before then rather than be cut off (the Job, if its create still
    // lands, is found as a duplicate on the retry).
    let sent = tokio::select! {
        sent = asked => sent,
        () = state.health.must_answer() => {
            return Err(RouteError::Unavailable(
                "the service is shutting down; retry".into(),
            ))
        }
    };
    let outcome = match sent {
        Err(_) => {
            return Err(RouteError::Unavailable(
                "timed out persisting the task; retry".into(),
            ))
        }
        Ok(Err(Refused::Full(name))) => {
            return Err(RouteError::Unavailable(format!(
                "the {name} source is at capacity; retry shortly"
            )))
        }
        Ok(Err(e)) => return Err(RouteError::Unavailable(e.to_string())),
        Ok(Ok(o)) => o,
    };
    match outcome {
        Ok(Enqueued::Queued(job)) => {
            remember(&job);
            let r = HttpResponse::Accepted().json(json!({"status": "queued", "job": job}));
            let mut a = Answer::new("queued", Some(job), r);
            a.subject = subject;
            Ok(a)
        }
        Ok(Enqueued::Duplicate(job)) => {
            remember(&job);
            let r = HttpResponse::Ok().json(json!({"status": "duplicate", "job": job}));
            let mut a = Answer::new("duplicate", Some(job), r);
            a.subject = subject;
            Ok(a)
        }
        Err(e) => Err(e.into()),
    }
}

/// What an ignored delivery was about (repository, issue or pull request,
/// sender), read from its signed body for the events log; whatever is
/// missing or malformed is left out.
fn subject_of(body: &[u8]) -> super::Subject {
    #[derive(serde::Deserialize)]
    struct Named {
        full_name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Numbered {
        number: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Login {
        login: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Head {
        repository: Option<Named>,
        issue: Option<Numbered>,
        pull_request: Option<Numbered>,
        number: Option<u64>,
        sender: Option<Login>,
        action: Option<String>,
    }
    let Ok(h) = serde_json::from_slice::<Head>(body) else {
        return super::Subject::default();
    };
    super::Subject {
        repository: h.repository.and_then(|r| r.full_name),
        number: h
            .issue
            .and_then(|i| i.number)
            .or(h.pull_request.and_then(|p| p.number))
            .or(h.number),
        sender: h.sender.and_then(|s| s.login),
        action: h.action,
    }
}
