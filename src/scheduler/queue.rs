//! The admission queue: which Jobs wait, which run, and which to admit next.
//! Pure: fed with observed Job states, it answers names to unsuspend.
//!
//! Order: higher priority first, then older first. Limits: a global
//! `max_running`, and at most one running Job per concurrency key (one
//! issue or PR), so two tasks never edit the same thing at once.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use crate::cluster::state::JobState;

type QueueKey = (Reverse<i32>, i64, String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Queued(QueueKey),
    /// Unsuspend requested, not yet observed running.
    Admitting,
    Running,
}

#[derive(Debug, Clone)]
struct Entry {
    slot: Slot,
    key: Option<String>,
    rv: u64,
}

/// What the scheduler knows of one Job.
#[derive(Debug, Clone)]
pub struct Observed {
    pub name: String,
    pub state: JobState,
    pub priority: i32,
    /// Creation time (unix seconds) for FIFO order within a priority.
    pub created: i64,
    pub concurrency_key: Option<String>,
    /// The object's resourceVersion; older observations are ignored.
    pub rv: u64,
}

#[derive(Debug, Default)]
pub struct Queue {
    max_running: usize,
    queued: BTreeSet<QueueKey>,
    entries: HashMap<String, Entry>,
    keys_running: HashMap<String, usize>,
}

impl Queue {
    pub fn new(max_running: usize) -> Self {
        Queue {
            max_running,
            ..Default::default()
        }
    }

