//! The one mapping between a Job object and what the service shows of it.
//!
//! Two forms:
//! - [`JobRecord`], the slim projection the watch store keeps per Job (about
//!   1 KB: name, our labels and annotations, suspension, status conditions
//!   and counts, and an abridged task). The pod template, env and
//!   `managedFields` are dropped as each watch event arrives.
//! - [`JobView`], what the operator API answers: built from a record (lists)
//!   or from a full Job fetched from the API server (one Job, with the whole
//!   task document).
//!
//! Nothing else reads the agent container, the `TASK_JSON` env or our
//! labels off a Job: routes, the scheduler and the watcher go through here.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::jobspec::{
    unescape_expansion, AGENT_CONTAINER, ANNOTATION_CALLBACK_STATE, ANNOTATION_CALLBACK_URL,
    ANNOTATION_CANCELLED, ANNOTATION_DEDUP_KEY, ANNOTATION_REPORT, ANNOTATION_REPOSITORY,
    ANNOTATION_URL, LABEL_CONCURRENCY_KEY, LABEL_KIND, LABEL_PRIORITY, LABEL_REPOSITORY,
    LABEL_SOURCE, TASK_ENV,
};
use crate::job::{ConditionView, JobRecord, JobState, TaskHead};
use crate::task::parse_priority_label;

/// Longest title kept in a [`TaskHead`], characters.
const TITLE_MAX_CHARS: usize = 200;

fn condition<'a>(conds: &'a [JobCondition], kind: &str) -> Option<&'a JobCondition> {
    conds.iter().find(|c| c.type_ == kind && c.status == "True")
}

/// The state of a Job, read from the Job alone (so every replica, and a
/// restarted one, reaches the same answer).
pub fn job_state(job: &Job) -> JobState {
    let conds = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let cancelled = job
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_CANCELLED));
    let suspended = job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
    state_of(conds, cancelled, suspended)
}

fn state_of(conds: &[JobCondition], cancelled: bool, suspended: bool) -> JobState {
    if condition(conds, "Complete").is_some() {
        return JobState::Succeeded;
    }
    if let Some(c) = condition(conds, "Failed") {
        return if c.reason.as_deref() == Some("DeadlineExceeded") {
            JobState::TimedOut
        } else {
            JobState::Failed
        };
    }
    if cancelled {
        JobState::Cancelled
    } else if suspended {
        JobState::Queued
    } else {
        JobState::Running
    }
}

/// The `TASK_JSON` value of the agent container as the agent reads it
/// (env values are written escaped against `$(VAR)` expansion).
fn task_json(job: &Job) -> Option<String> {
    raw_task_json(job).map(unescape_expansion)
}

fn raw_task_json(job: &Job) -> Option<&str> {
    job.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == AGENT_CONTAINER)?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == TASK_ENV)?
        .value
        .as_deref()
}

/// The whole task document the agent received.
pub fn task_document(job: &Job) -> Option<Value> {
    task_json(job).and_then(|v| serde_json::from_str(&v).ok())
}

fn task_head(job: &Job) -> Option<TaskHead> {
    let mut head: TaskHead = serde_json::from_str(&task_json(job)?).ok()?;
    if let Some(t) = head.title.as_mut() {
        if let Some((i, _)) = t.char_indices().nth(TITLE_MAX_CHARS) {
            t.truncate(i);
        }
    }
    Some(head)
}

/// A Job's repository as `owner/name`: the `orchestrator.dev/repository`
/// annotation, else the task document's, else (Jobs made before the
/// annotation) the label with its first `.` read as the `/` (GitHub owners
/// have no dots).
fn repository_name(
    annotation: Option<&String>,
    task: Option<&TaskHead>,
    label: Option<&str>,
) -> Option<Box<str>> {
    annotation
        .map(|a| a.as_str().into())
        .or_else(|| task.and_then(|t| t.repository.as_deref()).map(Into::into))
        .or_else(|| label.map(|l| l.replacen('.', "/", 1).into()))
}

