//! The operator API: list, inspect, cancel and read the logs of Jobs, and
//! the recent-events log. Lists and lookups come from the watch store's
//! indexes (no API-server call, no walk over every Job). A name the store
//! does not know (nor this replica's answers of a moment ago,
//! [`super::recent`]) is 404 without any Kubernetes call, whoever asks and
//! however often; only a known Job's whole task document, cancel and logs
//! go through the Kube actor, on the gate's share for reads. Each caller
//! sees only the Jobs of its token's scope ([`super::auth`]). What a Job
//! looks like to clients is [`crate::cluster::view`]'s business; every
//! call behind these routes goes through [`crate::cluster::jobs::Jobs`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::ApiCaller;
use super::error::RouteError;
use super::schema::ErrorBody;
use super::AppState;
use crate::cluster::audit::CancelledBy;
use crate::cluster::jobs::JobsError;
use crate::cluster::store::{JobFilter, JobStore};
pub use crate::cluster::view::JobView;
use crate::events::{EventRecord, NewEvent};
pub use crate::job::ConditionView;
use crate::job::JobRecord;
use crate::job::JobState;

/// Filters and paging of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct JobQuery {
    /// github, grafana, pm-agent or cli.
    pub source: Option<String>,
    /// queued, running, succeeded, failed, cancelled, timed_out.
    pub state: Option<String>,
    /// `owner/name` (or the label form `owner.name`).
    pub repository: Option<String>,
    /// The namespace the Jobs run in (the service's own, or a rule's
    /// tenant namespace).
    pub namespace: Option<String>,
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
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests from this token (Retry-After)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_jobs(
    q: web::Query<JobQuery>,
    caller: ApiCaller,
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
    if let Some(ns) = q.namespace.as_deref() {
        if !crate::config::is_dns1123_label(ns) {
            return Err(RouteError::BadRequest(
                "namespace must be a namespace name (a DNS-1123 label: 1 to 63 lowercase letters, digits and '-')".into(),
            ));
        }
    }
    let repo = q.repository.as_deref().map(crate::task::label_value);
    // A scoped token sees its own source's Jobs only.
    let source = match (caller.only_source(), q.source.as_deref()) {
        (Some(own), Some(asked)) if own != asked => {
            return Ok(HttpResponse::Ok().json(JobList {
                items: Vec::new(),
                next: None,
            }))
        }
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    let filter = JobFilter {
        state: q.state.as_deref().and_then(JobState::parse),
        source,
        repository: repo.as_deref(),
        namespace: q.namespace.as_deref(),
    };
    let page = list_page(
        state.jobs.store(),
        &filter,
        q.continue_token.as_deref(),
        limit,
    )?;
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

/// Where a Job a route names is known from, before any Kubernetes call:
/// the watch store, else the Jobs this replica answered a moment ago
/// ([`super::recent`]). `None` — a name neither knows, or a Job outside
/// the caller's scope — is answered 404 without asking the API server, so
/// requests for random names cost no Kubernetes call (and a scoped token
/// cannot tell another source's Job from a name that does not exist).
pub struct Known {
    pub name: String,
    pub stored: Option<Arc<JobRecord>>,
    /// Where a recent answer's Job was created (`None`: the service's own
    /// namespace, or stored).
    pub namespace: Option<String>,
}

/// Looks `which` up in the store, then among the recent answers; only a
/// Job within `caller`'s scope is known.
pub fn locate(state: &AppState, caller: &ApiCaller, which: JobRef<'_>) -> Option<Known> {
    let stored = match which {
        JobRef::Name(n) => state.jobs.stored(n),
        JobRef::DedupKey(k) => state.jobs.stored_by_dedup_key(k),
    };
    if let Some(r) = stored {
        return caller.sees(r.source.as_deref()).then(|| Known {
            name: r.name.to_string(),
            stored: Some(r),
            namespace: None,
        });
    }
    let now = Instant::now();
    let recent = match which {
        JobRef::Name(n) => state.recent.get(n, now),
        JobRef::DedupKey(k) => state.recent.by_dedup_key(k, now),
    }?;
    caller.sees(Some(recent.source)).then_some(Known {
        name: recent.name,
        stored: None,
        namespace: recent.namespace,
    })
}

/// A managed Job's view within `caller`'s scope, with its whole task
/// document fetched from the API server (one GET by name, through the
/// gate's share for reads) — only for a Job [`locate`] knows; `None`
/// otherwise, without any Kubernetes call.
pub async fn find_job(
    state: &AppState,
    caller: &ApiCaller,
    which: JobRef<'_>,
) -> Result<Option<JobView>, RouteError> {
    let Some(known) = locate(state, caller, which) else {
        return Ok(None);
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let fetched = state
        .jobs
        .fetch_in(known.name, known.namespace, deadline)
        .await
        .map_err(jobs_error);
    match (fetched, known.stored) {
        // Only managed Jobs are visible through this API, each within its
        // caller's scope.
        (Ok(view), _) => Ok(view.filter(|v| caller.sees(v.source.as_deref()))),
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

async fn find(state: &AppState, caller: &ApiCaller, name: &str) -> Result<JobView, RouteError> {
    check_name(name)?;
    find_job(state, caller, JobRef::Name(name))
        .await?
        .ok_or_else(|| RouteError::NotFound(format!("no job named {name:?}")))
}

/// One Job.
#[utoipa::path(get, path = "/api/v1/jobs/{name}", tag = "jobs",
    params(("name" = String, Path, description = "Job name")),
    responses((status = 200, description = "The Job", body = JobView),
        (status = 400, description = "Not a valid Job name", body = ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests from this token (Retry-After)", body = ErrorBody),
        (status = 404, description = "No such Job (or not within the token's scope)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_job(
    path: web::Path<String>,
    caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    let mut view = find(&state, &caller, &path).await?;
    if view.state == JobState::Queued {
        let store = state.jobs.store();
        if let Some(r) = store.get(&view.name) {
            // In Kueue's hands its place is Kueue's: `waiting` names the
            // LocalQueue instead.
            if r.kueue_queue().is_none() {
                let queued = store.in_state(JobState::Queued);
                view.position = Some(crate::job::waits::position(&r, &queued));
            }
            view.waiting = store.waits().get().reason_text(&r);
        }
    }
    Ok(HttpResponse::Ok().json(view))
}

fn jobs_error(e: JobsError) -> RouteError {
    super::error::from_jobs(e, "no such job")
}

/// Cancel a Job (idempotent): a queued Job is never admitted, a running one
/// is stopped; a finished Job is left as it is.
#[utoipa::path(delete, path = "/api/v1/jobs/{name}", tag = "jobs",
    params(("name" = String, Path, description = "Job name")),
    responses((status = 200, description = "The Job after cancelling", body = JobView),
        (status = 400, description = "Not a valid Job name", body = ErrorBody),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests from this token (Retry-After)", body = ErrorBody),
        (status = 403, description = "A viewer token may not cancel", body = ErrorBody),
        (status = 404, description = "No managed Job of this name known to this replica (or not within the token's scope)", body = ErrorBody),
        (status = 503, description = "Kubernetes unavailable; retry", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_job(
    path: web::Path<String>,
    caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    check_name(&path)?;
    caller.may_cancel()?;
    let not_found = || RouteError::NotFound(format!("no job named {:?}", path.as_str()));
    // Only a Job the store (or this replica's recent answers) knows is
    // looked up on the API server: any other name is 404 at no cost. A Job
    // created a moment ago on another replica, which this replica's watch
    // has not delivered yet, is 404 too; the cancel is idempotent, so the
    // caller retries — chosen over a GET per unknown name, which anyone
    // holding a token could repeat to starve Job creation.
    if locate(&state, &caller, JobRef::Name(&path)).is_none() {
        return Err(not_found());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = state
        .jobs
        .cancel(
            path.clone(),
            false,
            deadline,
            true,
            CancelledBy::Api {
                identity: caller.identity.clone(),
            },
        )
        .await
        .map_err(jobs_error)?
        .filter(|v| caller.sees(v.source.as_deref()))
        .ok_or_else(not_found)?;
    if view.state != JobState::Cancelled {
        // Finished before the cancel: nothing was cancelled.
        return Ok(HttpResponse::Ok().json(view));
    }
    tracing::info!(job = %path, by = %caller.identity, "job cancelled");
    state.events.record(NewEvent {
        source: caller.label(),
        event: "cancel",
        delivery: None,
        decision: "cancelled",
        reason: None,
        job: Some(&path),
        ..Default::default()
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
        (status = 429, description = "Too many requests from this token (Retry-After)", body = ErrorBody),
        (status = 404, description = "No such Job (or not within the token's scope), or it has no pod yet", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_logs(
    path: web::Path<String>,
    q: web::Query<LogQuery>,
    caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    check_name(&path)?;
    // Only a known managed Job's logs, within the caller's scope: from the
    // store, else (answered a moment ago) one GET; any other name is 404.
    let known = locate(&state, &caller, JobRef::Name(&path))
        .ok_or_else(|| RouteError::NotFound(format!("no job named {:?}", path.as_str())))?;
    let job_state = match known.stored {
        Some(r) => r.state,
        None => find(&state, &caller, &path).await?.state,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = state
        .jobs
        .logs(path.clone(), q.follow.unwrap_or(false), deadline)
        .await
        .map_err(|e| match e {
            JobsError::NotFound => RouteError::NotFound(format!(
                "job {:?} has no pod yet (state {})",
                path.as_str(),
                job_state.as_str()
            )),
            other => jobs_error(other),
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
    /// queued, duplicate, ignored, rejected, rate_limited, unavailable, cancelled,
    /// recovered (a missed GitHub delivery whose redelivery was asked for)…
    pub decision: Option<String>,
}

/// The most recent deliveries from every source with the decision taken.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, description = "Newest first", body = [EventRecord]),
        (status = 401, description = "Missing or unknown bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests from this token (Retry-After)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    q: web::Query<EventQuery>,
    caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    // A scoped token sees its own source's events only.
    let source = match (caller.only_source(), q.source.as_deref()) {
        (Some(own), Some(asked)) if own != asked => {
            return Ok(HttpResponse::Ok().json(Vec::<EventRecord>::new()))
        }
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    Ok(HttpResponse::Ok().json(state.events.recent(limit, source, q.decision.as_deref())))
}
