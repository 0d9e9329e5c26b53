//! What the service keeps of one managed Job ([`JobRecord`], about 1 KB):
//! the projection the watch store holds, the scheduler's queue orders and
//! the routes list. It is made from a Job object in `src/cluster/view.rs`.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::JobState;

/// One condition of a Job, as kept and shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<String>,
}

/// The part of the task document kept in the store (lists show it; the
/// whole document is fetched when one Job is asked for).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskHead {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_number: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<u64>,
    /// What the agent was asked to do (`implement`, `review`, …); reports
    /// say it.
    #[serde(default, skip_serializing)]
    pub kind: Option<String>,
    /// Who asked (a GitHub login, an API token's subject); reports say it.
    #[serde(default, skip_serializing)]
    pub requested_by: Option<String>,
    /// The source's metadata (`rule`, `event`, `comment_id`,
    /// `installation_id`, `head_sha`, …), for reports back to the source.
    #[serde(default, skip_serializing)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The slim projection of a managed Job that the watch store keeps.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: Arc<str>,
    /// The namespace the Job lives in (one of the watched ones).
    pub namespace: Arc<str>,
    /// The object's `metadata.uid` (Events name their Job by it).
    pub uid: Option<Box<str>>,
    /// The object's resourceVersion (0 if unparsable).
    pub rv: u64,
    pub state: JobState,
    /// Creation time, unix seconds (0 when absent).
    pub created: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub source: Option<Box<str>>,
    pub kind: Option<Box<str>>,
    /// The repository label (`owner.name`), what filters and the index use.
    pub repository: Option<Box<str>>,
    /// The task's repository as shown, `owner/name` (see `repository_name` in `src/cluster/view.rs`).
    pub repository_name: Option<Box<str>>,
    pub priority: i32,
    pub concurrency_key: Option<Box<str>>,
    pub dedup_key: Option<Arc<str>>,
    pub url: Option<Box<str>>,
    /// When it was cancelled (unix seconds), if it was.
    pub cancelled_at: Option<i64>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub conditions: Vec<ConditionView>,
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub task: Option<Arc<TaskHead>>,
    /// What was last reported of the Job and where (the
    /// `orchestrator.dev/report` annotation, JSON; see `src/report/`).
    pub report_mark: Option<Box<str>>,
    /// Where the task's state changes are posted (`orchestrator.dev/callback-url`).
    pub callback_url: Option<Box<str>>,
    /// The last state the callback receiver acknowledged
    /// (`orchestrator.dev/callback-state`).
    pub callback_mark: Option<Box<str>>,
    /// What Kueue made of it (`SCHEDULER=kueue`); `None` when Kueue never had it.
    pub kueue: Option<Box<super::KueueRecord>>,
}

impl JobRecord {
    /// The creation time as the API shows it (and as list pages are keyed).
    pub fn created_at_text(&self) -> Option<String> {
        self.created_at.as_ref().map(time_text)
    }

    /// The LocalQueue Kueue holds it in, if it was handed to Kueue.
    pub fn kueue_queue(&self) -> Option<&str> {
        self.kueue.as_deref().and_then(|k| k.queue.as_deref())
    }

    /// Evictions by Kueue seen so far (0 outside Kueue mode).
    pub fn evictions(&self) -> u32 {
        self.kueue.as_deref().map_or(0, |k| k.evictions)
    }

    /// The repository as caps, budgets and fair order key it: `owner/name`
    /// lower-cased, as GitHub compares it (`""` for none).
    pub fn repository_key(&self) -> String {
        self.repository_name
            .as_deref()
            .map(str::to_lowercase)
            .unwrap_or_default()
    }
}

/// A time as the API server writes it (RFC 3339, UTC, `Z`; fractions only
/// when there are any).
pub fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
