//! The admission queue: which Jobs wait, which run, and which to admit next.
//! Pure: fed with observed Job states, it answers names to unsuspend.
//!
//! Order: higher priority first, then older first. Limits: a global
//! `max_running`, and at most one running Job per concurrency key (one
//! issue or PR), so two tasks never edit the same thing at once.
//!
//! Every operation is O(log n) and counts are kept, never recomputed:
//! `ready` holds the Jobs admissible now (no concurrency key, or the best
//! waiting Job of a key nobody holds), so picking the next Job is taking
//! the first of `ready`, however many Jobs wait behind a busy key.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::job::JobRecord;
use crate::job::JobState;

type QueueKey = (Reverse<i32>, i64, Arc<str>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Queued,
    /// Unsuspend requested, not yet observed running.
    Admitting,
    Running,
}

#[derive(Debug, Clone)]
struct Entry {
    slot: Slot,
    order: QueueKey,
    key: Option<Box<str>>,
    rv: u64,
}

/// What the scheduler knows of one Job.
#[derive(Debug, Clone)]
pub struct Observed {
    pub name: Arc<str>,
    pub state: JobState,
    pub priority: i32,
    /// Creation time (unix seconds) for FIFO order within a priority.
    pub created: i64,
    pub concurrency_key: Option<Box<str>>,
    /// The object's resourceVersion; older observations are ignored.
    pub rv: u64,
}

impl Observed {
    /// The observation of a stored record.
    pub fn of(r: &JobRecord) -> Observed {
        Observed {
            name: r.name.clone(),
            state: r.state,
            priority: r.priority,
            created: r.created,
            concurrency_key: r.concurrency_key.clone(),
            rv: r.rv,
        }
    }
}

#[derive(Debug, Default)]
pub struct Queue {
    max_running: usize,
    /// Admissible now, best first.
    ready: BTreeSet<QueueKey>,
    /// Every queued Job with a concurrency key, per key, best first.
    waiting: HashMap<Box<str>, BTreeSet<QueueKey>>,
    entries: HashMap<Arc<str>, Entry>,
    /// Running or admitting Jobs per concurrency key.
    keys_running: HashMap<Box<str>, usize>,
    admitting: HashSet<Arc<str>>,
    running: usize,
    queued: usize,
}

impl Queue {
    pub fn new(max_running: usize) -> Self {
        Queue {
            max_running,
            ..Default::default()
        }
    }

    fn held(&self, key: &str) -> bool {
        self.keys_running.contains_key(key)
    }

    fn enqueue(&mut self, order: &QueueKey, key: &Option<Box<str>>) {
        let Some(k) = key else {
            self.ready.insert(order.clone());
            return;
        };
        let held = self.held(k);
        let w = self.waiting.entry(k.clone()).or_default();
        let old_head = w.first().cloned();
        w.insert(order.clone());
        if held {
            return;
        }
        match old_head {
            Some(h) if *order < h => {
                self.ready.remove(&h);
                self.ready.insert(order.clone());
            }
            Some(_) => {}
            None => {
                self.ready.insert(order.clone());
            }
        }
    }

    fn dequeue(&mut self, order: &QueueKey, key: &Option<Box<str>>) {
        let Some(k) = key else {
            self.ready.remove(order);
            return;
        };
        let held = self.held(k);
        let Some(w) = self.waiting.get_mut(k) else {
            return;
        };
        let was_head = w.first() == Some(order);
        w.remove(order);
        let next = w.first().cloned();
        if w.is_empty() {
            self.waiting.remove(k);
        }
        if was_head && !held {
            self.ready.remove(order);
            if let Some(n) = next {
                self.ready.insert(n);
            }
        }
    }

    fn hold_key(&mut self, key: &Option<Box<str>>) {
        if let Some(k) = key {
            let n = self.keys_running.entry(k.clone()).or_default();
            *n += 1;
            if *n == 1 {
                if let Some(h) = self.waiting.get(k).and_then(|w| w.first()) {
                    self.ready.remove(h);
                }
            }
        }
    }