    fn release_key(&mut self, key: &Option<String>) {
        if let Some(k) = key {
            if let Some(n) = self.keys_running.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.keys_running.remove(k);
                }
            }
        }
    }

    fn hold_key(&mut self, key: &Option<String>) {
        if let Some(k) = key {
            *self.keys_running.entry(k.clone()).or_default() += 1;
        }
    }

    /// Removes a Job from all bookkeeping.
    pub fn forget(&mut self, name: &str) {
        if let Some(e) = self.entries.remove(name) {
            match e.slot {
                Slot::Queued(k) => {
                    self.queued.remove(&k);
                }
                Slot::Admitting | Slot::Running => self.release_key(&e.key),
            }
        }
    }

    /// Records a Job's observed state.
    pub fn observe(&mut self, o: Observed) {
        if let Some(e) = self.entries.get(&o.name) {
            if o.rv != 0 && e.rv > o.rv {
                return;
            }
            // An admission in flight stays counted until the Job is seen
            // running (or the admission fails).
            if e.slot == Slot::Admitting && o.state == JobState::Queued {
                return;
            }
        }
        self.forget(&o.name);
        let slot = match o.state {
            // A cancelled Job is never admitted and holds no slot: its pods
            // (if it ran) are being deleted.
            s if s.is_finished() || s == JobState::Cancelled => return,
            JobState::Queued => {
                let k = (Reverse(o.priority), o.created, o.name.clone());
                self.queued.insert(k.clone());
                Slot::Queued(k)
            }
            _ => {
                self.hold_key(&o.concurrency_key);
                Slot::Running
            }
        };
        self.entries.insert(
            o.name,
            Entry {
                slot,
                key: o.concurrency_key,
                rv: o.rv,
            },
        );
    }

    /// Picks the Jobs to admit now and marks them admitting.
    pub fn take_admissions(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut busy = self.running();
        let candidates: Vec<QueueKey> = self.queued.iter().cloned().collect();
        for k in candidates {
            if busy >= self.max_running {
                break;
            }
            let Some(e) = self.entries.get(&k.2) else {
                continue;
            };
            let key = e.key.clone();
            if key
                .as_ref()
                .is_some_and(|c| self.keys_running.contains_key(c))
            {
                continue;
            }
            self.queued.remove(&k);
            self.hold_key(&key);
            if let Some(e) = self.entries.get_mut(&k.2) {
                e.slot = Slot::Admitting;
            }
            busy += 1;
            out.push(k.2);
        }
        out
    }

    /// An admission failed: the Job waits again (if still known).
    pub fn admission_failed(&mut self, name: &str, priority: i32, created: i64) {
        if let Some(e) = self.entries.get(name).cloned() {
            if e.slot == Slot::Admitting {
                self.release_key(&e.key);
                let k = (Reverse(priority), created, name.to_string());
                self.queued.insert(k.clone());
                if let Some(e) = self.entries.get_mut(name) {
                    e.slot = Slot::Queued(k);
                }
            }
        }
    }

    /// Jobs whose admission was requested but not yet seen running.
    pub fn admitting(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.slot == Slot::Admitting)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Marks a queued Job as admitting again, after a rebuild from a store
    /// that does not show its unsuspension yet (the request is in flight).
    pub fn keep_admitting(&mut self, name: &str) {
        let Some(e) = self.entries.get(name).cloned() else {
            return;
        };
        if let Slot::Queued(k) = e.slot {
            self.queued.remove(&k);
            self.hold_key(&e.key);
            if let Some(e) = self.entries.get_mut(name) {
                e.slot = Slot::Admitting;
            }
        }
    }

    /// Jobs running or being admitted.
    pub fn running(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.slot, Slot::Running | Slot::Admitting))
            .count()
    }

    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    pub fn clear(&mut self) {
        self.queued.clear();
        self.entries.clear();
        self.keys_running.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(
        name: &str,
        state: JobState,
        priority: i32,
        created: i64,
        key: Option<&str>,
    ) -> Observed {
        Observed {
            name: name.into(),
            state,
            priority,
            created,
            concurrency_key: key.map(str::to_string),
            rv: 0,
        }
    }

    #[test]
    fn admits_by_priority_then_age_up_to_the_limit() {
        let mut q = Queue::new(2);
        q.observe(obs("old-low", JobState::Queued, 0, 1, None));
        q.observe(obs("new-high", JobState::Queued, 5, 3, None));
        q.observe(obs("new-low", JobState::Queued, 0, 2, None));
        assert_eq!(q.take_admissions(), ["new-high", "old-low"]);
        assert!(q.take_admissions().is_empty(), "limit reached");
        // A queued echo of an admitting Job does not re-queue it.
        q.observe(obs("new-high", JobState::Queued, 5, 3, None));
        assert_eq!(q.running(), 2);
        q.observe(obs("new-high", JobState::Running, 5, 3, None));
        q.observe(obs("new-high", JobState::Succeeded, 5, 3, None));
        assert_eq!(q.take_admissions(), ["new-low"]);
    }

    #[test]
    fn one_running_job_per_concurrency_key() {
        let mut q = Queue::new(10);
        q.observe(obs("a1", JobState::Running, 0, 1, Some("o/r#1")));
        q.observe(obs("a2", JobState::Queued, 0, 2, Some("o/r#1")));
        q.observe(obs("b1", JobState::Queued, 0, 3, Some("o/r#2")));
        assert_eq!(q.take_admissions(), ["b1"]);
        q.observe(obs("a1", JobState::Failed, 0, 1, Some("o/r#1")));
        assert_eq!(q.take_admissions(), ["a2"]);
    }

    #[test]
    fn an_admission_kept_across_a_rebuild_still_counts_and_holds_its_key() {
        let mut q = Queue::new(1);
        q.observe(obs("low", JobState::Queued, 0, 1, Some("o/r#1")));
        assert_eq!(q.take_admissions(), ["low"]);
        let in_flight = q.admitting();
        assert_eq!(in_flight, ["low"]);
        // Rebuild from a store that still shows "low" suspended.
        q.clear();
        q.observe(obs("low", JobState::Queued, 0, 1, Some("o/r#1")));
        q.observe(obs("high", JobState::Queued, 9, 2, Some("o/r#2")));
        for n in &in_flight {
            q.keep_admitting(n);
        }
        assert_eq!((q.running(), q.queued()), (1, 1));
        assert!(
            q.take_admissions().is_empty(),
            "the limit counts the admission in flight"
        );
        q.admission_failed("low", 0, 1);
        assert_eq!(q.take_admissions(), ["high"]);
    }

    #[test]
    fn a_cancelled_job_is_neither_admitted_nor_counted_as_running() {
        let mut q = Queue::new(1);
        q.observe(obs("busy", JobState::Running, 0, 1, Some("o/r#1")));
        q.observe(obs("waiting", JobState::Queued, 0, 2, None));
        q.observe(obs("waiting", JobState::Cancelled, 0, 2, None));
        q.observe(obs("busy", JobState::Cancelled, 0, 1, Some("o/r#1")));
        assert_eq!((q.running(), q.queued()), (0, 0));
        q.observe(obs("next", JobState::Queued, 0, 3, Some("o/r#1")));
        assert_eq!(q.take_admissions(), ["next"], "slot and key are free");
    }

    #[test]
    fn a_failed_admission_requeues_and_stale_observations_are_ignored() {
        let mut q = Queue::new(1);
        q.observe(obs("x", JobState::Queued, 0, 1, None));
        assert_eq!(q.take_admissions(), ["x"]);
        q.admission_failed("x", 0, 1);
        assert_eq!(q.queued(), 1);
        assert_eq!(q.take_admissions(), ["x"]);
        let mut newer = obs("x", JobState::Running, 0, 1, None);
        newer.rv = 10;
        q.observe(newer);
        let mut older = obs("x", JobState::Queued, 0, 1, None);
        older.rv = 9;
        q.observe(older);
        assert_eq!((q.running(), q.queued()), (1, 0));
        q.forget("x");
        assert_eq!((q.running(), q.queued()), (0, 0));
    }
}
