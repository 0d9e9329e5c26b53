//! The operator API: list, inspect, cancel and read the logs of Jobs, and
//! the recent-events log. Lists and lookups come from the watch store's
//! indexes (no API-server call, no walk over every Job); one Job's whole
//! task document, cancel and logs go through the Kube actor. What a Job
//! looks like to clients is [`crate::cluster::view`]'s business.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::ApiCaller;
use super::error::RouteError;
use super::schema::ErrorBody;
use super::AppState;
use crate::cluster::jobspec::{dedup_hash, is_managed, LABEL_DEDUP_HASH, MANAGED_SELECTOR};
use crate::cluster::kube_actor::{CancelJob, GetJob, KubeError, ListJobs, StreamLogs};
use crate::cluster::state::JobState;
use crate::cluster::store::{JobFilter, JobStore};
pub use crate::cluster::view::{ConditionView, JobView};
use crate::events::{EventRecord, NewEvent};

/// Filters and paging of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct JobQuery {
    /// github, grafana, pm-agent or cli.
    pub source: Option<String>,
    /// queued, running, succeeded, failed, cancelled, timed_out.
    pub state: Option<String>,
    /// `owner/name` (or the label form `owner.name`).
    pub repository: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// The `next` token of the previous page.
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
}

/// A page of Jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub items: Vec<JobView>,
    /// Pass as `continue` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// List Jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, description = "A page of Jobs", body = JobList),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_jobs(
    q: web::Query<JobQuery>,
    _caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(RouteError::BadRequest("limit must be from 1 to 500".into()));
    }
    const STATES: [&str; 6] = [
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "timed_out",
    ];
    if let Some(s) = q.state.as_deref() {
        if !STATES.contains(&s) {
            return Err(RouteError::BadRequest(format!(
                "state must be one of {}",
                STATES.join(", ")
            )));
        }
    }
    let repo = q.repository.as_deref().map(crate::task::label_value);
    let filter = JobFilter {
        state: q.state.as_deref().and_then(JobState::parse),
        source: q.source.as_deref(),
        repository: repo.as_deref(),
    };
    let page = list_page(&state.jobs, &filter, q.continue_token.as_deref(), limit)?;
    Ok(HttpResponse::Ok().json(page))
}

/// One page of `GET /api/v1/jobs` from the store's indexes: newest first,
/// after the position of a `continue` token (`<created_at>|<name>`).
pub fn list_page(
    jobs: &JobStore,
    filter: &JobFilter<'_>,
    continue_token: Option<&str>,
    limit: usize,
) -> Result<JobList, RouteError> {
    let after = match continue_token {
        Some(tok) => {
            let bad = || RouteError::BadRequest("invalid continue token".into());
            let (created, name) = tok.split_once('|').ok_or_else(bad)?;
            let created = if created.is_empty() {
                0
            } else {
                chrono::DateTime::parse_from_rfc3339(created)
                    .map_err(|_| bad())?
                    .timestamp()
            };
            Some((created, name))
        }
        None => None,
    };
    let (records, more) = jobs.page(filter, after, limit);
    let items: Vec<JobView> = records.iter().map(|r| JobView::from_record(r)).collect();
    let next = if more {
        items
            .last()
            .map(|v| format!("{}|{}", v.created_at.as_deref().unwrap_or(""), v.name))
    } else {
        None
    };
    Ok(JobList { items, next })
}

