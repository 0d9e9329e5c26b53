//! The watch store: the slim [`JobRecord`] of every managed Job, and the
//! indexes kept in step with it on every watch event — by state, source and
//! repository (newest first, for filtered pages), by dedup key, and
//! cancelled Jobs by cancellation time (for the TTL sweep). Every change costs a constant number of index operations
//! (O(log n) each); nothing walks all Jobs except a relist, which compares
//! what the API server listed with what is stored.
//!
//! Written by the Job watch (one stream per watched namespace, see
//! `src/cluster/metered.rs`); read by the HTTP workers, the scheduler and
//! the watcher actors. Jobs are keyed by name: names derive from the task's
//! dedup key, so one task has one name in whichever namespace it runs, and
//! the store holds one Job per name (see `src/watcher.rs` for a name met in
//! two namespaces). A relist is per namespace: it removes only that
//! namespace's Jobs it did not list. A lookup that misses here is the caller's to answer
//! from the API server (one object, by name or label).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::job::{JobRecord, WaitBoard};
use crate::job::{JobState, STATE_COUNT};

/// Order of list pages: newest first, then by name.
type ListKey = (Reverse<i64>, Arc<str>);

type Index = HashMap<Box<str>, BTreeSet<ListKey>>;

#[derive(Default)]
struct Inner {
    jobs: HashMap<Arc<str>, Arc<JobRecord>>,
    all: BTreeSet<ListKey>,
    by_state: [BTreeSet<ListKey>; STATE_COUNT],
    by_source: Index,
    by_repo: Index,
    by_namespace: Index,
    by_dedup: HashMap<Arc<str>, Arc<str>>,
    cancelled: BTreeSet<(i64, Arc<str>)>,
    /// Per namespace being relisted: the names listed so far.
    relist: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Jobs whose latest change a notification could not carry (a full
    /// mailbox): the scheduler re-reads them from here.
    dirty: HashSet<Arc<str>>,
    ready: bool,
    /// The last records of the latest deleted Jobs, newest last (at most
    /// [`DELETED_KEPT`]): a report owed by a Job deleted right after its
    /// last change (a cancel in Kueue mode deletes the Job) still goes out.
    deleted: std::collections::VecDeque<Arc<JobRecord>>,
}

/// How many deleted Jobs' last records the store keeps (about 1 KB each).
pub const DELETED_KEPT: usize = 256;

/// Work counters of the store, for the structural tests and metrics.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Index entries inserted, removed or visited.
    pub visited: AtomicU64,
    /// Changes applied (watch events).
    pub applied: AtomicU64,
}

/// A cheap handle to the shared store.
#[derive(Clone, Default)]
pub struct JobStore {
    inner: Arc<RwLock<Inner>>,
    stats: Arc<StoreStats>,
    /// Some Job is marked dirty (a lock-free check for the common case).
    has_dirty: Arc<AtomicBool>,
    /// A relist ended and the scheduler was not told (its mailbox was full).
    rebuild: Arc<AtomicBool>,
    /// What holds queued Jobs back, as the scheduler last published it.
    waits: WaitBoard,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JobStore({} jobs)", self.len())
    }
}

/// Filters of a list page (all optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct JobFilter<'a> {
    pub state: Option<JobState>,
    pub source: Option<&'a str>,
    /// The repository label value (`owner.name`).
    pub repository: Option<&'a str>,
    /// The namespace the Job runs in.
    pub namespace: Option<&'a str>,
}

impl JobFilter<'_> {
    fn matches(&self, r: &JobRecord) -> bool {
        self.state.is_none_or(|s| r.state == s)
            && self.source.is_none_or(|s| r.source.as_deref() == Some(s))
            && self
                .repository
                .is_none_or(|s| r.repository.as_deref() == Some(s))
            && self.namespace.is_none_or(|s| &*r.namespace == s)
    }
}

/// What a change did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub before: Option<JobState>,
    pub after: JobState,
    /// The record as stored.
    pub record: Arc<JobRecord>,
}

fn add_to(index: &mut Index, key: &Option<Box<str>>, lk: &ListKey) {
    if let Some(k) = key {
        index.entry(k.clone()).or_default().insert(lk.clone());
    }
}

/// Removes `lk` under `key`; the index entries touched (0 or 1).
fn remove_from(index: &mut Index, key: &Option<Box<str>>, lk: &ListKey) -> u64 {
    let Some(k) = key else { return 0 };
    let Some(set) = index.get_mut(k) else {
        return 0;
    };
    set.remove(lk);
    if set.is_empty() {
        index.remove(k);
    }
    1
}

impl Inner {
    /// Takes `r` out of every index; the index entries touched.
    fn unindex(&mut self, r: &JobRecord) -> u64 {
        let lk = (Reverse(r.created), r.name.clone());
        let mut touched = 2;
        self.all.remove(&lk);
        self.by_state[r.state.index()].remove(&lk);
        touched += remove_from(&mut self.by_source, &r.source, &lk);
        touched += remove_from(&mut self.by_repo, &r.repository, &lk);
        touched += remove_from(
            &mut self.by_namespace,
            &Some(r.namespace.as_ref().into()),
            &lk,
        );
        if let Some(k) = &r.dedup_key {
            touched += 1;
            if self.by_dedup.get(k).is_some_and(|n| *n == r.name) {
                self.by_dedup.remove(k);
            }
        }
        if let Some(at) = r.cancelled_at {
            touched += 1;
            self.cancelled.remove(&(at, r.name.clone()));
        }
        touched
    }

