//! `POST /webhook/github`, following GitHub's delivery contract: headers
//! `X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`; JSON body up
//! to 25 MB; an answer within 10 s.

use std::time::{Duration, Instant};

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tracing_actix_web::RootSpan;

use super::error::RouteError;
use super::{read_unauthenticated_body, Answer, AppState, SourceHandle};
use crate::actors::Refused;
use crate::cluster::audit::{self, quoted, CancelledBy, EventType};
use crate::job::{JobExtras, JobState};
use crate::rules::OnRepeat;
use crate::scheduler::Enqueued;
use crate::sources::actor::Submit;
use crate::sources::github::{about, route_about, verify_signature, About, SignatureError};
use crate::sources::Decision;
use crate::task::Task;
use crate::telemetry::Untrusted;

/// GitHub gives a delivery 10 s; answer 503 a little before that.
const BUDGET: Duration = Duration::from_secs(9);

/// The delivery's headers (named once: a lookup by text would parse and
/// copy the name each time).
const X_GITHUB_EVENT: HeaderName = HeaderName::from_static("x-github-event");
const X_GITHUB_DELIVERY: HeaderName = HeaderName::from_static("x-github-delivery");
const X_HUB_SIGNATURE_256: HeaderName = HeaderName::from_static("x-hub-signature-256");

fn header<'a>(req: &'a HttpRequest, name: &HeaderName) -> Option<&'a str> {
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
        (status = 202, description = "Queued (a suspended Job exists; with `superseded`: the live Jobs of the issue it cancelled, `on_repeat: supersede`), ignored with a reason, or a slash command's outcome (`{\"status\": \"command\", \"command\", \"outcome\": done|nothing_to_do, \"jobs\"}`)", body = super::schema::SubmitAnswer),
        (status = 200, description = "Duplicate, pong for ping, or ignored because the issue / PR has a live Job (`on_repeat: ignore`: `{\"status\": \"ignored\", \"reason\": \"a run is active\", \"job\"}`)", body = super::schema::SubmitAnswer),
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
    let event = header(&req, &X_GITHUB_EVENT);
    let delivery = header(&req, &X_GITHUB_DELIVERY);
    let result = handle(&req, (event, delivery), payload, &state, &span, started).await;
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
    super::record_outcome(&state, "github", event.unwrap_or(""), delivery, &result);
    result.map(|a| a.response)
}

async fn handle(
    req: &HttpRequest,
    (event, delivery): (Option<&str>, Option<&str>),
    payload: web::Payload,
    state: &AppState,
    span: &RootSpan,
    started: Instant,
) -> Result<Answer, RouteError> {
    let event = event
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RouteError::BadRequest("missing X-GitHub-Event header".into()))?;
    let delivery = delivery
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RouteError::BadRequest("missing X-GitHub-Delivery header".into()))?;
    let ct = header(req, &actix_web::http::header::CONTENT_TYPE).unwrap_or("");
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
                .get(&X_HUB_SIGNATURE_256)
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
    let (decision, decoded) = route_about(event, delivery, &body, &state.rules, &state.trust)
        .map_err(|e| {
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
            let response = HttpResponse::Accepted().json(Ignored {
                status: "ignored",
                reason: &reason,
            });
            Ok(Answer {
                decision: "ignored",
                job: None,
                reason: Some(reason),
                gone: false,
                response,
                subject: subject_of(decoded, &body),
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
                gone: false,
                response,
                subject: subject_of(decoded, &body),
            })
        }
        Decision::Command(command) => {
            super::commands::act(state, command, span, started + BUDGET).await
        }
        Decision::Task(task) => on_task(state, task, delivery, span, started + BUDGET).await,
    }
}