/// How a route names the Job it wants.
#[derive(Debug, Clone, Copy)]
pub enum JobRef<'a> {
    /// By Job name.
    Name(&'a str),
    /// By the task's dedup key (annotation), e.g. a PM task id.
    DedupKey(&'a str),
}

/// A managed Job's view, with its whole task document: from the store
/// (then fetched from the API server for the task document), or, if the
/// store has not seen it yet (a Job created a moment ago), from the API
/// server alone — one object by name, or by the dedup-hash label, never a
/// list of every Job. `None` when it does not exist.
pub async fn find_job(state: &AppState, which: JobRef<'_>) -> Result<Option<JobView>, RouteError> {
    let stored = match which {
        JobRef::Name(n) => state.jobs.get(n),
        JobRef::DedupKey(k) => state
            .jobs
            .by_dedup_key(&crate::cluster::jobspec::dedup_annotation(k)),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let unavailable = |e: crate::actors::Refused| RouteError::Unavailable(e.to_string());
    let name = match (&stored, which) {
        (Some(r), _) => Some(r.name.to_string()),
        (None, JobRef::Name(n)) => Some(n.to_string()),
        (None, JobRef::DedupKey(_)) => None,
    };
    let fetched: Result<Option<Job>, RouteError> = match (name, which) {
        (Some(name), _) => {
            let msg = GetJob { name, deadline };
            match state.kube.ask(msg).await.map_err(unavailable)? {
                Ok(job) => Ok(job),
                Err(e) => Err(kube_error(e)),
            }
        }
        (None, JobRef::DedupKey(k)) => {
            let key = crate::cluster::jobspec::dedup_annotation(k);
            let msg = ListJobs {
                selector: format!("{MANAGED_SELECTOR},{LABEL_DEDUP_HASH}={}", dedup_hash(&key)),
                deadline,
            };
            match state.kube.ask(msg).await.map_err(unavailable)? {
                Ok(jobs) => Ok(jobs.into_iter().find(|j| {
                    crate::cluster::view::JobRecord::from_job(j, None)
                        .is_some_and(|r| r.dedup_key.as_deref() == Some(key.as_str()))
                })),
                Err(e) => Err(kube_error(e)),
            }
        }
        (None, JobRef::Name(_)) => Ok(None),
    };
    match (fetched, stored) {
        // Only managed Jobs are visible through this API.
        (Ok(Some(job)), _) if is_managed(&job) => Ok(JobView::from_job(&job)),
        (Ok(_), _) => Ok(None),
        // The store's record (abridged task) while the API server is away.
        (Err(RouteError::Unavailable(m)), Some(r)) => {
            tracing::debug!(job = %r.name, error = %m, "showing the stored record");
            Ok(Some(JobView::from_record(&r)))
        }
        (Err(e), _) => Err(e),
    }
}

/// Refuses a path parameter that cannot be a Job name (a DNS-1123
/// subdomain), before it reaches a store lookup or an API-server URL.
fn check_name(name: &str) -> Result<(), RouteError> {
    if crate::config::parse::is_dns1123_subdomain(name) {
        return Ok(());
    }
    Err(RouteError::BadRequest(
        "a Job name is 1 to 253 characters of lowercase letters, digits, '-' and '.'".into(),
    ))
}

async fn find(state: &AppState, name: &str) -> Result<JobView, RouteError> {
    check_name(name)?;
    find_job(state, JobRef::Name(name))
        .await?
        .ok_or_else(|| RouteError::NotFound(format!("no job named {name:?}")))
}

/// One Job.
#[utoipa::path(get, path = "/api/v1/jobs/{name}", tag = "jobs",
    params(("name" = String, Path, description = "Job name")),
    responses((status = 200, description = "The Job", body = JobView),
        (status = 400, description = "Not a valid Job name", body = ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 404, description = "No such Job", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_job(
    path: web::Path<String>,
    _caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    let view = find(&state, &path).await?;
    Ok(HttpResponse::Ok().json(view))
}

fn kube_error(e: KubeError) -> RouteError {
    super::error::from_kube(e, "no such job")
}

/// Cancel a Job (idempotent): a queued Job is never admitted, a running one
/// is stopped; a finished Job is left as it is.
#[utoipa::path(delete, path = "/api/v1/jobs/{name}", tag = "jobs",
    params(("name" = String, Path, description = "Job name")),
    responses((status = 200, description = "The Job after cancelling", body = JobView),
        (status = 400, description = "Not a valid Job name", body = ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 404, description = "No managed Job of this name", body = ErrorBody),
        (status = 503, description = "Kubernetes unavailable; retry", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_job(
    path: web::Path<String>,
    caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    check_name(&path)?;
    let msg = CancelJob {
        name: path.clone(),
        keep_running: false,
        deadline: Instant::now() + Duration::from_secs(10),
    };
    let job = state
        .kube
        .ask(msg)
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?
        .map_err(kube_error)?
        .ok_or_else(|| RouteError::NotFound(format!("no job named {:?}", path.as_str())))?;
    let view = JobView::from_job(&job)
        .ok_or_else(|| RouteError::NotFound(format!("no job named {:?}", path.as_str())))?;
    if view.state != JobState::Cancelled {
        // Finished before the cancel: nothing was cancelled.
        return Ok(HttpResponse::Ok().json(view));
    }
    tracing::info!(job = %path, by = %caller.identity, "job cancelled");
    state.events.record(NewEvent {
        source: caller.source.as_str(),
        event: "cancel",
        delivery: None,
        decision: "cancelled",
        reason: None,
        job: Some(&path),
    });
    Ok(HttpResponse::Ok().json(view))
}

/// Options of the logs endpoint.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// Stream new lines until the pod ends.
    pub follow: Option<bool>,
}

/// The agent's log (newest pod), as text; `?follow=true` streams.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/logs", tag = "jobs",
    params(("name" = String, Path, description = "Job name"), LogQuery),
    responses((status = 200, description = "Log lines", content_type = "text/plain", body = String),
        (status = 400, description = "Not a valid Job name", body = ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 404, description = "No such Job, or it has no pod yet", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_logs(
    path: web::Path<String>,
    q: web::Query<LogQuery>,
    _caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    check_name(&path)?;
    // Only a managed Job's logs: from the store, else one GET.
    let job_state = match state.jobs.get(&path) {
        Some(r) => r.state,
        None => find(&state, &path).await?.state,
    };
    let msg = StreamLogs {
        name: path.clone(),
        follow: q.follow.unwrap_or(false),
        deadline: Instant::now() + Duration::from_secs(10),
    };
    let lines = state
        .kube
        .ask(msg)
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?
        .map_err(|e| match e {
            KubeError::NotFound => RouteError::NotFound(format!(
                "job {:?} has no pod yet (state {})",
                path.as_str(),
                job_state.as_str()
            )),
            other => kube_error(other),
        })?;
    let body = lines.map(|l| match l {
        Ok(line) => Ok::<_, actix_web::Error>(web::Bytes::from(format!("{line}\n"))),
        Err(e) => Err(actix_web::error::ErrorInternalServerError(e)),
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .streaming(body))
}

/// Filters of the events log.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventQuery {
    /// Most events to return, 1 to 1000 (default 100).
    pub limit: Option<usize>,
    pub source: Option<String>,
    /// queued, duplicate, ignored, rejected, rate_limited, unavailable, cancelled…
    pub decision: Option<String>,
}

/// The most recent deliveries from every source with the decision taken.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, description = "Newest first", body = [EventRecord]),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    q: web::Query<EventQuery>,
    _caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(HttpResponse::Ok().json(state.events.recent(
        limit,
        q.source.as_deref(),
        q.decision.as_deref(),
    )))
}
