//! The task APIs: `POST /api/v1/tasks` (generic; CLI and automation, with
//! `Idempotency-Key`), `POST /api/v1/pm/tasks` and `GET /api/v1/pm/tasks/{id}`
//! (the PM Agent). The bearer token decides the source actor. Bodies are
//! JSON objects with each key at most once ([`strict_json`]: 400 naming a
//! duplicate key, as the webhook routes answer). A generic task under an
//! `Idempotency-Key` carries the hash of its request on its Job: the same
//! key with the same body is `200 duplicate`, with another body `422
//! idempotency_key_reused` — never a silent drop of the new body.

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use tracing_actix_web::RootSpan;

use super::auth::{ApiCaller, TokenKind};
use super::error::RouteError;
use super::github::submit;
use super::jobs::{find_job, JobRef, JobView};
use super::schema::{ErrorBody, SubmitAnswer};
use super::{read_body, AppState};
use crate::job::JobExtras;
use crate::sources::api::{self, Accepted};
use crate::sources::strict_json;
use crate::task::TaskSource;

/// Largest task document (PM tasks carry markdown files).
const MAX_TASK_BODY: usize = 2 * 1024 * 1024;
/// Budget to persist a task before answering 503.
const BUDGET: Duration = Duration::from_secs(15);

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, RouteError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            RouteError::BadRequest(
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            )
        })?;
    Ok(Some(k.to_string()))
}

/// The hash of a task request kept on its Job under an `Idempotency-Key`:
/// SHA-256 of the decoded document written back with its keys sorted, so
/// whitespace and key order do not make two requests different.
fn request_hash(body: &Value) -> String {
    use sha2::Digest;
    // A Value (keys in a BTreeMap) always serialises.
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&canonical))
}

async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<Value, RouteError> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(RouteError::BadRequest(
            "content type must be application/json".into(),
        ));
    }
    let body = read_body(req, payload, MAX_TASK_BODY).await?;
    strict_json::from_slice(&body)
        .map_err(|e| RouteError::BadRequest(format!("malformed JSON: {e}")))
}

async fn accept(
    state: &AppState,
    caller: &ApiCaller,
    event: &str,
    delivery: Option<&str>,
    accepted: Result<Accepted, Vec<crate::sources::fields::FieldError>>,
    request_hash: Option<String>,
    span: &RootSpan,
) -> Result<HttpResponse, RouteError> {
    span.record("source", caller.label());
    let result = match accepted {
        Err(fields) => Err(RouteError::Fields(fields)),
        Ok(a) => {
            let handle = match a.task.source {
                TaskSource::PmAgent => &state.pm_agent,
                _ => &state.cli,
            };
            let extras = JobExtras {
                files: a.files,
                timeout_seconds: a.timeout_seconds,
                request_hash,
                callback_url: a.callback_url,
                ..JobExtras::default()
            };
            submit(state, handle, a.task, extras, span, Instant::now() + BUDGET).await
        }
    };
    super::record_outcome(state, caller.label(), event, delivery, &result);
    result.map(|a| a.response)
}

/// Submit a task.
///
/// With a `callback_url`, each state of the task's Job is POSTed there as a
/// signed `CallbackEvent` (see that schema), in order, at least once.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks",
    request_body(content = super::schema::TaskRequest, description = "The task"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of the same request one task")),
    responses(
        (status = 202, description = "Queued: a suspended Job now exists", body = SubmitAnswer),
        (status = 200, description = "Duplicate (same Idempotency-Key and the same body)", body = SubmitAnswer),
        (status = 400, description = "Malformed JSON (or a key given twice) or headers", body = ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 403, description = "A viewer token may not create tasks", body = ErrorBody),
        (status = 422, description = "Invalid fields, each listed (a `callback_url` without `CALLBACK_SECRET` or whose host is not on `CALLBACK_ALLOWED_HOSTS` included); or the Idempotency-Key was used with a different request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 429, description = "Rate limited: this token's requests, or tasks per repository or sender (Retry-After)", body = ErrorBody),
        (status = 503, description = "Unavailable; retry", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_task(
    req: HttpRequest,
    payload: web::Payload,
    caller: ApiCaller,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, RouteError> {
    let source = caller.creating_source()?;
    let key = idempotency_key(&req)?;
    span.record("delivery", key.as_deref().unwrap_or(""));
    let body = json_body(&req, payload).await?;
    let hash = key.as_ref().map(|_| request_hash(&body));
    let accepted = api::generic_task(
        &body,
        source,
        &caller.identity,
        key.as_deref(),
        &state.config.github_host,
        chrono::Utc::now(),
    );
    let accepted = api::with_callback(&body, &state.config.callbacks, accepted);
    accept(
        &state,
        &caller,
        "task",
        key.as_deref(),
        accepted,
        hash,
        &span,
    )
    .await
}

/// Submit a PM Agent task (Task Master format). The task id is the dedup key.
///
/// With a `callback_url`, each state of the task's Job is POSTed there as a
/// signed `CallbackEvent` (see that schema), in order, at least once.
#[utoipa::path(post, path = "/api/v1/pm/tasks", tag = "pm-agent",
    request_body(content = super::schema::PmTaskRequest, description = "The PM Agent's task"),
    responses(
        (status = 202, description = "Queued", body = SubmitAnswer),
        (status = 200, description = "Duplicate (same task id)", body = SubmitAnswer),
        (status = 400, description = "Malformed JSON (or a key given twice)", body = ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests from this token (Retry-After)", body = ErrorBody),
        (status = 403, description = "The token is not a pm-agent token", body = ErrorBody),
        (status = 422, description = "Invalid fields, each listed (a `callback_url` without `CALLBACK_SECRET` or whose host is not on `CALLBACK_ALLOWED_HOSTS` included)", body = ErrorBody),
        (status = 503, description = "Unavailable; retry", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_pm_task(
    req: HttpRequest,
    payload: web::Payload,
    caller: ApiCaller,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, RouteError> {
    if caller.kind != TokenKind::PmAgent {
        return Err(RouteError::Forbidden(
            "this endpoint needs a pm-agent token".into(),
        ));
    }
    let body = json_body(&req, payload).await?;
    let id = body
        .get("id")
        .map(|v| v.to_string().trim_matches('"').to_string());
    if let Some(id) = &id {
        span.record("delivery", id.as_str());
    }
    let accepted = api::pm_task(
        &body,
        &caller.identity,
        &state.config.github_host,
        chrono::Utc::now(),
    );
    let accepted = api::with_callback(&body, &state.config.callbacks, accepted);
    accept(
        &state,
        &caller,
        "pm-task",
        id.as_deref(),
        accepted,
        None,
        &span,
    )
    .await
}

/// The state of a PM Agent task's Job.
#[utoipa::path(get, path = "/api/v1/pm/tasks/{id}", tag = "pm-agent",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "The task's Job", body = JobView),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests from this token (Retry-After)", body = ErrorBody),
        (status = 404, description = "No Job for this task id known to this replica", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_pm_task(
    path: web::Path<String>,
    caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    let key = api::pm_dedup_key(&path);
    // From the watch store (or this replica's answers of a moment ago):
    // an id neither knows is 404 without a Kubernetes call.
    let view = find_job(&state, &caller, JobRef::DedupKey(&key))
        .await?
        .ok_or_else(|| RouteError::NotFound(format!("no job for PM task {:?}", path.as_str())))?;
    Ok(HttpResponse::Ok().json(view))
}