    /// Puts `r` into every index; the index entries touched.
    fn index(&mut self, r: &JobRecord) -> u64 {
        let lk = (Reverse(r.created), r.name.clone());
        let mut touched = 2;
        self.all.insert(lk.clone());
        self.by_state[r.state.index()].insert(lk.clone());
        touched += u64::from(r.source.is_some()) + u64::from(r.repository.is_some());
        add_to(&mut self.by_source, &r.source, &lk);
        add_to(&mut self.by_repo, &r.repository, &lk);
        touched += 1;
        add_to(
            &mut self.by_namespace,
            &Some(r.namespace.as_ref().into()),
            &lk,
        );
        if let Some(k) = &r.dedup_key {
            touched += 1;
            self.by_dedup.insert(k.clone(), r.name.clone());
        }
        if let (Some(at), JobState::Cancelled) = (r.cancelled_at, r.state) {
            touched += 1;
            self.cancelled.insert((at, r.name.clone()));
        }
        touched
    }

    fn remove(&mut self, name: &str) -> (Option<Arc<JobRecord>>, u64) {
        match self.jobs.remove(name) {
            Some(r) => {
                let cost = self.unindex(&r);
                (Some(r), cost + 1)
            }
            None => (None, 1),
        }
    }
}

impl JobStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Why queued Jobs wait (the scheduler writes it, routes and reports
    /// read it).
    pub fn waits(&self) -> &WaitBoard {
        &self.waits
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, n: u64) {
        self.stats.visited.fetch_add(n, Ordering::Relaxed);
    }

    /// The store's work counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Stores (or replaces) a Job's record and updates every index.
    pub fn apply(&self, record: JobRecord) -> Applied {
        let mut inner = self.write();
        let (before, mut cost) = inner.remove(&record.name);
        cost += inner.index(&record);
        if let Some(seen) = inner.relist.get_mut(&record.namespace) {
            seen.insert(record.name.clone());
        }
        let after = record.state;
        let record = Arc::new(record);
        inner.jobs.insert(record.name.clone(), record.clone());
        drop(inner);
        self.count(cost + 1);
        self.stats.applied.fetch_add(1, Ordering::Relaxed);
        Applied {
            before: before.map(|r| r.state),
            after,
            record,
        }
    }

    /// Removes a deleted Job of `namespace`; answers its last record. A
    /// stored Job of that name in another namespace stays.
    pub fn delete(&self, namespace: &str, name: &str) -> Option<Arc<JobRecord>> {
        let mut inner = self.write();
        let (r, cost) = match inner.jobs.get(name) {
            Some(r) if &*r.namespace != namespace => (None, 1),
            _ => inner.remove(name),
        };
        if let Some(r) = &r {
            if inner.deleted.len() >= DELETED_KEPT {
                inner.deleted.pop_front();
            }
            inner.deleted.push_back(r.clone());
        }
        drop(inner);
        self.count(cost);
        self.stats.applied.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// The last record of a Job deleted lately (see [`DELETED_KEPT`]); for
    /// the reporters only: everything else treats a deleted Job as gone.
    pub fn recently_deleted(&self, name: &str) -> Option<Arc<JobRecord>> {
        let inner = self.read();
        inner
            .deleted
            .iter()
            .rev()
            .find(|r| &*r.name == name)
            .cloned()
    }

    /// The record of one Job.
    pub fn get(&self, name: &str) -> Option<Arc<JobRecord>> {
        self.count(1);
        self.read().jobs.get(name).cloned()
    }

    /// The Job of a task, by its dedup key (as the annotation holds it).
    pub fn by_dedup_key(&self, key: &str) -> Option<Arc<JobRecord>> {
        self.count(2);
        let inner = self.read();
        let name = inner.by_dedup.get(key)?;
        inner.jobs.get(name).cloned()
    }

    /// Jobs in `state` (O(1)).
    pub fn count_in(&self, state: JobState) -> usize {
        self.read().by_state[state.index()].len()
    }

    /// Every stored Job.
    pub fn len(&self) -> usize {
        self.read().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records of every queued and running Job (for rebuilding the
    /// scheduler's queue: finished Jobs are not visited).
    pub fn live(&self) -> Vec<Arc<JobRecord>> {
        let inner = self.read();
        let out: Vec<Arc<JobRecord>> = [JobState::Queued, JobState::Running]
            .iter()
            .flat_map(|s| inner.by_state[s.index()].iter())
            .filter_map(|(_, n)| inner.jobs.get(n).cloned())
            .collect();
        self.count(out.len() as u64);
        out
    }

    /// Records of the Jobs in `state` (through the state index: only those
    /// are visited).
    pub fn in_state(&self, state: JobState) -> Vec<Arc<JobRecord>> {
        let inner = self.read();
        let out: Vec<Arc<JobRecord>> = inner.by_state[state.index()]
            .iter()
            .filter_map(|(_, n)| inner.jobs.get(n).cloned())
            .collect();
        self.count(out.len() as u64);
        out
    }

    /// Records that match `keep` (a scan of every Job, for the reporters'
    /// periodic sweep).
    pub fn filtered(&self, keep: impl Fn(&JobRecord) -> bool) -> Vec<Arc<JobRecord>> {
        let inner = self.read();
        let out: Vec<Arc<JobRecord>> = inner.jobs.values().filter(|r| keep(r)).cloned().collect();
        self.count(inner.jobs.len() as u64);
        out
    }

    /// Cancelled Jobs cancelled at or before `unix_seconds`, oldest first.
    pub fn cancelled_before(&self, unix_seconds: i64) -> Vec<Arc<str>> {
        let inner = self.read();
        let out: Vec<Arc<str>> = inner
            .cancelled
            .iter()
            .take_while(|(at, _)| *at <= unix_seconds)
            .map(|(_, n)| n.clone())
            .collect();
        self.count(out.len() as u64 + 1);
        out
    }

    /// One page of Jobs matching `filter`, newest first, strictly after the
    /// `(created, name)` position `after`. Answers the page and whether
    /// more follow. Walks the smallest index among the filters given.
    pub fn page(
        &self,
        filter: &JobFilter<'_>,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> (Vec<Arc<JobRecord>>, bool) {
        static EMPTY: BTreeSet<ListKey> = BTreeSet::new();
        let inner = self.read();
        let candidates = [
            Some(&inner.all),
            filter.state.map(|s| &inner.by_state[s.index()]),
            filter
                .source
                .map(|s| inner.by_source.get(s).unwrap_or(&EMPTY)),
            filter
                .repository
                .map(|r| inner.by_repo.get(r).unwrap_or(&EMPTY)),
            filter
                .namespace
                .map(|n| inner.by_namespace.get(n).unwrap_or(&EMPTY)),
        ];
        let base = candidates
            .into_iter()
            .flatten()
            .min_by_key(|set| set.len())
            .unwrap_or(&EMPTY);
        let start = match after {
            Some((created, name)) => Bound::Excluded((Reverse(created), Arc::<str>::from(name))),
            None => Bound::Unbounded,
        };
        let mut visited = 0u64;
        let mut out = Vec::with_capacity(limit.min(512) + 1);
        for (_, name) in base.range((start, Bound::Unbounded)) {
            visited += 1;
            let Some(r) = inner.jobs.get(name) else {
                continue;
            };
            if filter.matches(r) {
                out.push(r.clone());
                if out.len() > limit {
                    break;
                }
            }
        }
        drop(inner);
        self.count(visited);
        let more = out.len() > limit;
        out.truncate(limit);
        (out, more)
    }

    /// A relist of `namespace` began: its Jobs it does not list are
    /// deleted at its end.
    pub fn begin_relist(&self, namespace: &str) {
        self.write().relist.insert(namespace.into(), HashSet::new());
    }

    /// The relist of `namespace` ended: removes (and answers) the Jobs of
    /// that namespace it did not list. Jobs of other namespaces stay.
    pub fn finish_relist(&self, namespace: &str) -> Vec<Arc<JobRecord>> {
        let mut inner = self.write();
        let seen = inner.relist.remove(namespace).unwrap_or_default();
        let gone: Vec<Arc<str>> = inner
            .jobs
            .iter()
            .filter(|(n, r)| &*r.namespace == namespace && !seen.contains(*n))
            .map(|(n, _)| n.clone())
            .collect();
        let visited = inner.jobs.len() as u64;
        let removed: Vec<Arc<JobRecord>> = gone.iter().filter_map(|n| inner.remove(n).0).collect();
        drop(inner);
        self.count(visited);
        removed
    }

    /// Every watched namespace has been listed once: the store is complete.
    pub fn mark_ready(&self) {
        self.write().ready = true;
    }

    /// The watch has listed everything (every namespace) at least once.
    pub fn is_ready(&self) -> bool {
        self.read().ready
    }

    /// Marks a Job whose change a full mailbox could not carry.
    pub fn mark_dirty(&self, name: Arc<str>) {
        self.write().dirty.insert(name);
        self.has_dirty.store(true, Ordering::SeqCst);
    }

    /// Asks the scheduler to rebuild its queue from the store (a relist
    /// ended and the message saying so could not be delivered).
    pub fn request_rebuild(&self) {
        self.rebuild.store(true, Ordering::SeqCst);
    }

    /// Whether a rebuild was requested since the last call.
    pub fn take_rebuild(&self) -> bool {
        self.rebuild.swap(false, Ordering::SeqCst)
    }

    /// Takes the Jobs marked dirty.
    pub fn take_dirty(&self) -> Vec<Arc<str>> {
        if !self.has_dirty.swap(false, Ordering::SeqCst) {
            return Vec::new();
        }
        self.write().dirty.drain().collect()
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
