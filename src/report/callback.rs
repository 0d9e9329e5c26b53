//! Signed callbacks of a task's state changes to its `callback_url` (API
//! and PM tasks). Being built: the interface the rest of the service uses.

use std::sync::Arc;

use crate::job::JobRecord;

/// Delivers callbacks (clones share their queues).
#[derive(Clone)]
pub struct CallbackReporter {
    _private: (),
}

impl CallbackReporter {
    /// The Job changed: queue a callback if it is owed one (never waits).
    pub fn changed(&self, _record: &JobRecord) {}

    /// Queues every given Job still owed a callback; the count queued.
    pub fn sweep(&self, _records: impl IntoIterator<Item = Arc<JobRecord>>) -> usize {
        0
    }
}
