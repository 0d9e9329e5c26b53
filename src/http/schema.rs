//! Documented request and answer shapes for the OpenAPI document. The
//! handlers validate bodies field by field (to name every bad field); these
//! types describe the same documents.

use serde::Serialize;
use utoipa::ToSchema;

use crate::sources::fields::FieldError;
use crate::task::files::TaskFile;

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: String,
    /// Machine-readable code: bad_request, unauthorized, forbidden,
    /// payload_too_large, invalid, not_found, rate_limited, unavailable, internal.
    pub error: String,
    pub message: String,
    /// For `invalid` (422): each bad field.
    pub fields: Option<Vec<FieldError>>,
}

/// The answer to an accepted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmitAnswer {
    /// `queued` (202) or `duplicate` (200).
    pub status: String,
    /// The Job's name.
    pub job: String,
    /// GitHub, `on_repeat: supersede`: the issue's live Jobs this one
    /// cancelled.
    pub superseded: Option<Vec<String>>,
    /// `true` on a `duplicate` whose Job is deleted since (its dedup key is
    /// in the dedup record, kept `DEDUP_RETENTION_SECONDS`); absent
    /// otherwise.
    #[schema(nullable = false)]
    pub gone: Option<bool>,
}

/// The answer to a webhook that asks for no work.
#[derive(Debug, Serialize, ToSchema)]
pub struct IgnoredAnswer {
    /// `ignored`.
    pub status: String,
    pub reason: String,
    /// With reason `a run is active` (GitHub, `on_repeat: ignore`): the
    /// live Job of the issue or PR.
    pub job: Option<String>,
}

/// A generic task (`POST /api/v1/tasks`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskRequest {
    /// Up to 1024 bytes.
    pub title: String,
    /// What the agent should do; up to 32 KiB.
    pub prompt: String,
    /// `owner/name` on GitHub; cloned into the agent's workspace.
    pub repository: Option<String>,
    pub issue: Option<u64>,
    pub pr: Option<u64>,
    /// Default `task`; 1–30 of `[a-z0-9-]`.
    pub kind: Option<String>,
    /// `critical`, `high`, `medium`, `low` (100, 50, 10, 0) or an integer
    /// from -1000 to 1000; higher first. Default 0.
    #[schema(value_type = Option<Object>)]
    pub priority: Option<serde_json::Value>,
    /// Up to 20 string labels, recorded in the task document.
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// 60..=604800; default `JOB_TIMEOUT_SECONDS`.
    pub timeout_seconds: Option<i64>,
    /// Git ref to check out (default: the repository's default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Where the task's state changes are POSTed as [`CallbackEvent`]s
    /// (http or https, no user name or password, at most 2048 bytes, its
    /// host on `CALLBACK_ALLOWED_HOSTS`; needs `CALLBACK_SECRET`, else
    /// `422`). Signed: `X-Orchestrator-Signature: t=<unix seconds>,v1=<hex
    /// HMAC-SHA256 of "<t>.<body>">`. Kept on the Job, not shown to the agent.
    pub callback_url: Option<String>,
}

/// The PM Agent's repository.
#[derive(Debug, Serialize, ToSchema)]
pub struct PmRepository {
    /// `https://github.com/OWNER/NAME(.git)`
    pub url: String,
    pub branch: Option<String>,
    pub github_user: Option<String>,
}

/// A subtask.
#[derive(Debug, Serialize, ToSchema)]
pub struct PmSubtask {
    pub id: Option<u64>,
    pub title: String,
    pub description: Option<String>,
}

/// The PM Agent's task document (a Task Master task plus delivery details).
#[derive(Debug, Serialize, ToSchema)]
pub struct PmTaskRequest {
    /// Task id (integer or string); the dedup key.
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub details: Option<String>,
    pub test_strategy: Option<String>,
    /// `critical`, `high`, `medium`, `low` or an integer from -1000 to 1000. Default `medium`.
    #[schema(value_type = Option<Object>)]
    pub priority: Option<serde_json::Value>,
    pub dependencies: Option<Vec<String>>,
    pub subtasks: Option<Vec<PmSubtask>>,
    pub service_name: Option<String>,
    pub agent_name: Option<String>,
    pub model: Option<String>,
    pub repository: Option<PmRepository>,
    pub working_directory: Option<String>,
    /// Delivered read-only at `/task/files` (a ConfigMap owned by the Job).
    pub markdown_files: Option<Vec<TaskFile>>,
    pub agent_tools: Option<Vec<String>>,
    pub prompt_modification: Option<String>,
    /// append (default), prepend or replace.
    pub prompt_mode: Option<String>,
    /// Where the task's state changes are POSTed as [`CallbackEvent`]s
    /// (http or https, no user name or password, at most 2048 bytes, its
    /// host on `CALLBACK_ALLOWED_HOSTS`; needs `CALLBACK_SECRET`, else
    /// `422`). Signed: `X-Orchestrator-Signature: t=<unix seconds>,v1=<hex
    /// HMAC-SHA256 of "<t>.<body>">`. Kept on the Job, not shown to the agent.
    pub callback_url: Option<String>,
}

/// A callback: what a task's `callback_url` receives (`POST`, JSON) for
/// each state of its Job — `queued`, `running` (if it started), then the
/// final state — in order, each until acknowledged with a `2xx` (at least
/// once: deduplicate on `event_id`, also sent as `X-Orchestrator-Event-Id`).
/// Signed with `CALLBACK_SECRET`: `X-Orchestrator-Signature:
/// t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; reject a `t`
/// older than 5 minutes.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackEvent {
    /// `<job>:<state>`: the same on every attempt of one event.
    pub event_id: String,
    /// The Job's name.
    pub job: String,
    /// The PM task's id, or the API task's `Idempotency-Key`; else null.
    pub task_id: Option<String>,
    /// queued, running, succeeded, failed, timed_out or cancelled.
    pub state: String,
    /// The state reported before this one (null for `queued`).
    pub previous_state: Option<String>,
    pub timestamps: CallbackTimestamps,
    pub outcome: CallbackOutcome,
    /// When this attempt was sent (RFC 3339).
    pub sent_at: String,
}

/// The Job's times (RFC 3339), null until they happen.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackTimestamps {
    pub created: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub cancelled: Option<String>,
}

/// How a final state ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackOutcome {
    /// true for `succeeded`, false for the other final states, null before.
    pub succeeded: Option<bool>,
    /// The Job condition's reason (e.g. `DeadlineExceeded`,
    /// `BackoffLimitExceeded`), if any.
    pub reason: Option<String>,
}
