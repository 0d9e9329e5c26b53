//! What a Job shows of Kueue (`SCHEDULER=kueue`): the LocalQueue it was
//! handed to, its WorkloadPriorityClass, whether Kueue is stopping it
//! (an eviction in progress) and how often it was evicted. Read off the
//! Job's labels and annotations in `src/cluster/view.rs`.

/// The Kueue side of a [`super::JobRecord`] (`None` there for a Job Kueue
/// never had: built-in mode, or held back before it was handed over).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KueueRecord {
    /// The LocalQueue (label `kueue.x-k8s.io/queue-name`); `None`: not
    /// handed to Kueue (yet).
    pub queue: Option<Box<str>>,
    /// The WorkloadPriorityClass (label `kueue.x-k8s.io/priority-class`).
    pub priority_class: Option<Box<str>>,
    /// Kueue is stopping it (annotation `kueue.x-k8s.io/stopping`): an
    /// eviction in progress.
    pub stopping: bool,
    /// Evictions seen so far (annotation `orchestrator.dev/kueue-evictions`,
    /// written by the scheduler Lease holder).
    pub evictions: u32,
}

impl KueueRecord {
    /// Whether the Job is in Kueue's hands (it carries a queue name).
    pub fn handed_over(&self) -> bool {
        self.queue.is_some()
    }
}
