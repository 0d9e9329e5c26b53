//! What state a managed Job is in, read from the Job object alone (so any
//! replica, and a restarted one, reaches the same answer).

use k8s_openapi::api::batch::v1::Job;
use serde::Serialize;

use super::jobspec::LABEL_PRIORITY;
use crate::task::parse_priority_label;

/// The lifecycle of a task's Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Suspended: accepted, waiting for admission.
    Queued,
    /// Admitted and not finished.
    Running,
    Succeeded,
    Failed,
    /// Failed because it ran past `activeDeadlineSeconds`.
    TimedOut,
    /// Cancelled by an operator or a resolved alert (suspended and marked).
    Cancelled,
}

/// Annotation set (to the time) when a Job is cancelled.
pub const ANNOTATION_CANCELLED: &str = "orchestrator.dev/cancelled-at";

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::TimedOut
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::TimedOut => "timed_out",
            JobState::Cancelled => "cancelled",
        }
    }
}

fn condition<'a>(
    job: &'a Job,
    kind: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
}

/// The state of `job`.
pub fn job_state(job: &Job) -> JobState {
    if condition(job, "Complete").is_some() {
        return JobState::Succeeded;
    }
    if let Some(c) = condition(job, "Failed") {
        return if c.reason.as_deref() == Some("DeadlineExceeded") {
            JobState::TimedOut
        } else {
            JobState::Failed
        };
    }
    let cancelled = job
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_CANCELLED));
    if cancelled {
        return JobState::Cancelled;
    }
    let suspended = job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
    if suspended {
        JobState::Queued
    } else {
        JobState::Running
    }
}

/// The priority recorded on the Job's label (0 when absent).
pub fn job_priority(job: &Job) -> i32 {
    job.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_PRIORITY))
        .and_then(|v| parse_priority_label(v))
        .unwrap_or(0)
}

/// The concurrency key label, if any.
pub fn job_concurrency_key(job: &Job) -> Option<String> {
    job.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(super::jobspec::LABEL_CONCURRENCY_KEY))
        .cloned()
}
