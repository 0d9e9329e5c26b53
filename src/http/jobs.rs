//! The operator API: list, inspect, cancel and read the logs of Jobs, and
//! the recent-events log. Reads come from the watch's reflector store (no
//! API-server call); cancel and logs go through the Kube actor.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::ApiCaller;
use super::error::RouteError;
use super::schema::ErrorBody;
use super::AppState;
use crate::cluster::jobspec::{
    is_managed, unescape_expansion, ANNOTATION_DEDUP_KEY, ANNOTATION_URL, LABEL_KIND,
    LABEL_REPOSITORY, LABEL_SOURCE, MANAGED_SELECTOR,
};
use crate::cluster::kube_actor::{CancelJob, GetJob, KubeError, ListJobs, StreamLogs};
use crate::cluster::state::{job_priority, job_state, JobState};
use crate::events::{EventRecord, NewEvent};

/// A condition of the Job.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<String>,
}

/// One Job as the operator API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub name: String,
    /// queued, running, succeeded, failed, cancelled or timed_out.
    #[schema(value_type = String)]
    pub state: JobState,
    pub source: Option<String>,
    pub kind: Option<String>,
    /// The repository label (`owner.name`).
    pub repository: Option<String>,
    pub priority: i32,
    pub url: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The task document the agent received (`TASK_JSON`).
    #[schema(value_type = Object)]
    pub task: Option<Value>,
    pub conditions: Vec<ConditionView>,
}

fn label(job: &Job, key: &str) -> Option<String> {
    job.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .cloned()
}

/// Builds the API view of a Job.
pub fn job_view(job: &Job) -> JobView {
    let status = job.status.as_ref();
    let conditions: Vec<ConditionView> = status
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| ConditionView {
                    kind: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.as_ref().map(|t| t.0.to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    let finished = status
        .and_then(|s| s.completion_time.as_ref())
        .map(|t| t.0.to_string())
        .or_else(|| {
            conditions
                .iter()
                .find(|c| (c.kind == "Failed" || c.kind == "Complete") && c.status == "True")
                .and_then(|c| c.last_transition_time.clone())
        });
    let task = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.iter().find(|c| c.name == "agent"))
        .and_then(|c| c.env.as_ref())
        .and_then(|env| env.iter().find(|e| e.name == "TASK_JSON"))
        .and_then(|e| e.value.as_deref())
        .and_then(|v| serde_json::from_str(&unescape_expansion(v)).ok());
    JobView {
        name: job.metadata.name.clone().unwrap_or_default(),
        state: job_state(job),
        source: label(job, LABEL_SOURCE),
        kind: label(job, LABEL_KIND),
        repository: label(job, LABEL_REPOSITORY),
        priority: job_priority(job),
        url: job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_URL))
            .cloned(),
        created_at: job
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        started_at: status
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string()),
        finished_at: finished,
        task,
        conditions,
    }
}

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
    let mut views: Vec<JobView> = state
        .jobs
        .state()
        .iter()
        .map(|j| job_view(j))
        .filter(|v| {
            q.source
                .as_deref()
                .is_none_or(|s| v.source.as_deref() == Some(s))
        })
        .filter(|v| q.state.as_deref().is_none_or(|s| v.state.as_str() == s))
        .filter(|v| {
            repo.as_deref()
                .is_none_or(|r| v.repository.as_deref() == Some(r))
        })
        .collect();
    // Newest first; the name breaks ties so pages are stable.
    views.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.name.cmp(&b.name))
    });
    let start = match &q.continue_token {
        Some(tok) => {
            let (created, name) = tok
                .split_once('|')
                .ok_or_else(|| RouteError::BadRequest("invalid continue token".into()))?;
            views
                .iter()
                .position(|v| {
                    let c = v.created_at.as_deref().unwrap_or("");
                    c < created || (c == created && v.name.as_str() > name)
                })
                .unwrap_or(views.len())
        }
        None => 0,
    };
    let mut page: Vec<JobView> = views.into_iter().skip(start).take(limit + 1).collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last()
            .map(|v| format!("{}|{}", v.created_at.as_deref().unwrap_or(""), v.name))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(JobList { items: page, next }))
}

/// How a route names the Job it wants.
pub enum JobRef<'a> {
    /// By Job name.
    Name(&'a str),
    /// By the task's dedup key (annotation), e.g. a PM task id.
    DedupKey(&'a str),
}

impl JobRef<'_> {
    fn matches(&self, job: &Job) -> bool {
        match self {
            JobRef::Name(n) => job.metadata.name.as_deref() == Some(*n),
            JobRef::DedupKey(k) => {
                job.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_DEDUP_KEY))
                    .map(String::as_str)
                    == Some(*k)
            }
        }
    }
}

/// A managed Job from the watch's store or, if the store has not seen it
/// yet (a Job created a moment ago), from the API server. `None` when it
/// does not exist.
pub async fn find_job(
    state: &AppState,
    which: JobRef<'_>,
) -> Result<Option<std::sync::Arc<Job>>, RouteError> {
    if let Some(job) = state.jobs.state().into_iter().find(|j| which.matches(j)) {
        return Ok(Some(job));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let unavailable = |e: crate::actors::Refused| RouteError::Unavailable(e.to_string());
    let fetched: Vec<Job> = match which {
        JobRef::Name(name) => {
            let msg = GetJob {
                name: name.to_string(),
                deadline,
            };
            state
                .kube
                .ask(msg)
                .await
                .map_err(unavailable)?
                .map_err(kube_error)?
                .into_iter()
                .collect()
        }
        JobRef::DedupKey(_) => {
            let msg = ListJobs {
                selector: MANAGED_SELECTOR.to_string(),
                deadline,
            };
            state
                .kube
                .ask(msg)
                .await
                .map_err(unavailable)?
                .map_err(kube_error)?
        }
    };
    // Only managed Jobs are visible through this API.
    Ok(fetched
        .into_iter()
        .find(|j| is_managed(j) && which.matches(j))
        .map(std::sync::Arc::new))
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

async fn find(state: &AppState, name: &str) -> Result<std::sync::Arc<Job>, RouteError> {
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
    let job = find(&state, &path).await?;
    Ok(HttpResponse::Ok().json(job_view(&job)))
}

fn kube_error(e: KubeError) -> RouteError {
    match e {
        KubeError::NotFound => RouteError::NotFound("no such job".into()),
        KubeError::Unavailable(m) => RouteError::Unavailable(m),
        other => RouteError::Internal(other.to_string()),
    }
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
        deadline: Instant::now() + Duration::from_secs(10),
    };
    let job = state
        .kube
        .ask(msg)
        .await
        .map_err(|e| RouteError::Unavailable(e.to_string()))?
        .map_err(kube_error)?
        .ok_or_else(|| RouteError::NotFound(format!("no job named {:?}", path.as_str())))?;
    let st = job_state(&job);
    if st != JobState::Cancelled {
        // Finished before the cancel: nothing was cancelled.
        return Ok(HttpResponse::Ok().json(job_view(&job)));
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
    Ok(HttpResponse::Ok().json(job_view(&job)))
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
    let job = find(&state, &path).await?;
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
                job_state(&job).as_str()
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