fn boxed(s: Option<&String>) -> Option<Box<str>> {
    s.map(|s| s.as_str().into())
}

impl JobRecord {
    /// Projects `job`. `previous` (the record this one replaces) lends its
    /// abridged task: the task document never changes, so it is read once.
    pub fn from_job(job: &Job, previous: Option<&JobRecord>) -> Option<JobRecord> {
        let meta = &job.metadata;
        let name: Arc<str> = meta.name.as_deref()?.into();
        // Few namespaces, many Jobs: the previous record's copy is shared.
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let namespace: Arc<str> = match previous {
            Some(p) if &*p.namespace == ns => p.namespace.clone(),
            _ => ns.into(),
        };
        let labels = meta.labels.as_ref();
        let label = |k: &str| boxed(labels.and_then(|l| l.get(k)));
        let annotations = meta.annotations.as_ref();
        let annotation = |k: &str| annotations.and_then(|a| a.get(k));
        let status = job.status.as_ref();
        let conds = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let cancelled = annotation(ANNOTATION_CANCELLED);
        let suspended = job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
        let task = match previous {
            Some(p) if p.task.is_some() => p.task.clone(),
            _ => task_head(job).map(Arc::new),
        };
        let repository = label(LABEL_REPOSITORY);
        let repository_name = repository_name(
            annotation(ANNOTATION_REPOSITORY),
            task.as_deref(),
            repository.as_deref(),
        );
        Some(JobRecord {
            uid: boxed(meta.uid.as_ref()),
            state: state_of(conds, cancelled.is_some(), suspended),
            rv: meta
                .resource_version
                .as_deref()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
            created_at: meta.creation_timestamp.as_ref().and_then(utc),
            source: label(LABEL_SOURCE),
            kind: label(LABEL_KIND),
            repository,
            repository_name,
            priority: labels
                .and_then(|l| l.get(LABEL_PRIORITY))
                .and_then(|v| parse_priority_label(v))
                .unwrap_or(0),
            // Lower-cased: Jobs made before keys were lower-cased compare
            // equal to new ones for the same issue or PR.
            concurrency_key: labels
                .and_then(|l| l.get(LABEL_CONCURRENCY_KEY))
                .map(|k| k.to_ascii_lowercase().into()),
            dedup_key: match previous.and_then(|p| p.dedup_key.clone()) {
                Some(k) if annotation(ANNOTATION_DEDUP_KEY).map(String::as_str) == Some(&*k) => {
                    Some(k)
                }
                _ => annotation(ANNOTATION_DEDUP_KEY).map(|k| k.as_str().into()),
            },
            url: boxed(annotation(ANNOTATION_URL)),
            cancelled_at: cancelled
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp()),
            started_at: status.and_then(|s| s.start_time.as_ref()).and_then(utc),
            completed_at: status
                .and_then(|s| s.completion_time.as_ref())
                .and_then(utc),
            conditions: conds
                .iter()
                .map(|c| ConditionView {
                    kind: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.as_ref().map(|t| t.0.to_string()),
                })
                .collect(),
            active: status.and_then(|s| s.active).unwrap_or(0),
            succeeded: status.and_then(|s| s.succeeded).unwrap_or(0),
            failed: status.and_then(|s| s.failed).unwrap_or(0),
            task,
            report_mark: boxed(annotation(ANNOTATION_REPORT)),
            callback_url: boxed(annotation(ANNOTATION_CALLBACK_URL)),
            callback_mark: boxed(annotation(ANNOTATION_CALLBACK_STATE)),
            kueue: super::kueue::record_of(labels, annotations).map(Box::new),
            name,
            namespace,
        })
    }
}