    fn release_key(&mut self, key: &Option<Box<str>>) {
        if let Some(k) = key {
            if let Some(n) = self.keys_running.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.keys_running.remove(k);
                    if let Some(h) = self.waiting.get(k).and_then(|w| w.first()) {
                        self.ready.insert(h.clone());
                    }
                }
            }
        }
    }

    /// Removes a Job from all bookkeeping.
    pub fn forget(&mut self, name: &str) {
        let Some(e) = self.entries.remove(name) else {
            return;
        };
        match e.slot {
            Slot::Queued => {
                self.dequeue(&e.order, &e.key);
                self.queued -= 1;
            }
            Slot::Admitting | Slot::Running => {
                if e.slot == Slot::Admitting {
                    self.admitting.remove(name);
                }
                self.release_key(&e.key);
                self.running -= 1;
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
        let order = (Reverse(o.priority), o.created, o.name.clone());
        let slot = match o.state {
            // A cancelled Job is never admitted and holds no slot: its pods
            // (if it ran) are being deleted.
            s if s.is_finished() || s == JobState::Cancelled => return,
            JobState::Queued => {
                self.enqueue(&order, &o.concurrency_key);
                self.queued += 1;
                Slot::Queued
            }
            _ => {
                self.hold_key(&o.concurrency_key);
                self.running += 1;
                Slot::Running
            }
        };
        self.entries.insert(
            o.name,
            Entry {
                slot,
                order,
                key: o.concurrency_key,
                rv: o.rv,
            },
        );
    }

    /// Picks the Jobs to admit now and marks them admitting. Costs
    /// O(log n) per Job picked, nothing when the limit is reached.
    pub fn take_admissions(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.running < self.max_running {
            let Some(order) = self.ready.first().cloned() else {
                break;
            };
            let Some(e) = self.entries.get(&order.2) else {
                self.ready.remove(&order);
                continue;
            };
            let key = e.key.clone();
            self.dequeue(&order, &key);
            self.queued -= 1;
            self.hold_key(&key);
            self.running += 1;
            if let Some(e) = self.entries.get_mut(&order.2) {
                e.slot = Slot::Admitting;
            }
            self.admitting.insert(order.2.clone());
            out.push(order.2.to_string());
        }
        out
    }

    /// An admission failed: the Job waits again (if still known).
    pub fn admission_failed(&mut self, name: &str) {
        let Some(e) = self.entries.get(name).cloned() else {
            return;
        };
        if e.slot != Slot::Admitting {
            return;
        }
        self.admitting.remove(name);
        self.release_key(&e.key);
        self.running -= 1;
        self.enqueue(&e.order, &e.key);
        self.queued += 1;
        if let Some(e) = self.entries.get_mut(name) {
            e.slot = Slot::Queued;
        }
    }

    /// Jobs whose admission was requested but not yet seen running.
    pub fn admitting(&self) -> Vec<String> {
        self.admitting.iter().map(|n| n.to_string()).collect()
    }

    /// Marks a queued Job as admitting again, after a rebuild from a store
    /// that does not show its unsuspension yet (the request is in flight).
    pub fn keep_admitting(&mut self, name: &str) {
        let Some(e) = self.entries.get(name).cloned() else {
            return;
        };
        if e.slot != Slot::Queued {
            return;
        }
        self.dequeue(&e.order, &e.key);
        self.queued -= 1;
        self.hold_key(&e.key);
        self.running += 1;
        self.admitting.insert(e.order.2.clone());
        if let Some(e) = self.entries.get_mut(name) {
            e.slot = Slot::Admitting;
        }
    }

    /// Jobs running or being admitted.
    pub fn running(&self) -> usize {
        self.running
    }

    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn clear(&mut self) {
        let max_running = self.max_running;
        *self = Queue::new(max_running);
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
            concurrency_key: key.map(Into::into),
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
        q.admission_failed("low");
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
        q.admission_failed("x");
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

    #[test]
    fn jobs_waiting_behind_a_busy_key_never_block_others_and_follow_in_order() {
        let mut q = Queue::new(3);
        q.observe(obs("busy", JobState::Running, 0, 0, Some("k")));
        for i in 0..100 {
            q.observe(obs(
                &format!("k{i:03}"),
                JobState::Queued,
                0,
                10 + i,
                Some("k"),
            ));
        }
        q.observe(obs("low", JobState::Queued, 0, 500, None));
        q.observe(obs("high-k", JobState::Queued, 9, 600, Some("k")));
        assert_eq!(
            q.take_admissions(),
            ["low"],
            "the key is busy, the rest admits"
        );
        q.observe(obs("busy", JobState::Succeeded, 0, 0, Some("k")));
        assert_eq!(
            q.take_admissions(),
            ["high-k"],
            "the best of the key, one at a time"
        );
        q.observe(obs("high-k", JobState::Cancelled, 9, 600, Some("k")));
        assert_eq!(q.take_admissions(), ["k000"]);
        q.forget("k000");
        q.observe(obs("k001", JobState::Cancelled, 0, 11, Some("k")));
        assert_eq!(q.take_admissions(), ["k002"]);
        assert_eq!((q.running(), q.queued()), (2, 97));
    }
}