/// A routed task, by its rule's `on_repeat` when its issue or PR already
/// has a live GitHub Job (other than the task's own: a redelivery stays a
/// duplicate). Decided on the watch store, so a Job created a moment ago
/// on another replica, not yet watched, is not seen.
///
/// * `queue`: submitted as ever; the scheduler runs one Job per issue.
/// * `ignore`: nothing created; 200 `{"status": "ignored", "reason": "a run
///   is active", "job"}` naming the live Job (the running one if any).
/// * `supersede`: the new Job is created first, then the live ones are
///   cancelled, marked superseded by it (annotation and Event). In that
///   order so nothing is lost if a cancel fails: the worst case is a
///   queued new run behind an old one (logged), never no run at all.
async fn on_task(
    state: &AppState,
    task: Box<Task>,
    delivery: &str,
    span: &RootSpan,
    deadline: Instant,
) -> Result<Answer, RouteError> {
    let rule = task.labels.get("rule").and_then(|r| state.rules.get(r));
    // `on_budget: refuse`: nothing is created while the budget is spent
    // (a task already accepted stays a duplicate).
    if rule.is_some_and(|r| r.on_budget == crate::rules::OnBudget::Refuse)
        && state.jobs.stored_by_dedup_key(&task.dedup_key).is_none()
    {
        let repo = task.repository.as_deref().unwrap_or("").to_lowercase();
        if let Some(why) = state
            .jobs
            .store()
            .waits()
            .get()
            .budget_spent(&repo, "github")
        {
            let response = HttpResponse::Accepted().json(json!({
                "status": "ignored", "reason": why,
            }));
            return Ok(Answer {
                decision: "ignored",
                job: None,
                reason: Some(why),
                gone: false,
                subject: super::Subject::of_task(&task),
                response,
            });
        }
    }
    let on_repeat = rule.map_or(OnRepeat::Queue, |r| r.on_repeat);
    let mut live = match (
        on_repeat,
        &task.repository,
        task.issue_number.or(task.pr_number),
    ) {
        (OnRepeat::Queue, _, _) | (_, None, _) | (_, _, None) => Vec::new(),
        (_, Some(repo), Some(number)) => {
            let own = task.job_name();
            let mut live: Vec<_> = state
                .jobs
                .of_issue("github", repo, number)
                .into_iter()
                .filter(|r| r.state.is_live() && *r.name != *own)
                .collect();
            // Running first, then the newest.
            live.sort_by_key(|r| r.state != JobState::Running);
            live
        }
    };
    let sender = task.requested_by.clone().unwrap_or_default();
    let because = format!("delivery {}, by {}", quoted(delivery), quoted(&sender));
    if on_repeat == OnRepeat::Ignore {
        if let Some(active) = live.first() {
            let job = active.name.to_string();
            tracing::info!(job = %job, "a repeated trigger ignored: a run is active");
            state.jobs.audit().record(
                &job,
                active.uid.as_deref(),
                EventType::Normal,
                audit::reason::REPEAT_IGNORED,
                &format!("a repeated trigger ({because}) was ignored: this run is active"),
            );
            let reason = "a run is active".to_string();
            let response = HttpResponse::Ok().json(json!({
                "status": "ignored", "reason": reason, "job": job,
            }));
            return Ok(Answer {
                decision: "ignored",
                job: Some(job),
                reason: Some(reason),
                gone: false,
                subject: super::Subject::of_task(&task),
                response,
            });
        }
    }
    let extras = placement(rule);
    let answer = submit(state, &state.github, task, extras, span, deadline).await?;
    let Some(new_job) = answer.job.clone() else {
        return Ok(answer);
    };
    if on_repeat != OnRepeat::Supersede || live.is_empty() {
        return Ok(answer);
    }
    if answer.decision != "queued" {
        // A redelivery (its first attempt may have been cut off before
        // the cancels): supersede what is older than its Job, if that Job
        // is itself still live — never a newer run that replaced it.
        match state.jobs.stored(&new_job) {
            Some(mine) if answer.decision == "duplicate" && mine.state.is_live() => {
                live.retain(|r| r.created < mine.created);
            }
            _ => live.clear(),
        }
        if live.is_empty() {
            return Ok(answer);
        }
    }
    let calls = live.iter().map(|r| {
        let by = CancelledBy::Superseded {
            by_job: new_job.clone(),
            because: because.clone(),
        };
        state
            .jobs
            .cancel(r.name.to_string(), false, deadline, false, by)
    });
    let results = futures::future::join_all(calls).await;
    let mut superseded = Vec::new();
    for (r, result) in live.iter().zip(results) {
        match result {
            Ok(Some(v)) if v.state == JobState::Cancelled => {
                tracing::info!(job = %r.name, by = %new_job, "job superseded");
                superseded.push(r.name.to_string());
            }
            // Finished (or gone) meanwhile: nothing to supersede.
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(job = %r.name, by = %new_job, error = %e,
                    "could not cancel a superseded job; the new one waits behind it");
            }
        }
    }
    let response = HttpResponse::Accepted().json(json!({
        "status": "queued", "job": new_job, "superseded": superseded,
    }));
    Ok(Answer { response, ..answer })
}

/// What a Job of `rule` gets beyond its task: the rule's namespace and
/// Secret (`src/rules/placement.rs`); nothing for no rule.
pub fn placement(rule: Option<&crate::rules::Rule>) -> JobExtras {
    JobExtras {
        namespace: rule.and_then(|r| r.namespace.clone()),
        secret: rule.and_then(|r| r.secret.clone()),
        ..JobExtras::default()
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
    let namespace = extras.namespace.clone();
    let remember = |job: &str| {
        let at = namespace.as_deref();
        state
            .recent
            .insert_in(job, at, task_source, &dedup_key, Instant::now())
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
        Ok(Enqueued::Gone(job)) => {
            // Accepted before (the dedup record), its Job deleted since.
            let r =
                HttpResponse::Ok().json(json!({"status": "duplicate", "job": job, "gone": true}));
            let mut a = Answer::new("duplicate", Some(job), r);
            a.gone = true;
            Ok(a)
        }
        Err(e) => Err(e.into()),
    }
}

/// The answer to an ignored delivery, `{"status": "ignored", "reason"}`
/// (written without building a JSON tree).
#[derive(serde::Serialize)]
struct Ignored<'a> {
    status: &'static str,
    reason: &'a str,
}

/// What an ignored delivery is about, for the events log: from routing's
/// decode when it decoded the payload, else read from the body when the
/// log is read ([`about`]; most of a flood of ignored deliveries leave the
/// log unread).
fn subject_of(decoded: Option<About>, body: &web::Bytes) -> super::Subject {
    match decoded {
        Some(about) => super::Subject {
            deferred: None,
            repository: about.repository,
            number: about.number,
            sender: about.sender,
            action: about.action,
        },
        None => super::Subject {
            deferred: Some((body.clone(), about)),
            ..super::Subject::default()
        },
    }
}
