//! The admission queue: which Jobs wait, which run, and which to admit next.
//! Pure: fed with observed Job states (and which budgets are spent), it
//! answers names to unsuspend.
//!
//! Order: higher priority first; at equal priority, the repository admitted
//! least recently first, and within a repository older first. Limits: a
//! global `max_running`, at most `per_repository` running Jobs per
//! repository and `per_source[source]` per source (each when set), none of
//! a repository or source whose daily budget is spent, and at most one
//! running Job per concurrency key (one issue or PR), so two tasks never
//! edit the same thing at once.
//!
//! Fair order is *least recently admitted* rather than a round-robin
//! cursor: each repository keeps one number, the stamp of its last
//! admission (a counter that also follows the `started_at` of the running
//! Jobs it is shown, so a rebuilt queue keeps roughly the same order), and
//! the repositories' lanes are kept sorted by (priority of their best Job,
//! stamp). That is a round-robin among the repositories that have work, in
//! O(log n) per pick with no cursor to repair when repositories come and
//! go, and a repository that had nothing admitted for longest (a new one
//! included) goes first. A repository with 500 queued tasks thus gets one
//! admission per turn like one with a single task; it never starves it.
//! A repository with nothing queued or running is forgotten (its stamp
//! too), so memory follows the live Jobs.
//!
//! Structure: every queued Job admissible as far as its concurrency key
//! goes (no key, or the best waiting Job of a key nobody holds) is in the
//! `ready` set of its *lane* — its (source, repository). Each lane whose
//! repository is open (under its cap, budget left) has one head entry in
//! its source's `heads`. A pick compares the first head of each open
//! source (a handful: github, grafana, cli, pm-agent) and takes it:
//! O(sources · log n), however many Jobs wait behind a busy key, a capped
//! repository or a spent budget. Counts are kept, never recomputed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::job::JobRecord;
use crate::job::JobState;

type QueueKey = (Reverse<i32>, i64, Arc<str>);
/// A lane's place among its source's lanes: its best Job's priority, its
/// repository's last admission stamp, its best Job's age and name.
type HeadKey = (Reverse<i32>, u64, i64, Arc<str>);
/// (source, repository key); the repository key is `""` for none.
type LaneId = (Arc<str>, Arc<str>);

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
    lane: LaneId,
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
    /// The source (`github`, `grafana`, `cli`, `pm-agent`; `""` if unknown).
    pub source: Arc<str>,
    /// The repository, `owner/name` lower-cased (`""` if none).
    pub repository: Arc<str>,
    /// When it started (unix seconds; 0 if it has not).
    pub started: i64,
    /// The object's resourceVersion; older observations are ignored.
    pub rv: u64,
}

/// The repository key of a record: `owner/name` lower-cased, as the
/// concurrency key compares it (`""` for none).
pub fn repository_key(r: &JobRecord) -> Arc<str> {
    Arc::from(r.repository_key())
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
            source: r.source.as_deref().map_or_else(|| Arc::from(""), Arc::from),
            repository: repository_key(r),
            started: r.started_at.map_or(0, |t| t.timestamp()),
            rv: r.rv,
        }
    }
}

/// The caps the queue keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `MAX_CONCURRENT_JOBS`.
    pub max_running: usize,
    /// `MAX_CONCURRENT_JOBS_PER_REPOSITORY` (0: none). Jobs without a
    /// repository are not capped by it.
    pub per_repository: usize,
    /// `MAX_CONCURRENT_JOBS_PER_SOURCE`: source → cap (absent: none).
    pub per_source: HashMap<String, usize>,
}

/// One repository's bookkeeping.
#[derive(Debug, Default, Clone)]
struct Group {
    /// Jobs of it the queue holds (queued, admitting, running).
    entries: usize,
    /// Running or admitting.
    running: usize,
    /// Its last admission (see the module docs).
    stamp: u64,
}

/// One (source, repository) lane.
#[derive(Debug, Default)]
struct Lane {
    /// Its Jobs admissible as far as their concurrency keys go, best first.
    ready: BTreeSet<QueueKey>,
    /// Its entry in its source's heads, when its repository is open.
    head: Option<HeadKey>,
}

/// Why the queue holds a repository or a source back, as counts: the
/// scheduler publishes them for the wait reasons (`job::waits`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Occupancy {
    pub running: usize,
    /// Running or admitting, per repository key (only those with any).
    pub repositories: HashMap<String, usize>,
    /// Running or admitting, per source (only those with any).
    pub sources: HashMap<String, usize>,
    /// Concurrency keys held by a running or admitting Job.
    pub keys: HashSet<String>,
}

