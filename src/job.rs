//! What a Job is to the service, free of the Kubernetes client: its
//! lifecycle [`JobState`], the [`JobRecord`] the watch store keeps and the
//! scheduler's queue orders, and the [`JobExtras`] a task asks for beyond
//! itself. Mapping Job objects to these is `src/cluster/view.rs`.

pub mod kueue;
pub mod record;
pub mod state;
pub mod waits;

pub use kueue::KueueRecord;
pub use record::{ConditionView, JobRecord, TaskHead};
pub use state::{JobState, STATE_COUNT};
pub use waits::{WaitBoard, WaitKind, Waits};

use crate::task::files::TaskFile;

/// What a Job gets beyond its Task.
#[derive(Debug, Clone, Default)]
pub struct JobExtras {
    /// Files for the agent (a ConfigMap owned by the Job).
    pub files: Vec<TaskFile>,
    /// This task's own `activeDeadlineSeconds` (else `JOB_TIMEOUT_SECONDS`).
    pub timeout_seconds: Option<i64>,
    /// The request's hash under an `Idempotency-Key`, kept on the Job
    /// (the `orchestrator.dev/request-sha256` annotation): a duplicate whose hash differs is
    /// refused (`KeyReused`) rather than answered duplicate.
    pub request_hash: Option<String>,
    /// Where the task's state changes are posted (a checked
    /// `callback_url`), kept on the Job as the
    /// `orchestrator.dev/callback-url` annotation — not in the task
    /// document the agent sees.
    pub callback_url: Option<String>,
    /// The namespace the Job runs in (a rule's `namespace`); `None`: the
    /// service's own (`KUBERNETES_NAMESPACE`).
    pub namespace: Option<String>,
    /// The Secret the agent gets (a rule's `secret`) instead of
    /// `JOB_SECRET_NAME`.
    pub secret: Option<String>,
}
