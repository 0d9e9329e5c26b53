//! The lifecycle states of a managed Job. How a state is read off a Job
//! object is `job_state` in `src/cluster/view.rs`, the one module that maps
//! Job objects.

use serde::Serialize;

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

/// How many states there are (for per-state arrays).
pub const STATE_COUNT: usize = 6;

impl JobState {
    /// Every state, in [`JobState::index`] order.
    pub const ALL: [JobState; STATE_COUNT] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Cancelled,
    ];

    /// Position in [`JobState::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses the API's name of a state.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Queued or running: something may still happen to it, so it gets a
    /// watcher actor. Finished and cancelled Jobs do not.
    pub fn is_live(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}