#[derive(Debug, Default)]
pub struct Queue {
    limits: Limits,
    lanes: HashMap<LaneId, Lane>,
    /// Per source, the heads of its open lanes, best first.
    heads: HashMap<Arc<str>, BTreeSet<HeadKey>>,
    groups: HashMap<Arc<str>, Group>,
    source_running: HashMap<Arc<str>, usize>,
    /// Repositories and sources whose daily budget is spent.
    spent_repositories: HashSet<Arc<str>>,
    spent_sources: HashSet<Arc<str>>,
    /// The last stamp given (or seen): only grows.
    clock: u64,
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
    /// A queue with only the global cap.
    pub fn new(max_running: usize) -> Self {
        Queue::with_limits(Limits {
            max_running,
            ..Limits::default()
        })
    }

    pub fn with_limits(limits: Limits) -> Self {
        Queue {
            limits,
            ..Default::default()
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn held(&self, key: &str) -> bool {
        self.keys_running.contains_key(key)
    }

    /// Whether `repo`'s lanes may be picked from: under its cap, budget left.
    fn repo_open(&self, repo: &str) -> bool {
        if repo.is_empty() {
            return true;
        }
        if self.spent_repositories.contains(repo) {
            return false;
        }
        let cap = self.limits.per_repository;
        cap == 0 || self.groups.get(repo).map_or(0, |g| g.running) < cap
    }

    /// Whether `source`'s lanes may be picked from.
    fn source_open(&self, source: &str) -> bool {
        if self.spent_sources.contains(source) {
            return false;
        }
        match self.limits.per_source.get(source) {
            Some(cap) => self.source_running.get(source).copied().unwrap_or(0) < *cap,
            None => true,
        }
    }

    /// Puts a lane's head where it belongs now (or takes it out), and
    /// drops an empty lane.
    fn refresh_lane(&mut self, id: &LaneId) {
        let open = self.repo_open(&id.1);
        let stamp = self.groups.get(&id.1).map_or(0, |g| g.stamp);
        let Some(lane) = self.lanes.get_mut(id) else {
            return;
        };
        let want = if open {
            lane.ready
                .first()
                .map(|(p, c, n)| (*p, stamp, *c, n.clone()))
        } else {
            None
        };
        if lane.head != want {
            let heads = self.heads.entry(id.0.clone()).or_default();
            if let Some(old) = lane.head.take() {
                heads.remove(&old);
            }
            if let Some(new) = &want {
                heads.insert(new.clone());
            }
            lane.head = want;
        }
        if lane.ready.is_empty() && lane.head.is_none() {
            self.lanes.remove(id);
        }
    }

    /// Refreshes every lane of a repository (one per source: a handful).
    fn refresh_repo(&mut self, repo: &Arc<str>) {
        let sources: Vec<Arc<str>> = self.heads.keys().cloned().collect();
        for s in sources {
            self.refresh_lane(&(s, repo.clone()));
        }
    }

    fn ready_insert(&mut self, order: &QueueKey, lane: &LaneId) {
        self.heads.entry(lane.0.clone()).or_default();
        self.lanes
            .entry(lane.clone())
            .or_default()
            .ready
            .insert(order.clone());
        self.refresh_lane(lane);
    }

    fn ready_remove(&mut self, order: &QueueKey) {
        let Some(lane) = self.entries.get(&order.2).map(|e| e.lane.clone()) else {
            return;
        };
        self.ready_remove_in(order, &lane);
    }

    fn ready_remove_in(&mut self, order: &QueueKey, lane: &LaneId) {
        if let Some(l) = self.lanes.get_mut(lane) {
            l.ready.remove(order);
        }
        self.refresh_lane(lane);
    }

    fn enqueue(&mut self, order: &QueueKey, key: &Option<Box<str>>, lane: &LaneId) {
        let Some(k) = key else {
            self.ready_insert(order, lane);
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
                self.ready_remove(&h);
                self.ready_insert(order, lane);
            }
            Some(_) => {}
            None => self.ready_insert(order, lane),
        }
    }

    fn dequeue(&mut self, order: &QueueKey, key: &Option<Box<str>>, lane: &LaneId) {
        let Some(k) = key else {
            self.ready_remove_in(order, lane);
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
            self.ready_remove_in(order, lane);
            if let Some(n) = next {
                self.ready_insert_known(&n);
            }
        }
    }

    /// Makes a known queued Job ready (its lane read from its entry).
    fn ready_insert_known(&mut self, order: &QueueKey) {
        if let Some(lane) = self.entries.get(&order.2).map(|e| e.lane.clone()) {
            self.ready_insert(order, &lane);
        }
    }

    /// A Job of `lane` with `key` takes a running slot.
    fn occupy(&mut self, key: &Option<Box<str>>, lane: &LaneId) {
        if let Some(k) = key {
            let n = self.keys_running.entry(k.clone()).or_default();
            *n += 1;
            if *n == 1 {
                if let Some(h) = self.waiting.get(k).and_then(|w| w.first()).cloned() {
                    self.ready_remove(&h);
                }
            }
        }
        *self.source_running.entry(lane.0.clone()).or_default() += 1;
        self.groups.entry(lane.1.clone()).or_default().running += 1;
        self.running += 1;
        self.refresh_repo(&lane.1);
    }

    /// A Job of `lane` with `key` gives its running slot back.
    fn vacate(&mut self, key: &Option<Box<str>>, lane: &LaneId) {
        if let Some(k) = key {
            if let Some(n) = self.keys_running.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.keys_running.remove(k);
                    if let Some(h) = self.waiting.get(k).and_then(|w| w.first()).cloned() {
                        self.ready_insert_known(&h);
                    }
                }
            }
        }
        if let Some(n) = self.source_running.get_mut(&lane.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.source_running.remove(&lane.0);
            }
        }
        if let Some(g) = self.groups.get_mut(&lane.1) {
            g.running = g.running.saturating_sub(1);
        }
        self.running = self.running.saturating_sub(1);
        self.refresh_repo(&lane.1);
    }

    /// Stamps a repository's admission (or a start seen, `at` > 0).
    fn stamp(&mut self, repo: &Arc<str>, at: Option<u64>) {
        let next = match at {
            Some(t) => {
                self.clock = self.clock.max(t);
                t
            }
            None => {
                self.clock += 1;
                self.clock
            }
        };
        let Some(g) = self.groups.get_mut(repo) else {
            return;
        };
        if next > g.stamp {
            g.stamp = next;
            self.refresh_repo(repo);
        }
    }

    /// Removes a Job from all bookkeeping.
    pub fn forget(&mut self, name: &str) {
        if let Some(repo) = self.remove(name) {
            self.prune(&repo);
        }
    }

    /// Forgets a repository with no Jobs left (its stamp too).
    fn prune(&mut self, repo: &Arc<str>) {
        if self.groups.get(repo).is_some_and(|g| g.entries == 0) {
            self.groups.remove(repo);
        }
    }

    /// Removes a Job, keeping its repository's bookkeeping (returned) for
    /// the caller to prune.
    fn remove(&mut self, name: &str) -> Option<Arc<str>> {
        let e = self.entries.get(name).cloned()?;
        match e.slot {
            Slot::Queued => {
                self.dequeue(&e.order, &e.key, &e.lane);
                self.queued -= 1;
            }
            Slot::Admitting | Slot::Running => {
                if e.slot == Slot::Admitting {
                    self.admitting.remove(name);
                }
                self.vacate(&e.key, &e.lane);
            }
        }
        self.entries.remove(name);
        if let Some(g) = self.groups.get_mut(&e.lane.1) {
            g.entries = g.entries.saturating_sub(1);
        }
        Some(e.lane.1)
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
        // The repository keeps its stamp while the Job changes state.
        let before = self.remove(&o.name);
        // A cancelled Job is never admitted and holds no slot: its pods (if
        // it ran) are being deleted.
        if o.state.is_finished() || o.state == JobState::Cancelled {
            if let Some(repo) = before {
                self.prune(&repo);
            }
            return;
        }
        let order = (Reverse(o.priority), o.created, o.name.clone());
        let lane: LaneId = (o.source.clone(), o.repository.clone());
        self.groups.entry(lane.1.clone()).or_default().entries += 1;
        let slot = if o.state == JobState::Queued {
            self.enqueue(&order, &o.concurrency_key, &lane);
            self.queued += 1;
            Slot::Queued
        } else {
            self.occupy(&o.concurrency_key, &lane);
            if o.started > 0 {
                self.stamp(&lane.1, Some(o.started as u64 * 1000));
            }
            Slot::Running
        };
        self.entries.insert(
            o.name,
            Entry {
                slot,
                order,
                key: o.concurrency_key,
                lane,
                rv: o.rv,
            },
        );
    }

    /// The best head of an open source.
    fn best_head(&self) -> Option<HeadKey> {
        let mut best: Option<&HeadKey> = None;
        for (source, heads) in &self.heads {
            let Some(h) = heads.first() else {
                continue;
            };
            if best.is_some_and(|b| b <= h) || !self.source_open(source) {
                continue;
            }
            best = Some(h);
        }
        best.cloned()
    }

    /// Picks the Jobs to admit now and marks them admitting. Costs
    /// O(sources · log n) per Job picked, nothing when the limit is reached.
    pub fn take_admissions(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.running < self.limits.max_running {
            let Some(head) = self.best_head() else {
                break;
            };
            let Some(e) = self.entries.get(&head.3).cloned() else {
                // Cannot happen (heads follow entries); never loop on it.
                for heads in self.heads.values_mut() {
                    heads.remove(&head);
                }
                continue;
            };
            self.dequeue(&e.order, &e.key, &e.lane);
            self.queued -= 1;
            self.occupy(&e.key, &e.lane);
            self.stamp(&e.lane.1, None);
            if let Some(e) = self.entries.get_mut(&head.3) {
                e.slot = Slot::Admitting;
            }
            self.admitting.insert(head.3.clone());
            out.push(head.3.to_string());
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
        self.vacate(&e.key, &e.lane);
        if let Some(x) = self.entries.get_mut(name) {
            x.slot = Slot::Queued;
        }
        self.enqueue(&e.order, &e.key, &e.lane);
        self.queued += 1;
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
        self.dequeue(&e.order, &e.key, &e.lane);
        self.queued -= 1;
        self.occupy(&e.key, &e.lane);
        self.admitting.insert(e.order.2.clone());
        if let Some(e) = self.entries.get_mut(name) {
            e.slot = Slot::Admitting;
        }
    }

    /// Sets the repositories (keys, lower-cased) and sources whose daily
    /// budget is spent: their queued Jobs wait until it is lifted.
    pub fn set_spent(&mut self, repositories: HashSet<Arc<str>>, sources: HashSet<Arc<str>>) {
        let changed: Vec<Arc<str>> = repositories
            .symmetric_difference(&self.spent_repositories)
            .cloned()
            .collect();
        self.spent_repositories = repositories;
        self.spent_sources = sources;
        for repo in &changed {
            self.refresh_repo(repo);
        }
    }

    /// Who holds running slots now (for the wait reasons).
    pub fn occupancy(&self) -> Occupancy {
        Occupancy {
            running: self.running,
            repositories: self
                .groups
                .iter()
                .filter(|(k, g)| g.running > 0 && !k.is_empty())
                .map(|(k, g)| (k.to_string(), g.running))
                .collect(),
            sources: self
                .source_running
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
            keys: self.keys_running.keys().map(|k| k.to_string()).collect(),
        }
    }

    /// Jobs running or being admitted.
    pub fn running(&self) -> usize {
        self.running
    }

    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Forgets every Job (limits, spent budgets and the clock stay).
    pub fn clear(&mut self) {
        let limits = std::mem::take(&mut self.limits);
        let spent_repositories = std::mem::take(&mut self.spent_repositories);
        let spent_sources = std::mem::take(&mut self.spent_sources);
        let clock = self.clock;
        *self = Queue::with_limits(limits);
        self.spent_repositories = spent_repositories;
        self.spent_sources = spent_sources;
        self.clock = clock;
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
            source: "cli".into(),
            repository: "".into(),
            started: 0,
            rv: 0,
        }
    }

    /// A queued Job of `source` and `repo`, priority 0.
    fn of(name: &str, source: &str, repo: &str, created: i64) -> Observed {
        Observed {
            source: source.into(),
            repository: repo.into(),
            ..obs(name, JobState::Queued, 0, created, None)
        }
    }

    fn running(o: Observed) -> Observed {
        Observed {
            state: JobState::Running,
            ..o
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

    #[test]
    fn a_repository_with_one_task_is_not_starved_by_one_with_five_hundred() {
        let mut q = Queue::new(2);
        for i in 0..500 {
            q.observe(of(&format!("a{i:03}"), "cli", "acme/a", i));
        }
        q.observe(of("b", "cli", "acme/b", 1000));
        let first = q.take_admissions();
        assert_eq!(first, ["a000", "b"], "b's turn comes right after a's");
        // Least recently admitted first: the repositories alternate while
        // both have work; then a runs alone.
        let mut q = Queue::new(1);
        for i in 0..3 {
            q.observe(of(&format!("a{i}"), "cli", "acme/a", i));
            q.observe(of(&format!("b{i}"), "cli", "acme/b", 100 + i));
        }
        q.observe(of("c0", "github", "acme/c", 200));
        let mut order = Vec::new();
        for _ in 0..7 {
            let got = q.take_admissions();
            assert_eq!(got.len(), 1);
            q.forget(&got[0]);
            order.extend(got);
        }
        assert_eq!(order, ["a0", "b0", "c0", "a1", "b1", "a2", "b2"]);
    }

    #[test]
    fn priority_comes_before_fair_order() {
        let mut q = Queue::new(1);
        q.observe(of("a0", "cli", "acme/a", 0));
        q.observe(of("b0", "cli", "acme/b", 1));
        assert_eq!(q.take_admissions(), ["a0"]);
        q.forget("a0");
        q.observe(Observed {
            priority: 5,
            ..of("a1", "cli", "acme/a", 2)
        });
        assert_eq!(q.take_admissions(), ["a1"], "higher priority wins");
    }

    #[test]
    fn the_per_repository_cap_holds_a_repository_back_not_the_others() {
        let mut q = Queue::with_limits(Limits {
            max_running: 10,
            per_repository: 2,
            ..Limits::default()
        });
        for i in 0..5 {
            q.observe(of(&format!("a{i}"), "cli", "acme/a", i));
        }
        q.observe(of("b0", "github", "acme/b", 10));
        q.observe(of("n0", "grafana", "", 11));
        q.observe(of("n1", "grafana", "", 12));
        q.observe(of("n2", "grafana", "", 13));
        let mut got = q.take_admissions();
        got.sort();
        assert_eq!(got, ["a0", "a1", "b0", "n0", "n1", "n2"]);
        assert_eq!(q.occupancy().repositories.get("acme/a"), Some(&2));
        assert!(q.take_admissions().is_empty(), "acme/a is at its cap");
        q.observe(running(of("a0", "cli", "acme/a", 0)));
        q.observe(Observed {
            state: JobState::Succeeded,
            ..of("a0", "cli", "acme/a", 0)
        });
        assert_eq!(q.take_admissions(), ["a2"], "one slot of acme/a came free");
    }

    #[test]
    fn the_per_source_cap_holds_a_source_back() {
        let mut q = Queue::with_limits(Limits {
            max_running: 10,
            per_source: HashMap::from([("grafana".to_string(), 1)]),
            ..Limits::default()
        });
        q.observe(of("g0", "grafana", "acme/a", 0));
        q.observe(of("g1", "grafana", "acme/b", 1));
        q.observe(of("c0", "cli", "acme/a", 2));
        let mut got = q.take_admissions();
        got.sort();
        assert_eq!(got, ["c0", "g0"]);
        q.forget("g0");
        assert_eq!(q.take_admissions(), ["g1"]);
    }

    #[test]
    fn a_spent_budget_holds_queued_jobs_until_it_is_lifted() {
        let mut q = Queue::new(10);
        q.observe(of("a0", "cli", "acme/a", 0));
        q.observe(of("b0", "cli", "acme/b", 1));
        q.observe(of("g0", "grafana", "acme/c", 2));
        q.set_spent(
            HashSet::from([Arc::from("acme/a")]),
            HashSet::from([Arc::from("grafana")]),
        );
        assert_eq!(q.take_admissions(), ["b0"]);
        q.observe(of("a1", "cli", "acme/a", 3));
        assert!(q.take_admissions().is_empty());
        q.set_spent(HashSet::new(), HashSet::new());
        assert_eq!(q.take_admissions(), ["a0", "g0", "a1"]);
    }

    #[test]
    fn a_rebuild_orders_repositories_by_their_last_start() {
        let mut q = Queue::new(2);
        // acme/a started something more recently than acme/b.
        q.observe(Observed {
            started: 2_000,
            ..running(of("ra", "cli", "acme/a", 0))
        });
        q.observe(Observed {
            started: 1_000,
            ..running(of("rb", "cli", "acme/b", 0))
        });
        q.observe(of("a1", "cli", "acme/a", 5));
        q.observe(of("b1", "cli", "acme/b", 6));
        q.forget("ra");
        q.forget("rb");
        assert_eq!(q.take_admissions(), ["b1", "a1"]);
    }
}