/// One Job as the operator API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub name: String,
    /// The namespace the Job runs in (the service's own, or a rule's
    /// tenant namespace).
    pub namespace: String,
    /// queued, running, succeeded, failed, cancelled or timed_out.
    #[schema(value_type = String)]
    pub state: JobState,
    pub source: Option<String>,
    pub kind: Option<String>,
    /// The task's repository, `owner/name`.
    pub repository: Option<String>,
    pub priority: i32,
    pub url: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The task document the agent received (`TASK_JSON`). In lists, only
    /// its title, repository and issue/PR number; whole for one Job.
    #[schema(value_type = Object)]
    pub task: Option<Value>,
    pub conditions: Vec<ConditionView>,
    /// When queued: about where it stands (1 = next; an estimate under the
    /// fair order, see `job::waits::position`). Only for one Job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// When queued and held back: why ("repository acme/api at its cap
    /// 2/2", "global cap 10/10", "daily budget of acme/api spent … until
    /// 2026-12-08 00:00 UTC"). Only for one Job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

impl JobView {
    /// The view of a stored record (abridged task).
    pub fn from_record(r: &JobRecord) -> JobView {
        let finished = r
            .completed_at
            .as_ref()
            .map(crate::job::record::time_text)
            .or_else(|| {
                r.conditions
                    .iter()
                    .find(|c| (c.kind == "Failed" || c.kind == "Complete") && c.status == "True")
                    .and_then(|c| c.last_transition_time.clone())
            });
        let text = |s: &Option<Box<str>>| s.as_deref().map(str::to_string);
        JobView {
            name: r.name.to_string(),
            namespace: r.namespace.to_string(),
            state: r.state,
            source: text(&r.source),
            kind: text(&r.kind),
            repository: text(&r.repository_name),
            priority: r.priority,
            url: text(&r.url),
            created_at: r.created_at_text(),
            started_at: r.started_at.as_ref().map(crate::job::record::time_text),
            finished_at: finished,
            task: r.task.as_deref().and_then(|t| serde_json::to_value(t).ok()),
            conditions: r.conditions.clone(),
            position: None,
            waiting: None,
        }
    }

    /// The view of a full Job (with the whole task document).
    pub fn from_job(job: &Job) -> Option<JobView> {
        let r = JobRecord::from_job(job, None)?;
        let mut v = JobView::from_record(&r);
        if let Some(doc) = task_document(job) {
            v.task = Some(doc);
        }
        Some(v)
    }
}

/// A Kubernetes time as the domain's (no Kubernetes types past this module).
fn utc(
    t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(
        t.0.as_second(),
        u32::try_from(t.0.subsec_nanosecond()).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn job(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Job {
        let map = |kv: &[(&str, &str)]| {
            Some(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        Job {
            metadata: ObjectMeta {
                name: Some("agent-task-1".into()),
                labels: map(labels),
                annotations: map(annotations),
                ..ObjectMeta::default()
            },
            ..Job::default()
        }
    }

    #[test]
    fn the_record_keeps_the_repository_annotation_and_the_view_shows_it() {
        let j = job(
            &[(LABEL_REPOSITORY, "octo.my.repo")],
            &[(ANNOTATION_REPOSITORY, "octo/my.repo")],
        );
        let r = JobRecord::from_job(&j, None).expect("named Job");
        assert_eq!(r.repository.as_deref(), Some("octo.my.repo"));
        assert_eq!(r.repository_name.as_deref(), Some("octo/my.repo"));
        let v = JobView::from_record(&r);
        assert_eq!(v.repository.as_deref(), Some("octo/my.repo"));
        let full = JobView::from_job(&j).expect("named Job");
        assert_eq!(full.repository.as_deref(), Some("octo/my.repo"));
    }

    #[test]
    fn jobs_made_before_the_annotation_show_the_label_as_owner_slash_name() {
        let j = job(&[(LABEL_REPOSITORY, "octo.my.repo")], &[]);
        let v = JobView::from_job(&j).expect("named Job");
        assert_eq!(v.repository.as_deref(), Some("octo/my.repo"));
        let none = JobView::from_job(&job(&[], &[])).expect("named Job");
        assert_eq!(none.repository, None);
    }
}
