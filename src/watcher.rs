//! Job watching: one watch over the managed Jobs of each watched namespace
//! (`kube::runtime::watcher`, merged into one stream), each event projected to a slim [`JobRecord`] (the full object is dropped
//! at once) and written to the [`JobStore`], then demultiplexed to one
//! [`JobWatcher`] actor per live (queued or running) Job. A watcher follows
//! its Job's state changes, reports them to the scheduler and ends with its
//! Job; finished and cancelled Jobs have no actor.
//!
//! ```text
//!  watch(managed-by=orchestrator) ─▶ JobRecord ─▶ JobStore ─▶ demux ─┬▶ JobWatcher(a) ─┐
//!                                                (+ indexes)         ├▶ JobWatcher(b) ─┼▶ Scheduler
//!                                                                    └▶ …              ─┘
//! ```
//!
//! Bounded edges, no lost terminal state: the demux leaves each watcher the
//! newest news of its Job (a record, or that it is gone) in the watcher's
//! [`Inbox`], replacing older news, then sends a [`Changed`] nudge that
//! carries nothing. So when a watcher's mailbox is full (capacity
//! [`WATCHER_MAILBOX`]) the nudge is dropped and counted: one already
//! waiting takes the newest news, and the watcher is told what the demux
//! saw without reading the store again. A watcher that
//! cannot reach the scheduler (its bounded mailbox, capacity
//! [`crate::scheduler::MAILBOX`], is full) marks the Job dirty in the store
//! and counts the overflow; the scheduler re-reads dirty Jobs on its next
//! message or every `SCHEDULER_RESYNC_SECONDS`.
//!
//! Supervision: watchers run under the actor runtime
//! ([`Runtime::start_transient`]) with the metrics of every other actor
//! (`actor="job_watcher"`: mailbox depth, messages, handling time,
//! overflows, restarts). A panicking watcher is restarted, rebuilds what it
//! knows from the store (its derived state) and reports it again; one that keeps panicking
//! ([`MAX_WATCHER_RESTARTS`]) marks its Job dirty for the scheduler and
//! ends.
//!
//! Per event: one projection, a constant number of index operations, at
//! most one message to a watcher and one to the scheduler.
//!
//! Namespaces: each namespace's watch relists on its own (the store removes
//! only that namespace's unlisted Jobs), and the store is ready once every
//! namespace has been listed. Job names derive from the task, so one task
//! is one name wherever it runs; should a managed Job of a stored name
//! appear in a second namespace (two replicas with different rules
//! creating the same task in the same moment), the store keeps the older
//! one (then the first namespace by name) and ignores the other, logged:
//! the ignored one stays suspended, never admitted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::watcher;

use crate::cluster::slim::SlimJob;

#[cfg(feature = "test-hooks")]
use crate::actors::Crash;
use crate::actors::{Mailbox, Runtime, Tracked};
use crate::cluster::store::JobStore;
use crate::job::JobRecord;
use crate::job::JobState;
use crate::metrics::demux::DemuxStats;
use crate::metrics::ActorMetrics;
use crate::metrics::Metrics;
use crate::report::Reporting;
use crate::scheduler::kueue::{Change, KueueChange};
use crate::scheduler::queue::Observed;
use crate::scheduler::{Admit, Forget, Observe, Scheduler, Synced};

/// Mailbox capacity of each watcher actor.
pub const WATCHER_MAILBOX: usize = 16;

/// Restarts of one watcher after which it gives its Job to the scheduler's
/// resync and ends.
pub const MAX_WATCHER_RESTARTS: u32 = 3;

/// What the demux last saw of one Job, for its watcher.
enum News {
    /// The Job's newest record.
    Record(Arc<JobRecord>),
    /// The Job is gone from the API server.
    Gone,
}

/// One watcher's newest news, left by the demux and taken by the watcher
/// ([`Changed`]); newer news replaces older news not taken yet.
#[derive(Default)]
pub struct Inbox(std::sync::Mutex<Option<News>>);

impl Inbox {
    fn put(&self, news: News) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(news);
    }

    fn take(&self) -> Option<News> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Follows one live Job until it finishes, is cancelled or disappears.
pub struct JobWatcher {
    name: Arc<str>,
    inbox: Arc<Inbox>,
    state: Option<JobState>,
    /// Kueue evictions the last record showed (a change is reported).
    evictions: u32,
    /// What it saw Kueue do (Kueue mode).
    kueue: KueueFollow,
    since: Instant,
    shared: Shared,
    /// Times restarted after a panic.
    restarts: u32,
    /// Fault injection (`Crash`, feature `test-hooks`): changes whose
    /// handling panics.
    #[cfg(feature = "test-hooks")]
    crashes: u32,
}

/// What the demux and every watcher share.
#[derive(Clone)]
struct Shared {
    store: JobStore,
    scheduler: Mailbox<Scheduler>,
    metrics: Arc<Metrics>,
    stats: Arc<DemuxStats>,
    /// Watchers start under this runtime …
    runtime: Runtime,
    /// … sharing these metrics (`actor="job_watcher"`).
    watcher_metrics: Arc<ActorMetrics>,
    /// Where each watcher reports its Job's state changes (queues only).
    reporting: Reporting,
}

impl Shared {
    /// Tells the scheduler about a Job; on a full mailbox marks it dirty.
    fn notify<M>(&self, name: &Arc<str>, msg: M)
    where
        M: Message<Result = ()> + Send + 'static,
        Scheduler: Handler<Tracked<M>>,
    {
        self.stats.to_scheduler.inc();
        if self.scheduler.tell(msg).is_err() {
            // (The scheduler's mailbox counts the overflow.)
            self.stats.overflows.inc();
            self.store.mark_dirty(name.clone());
        }
    }
}

impl Actor for JobWatcher {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.shared.metrics.watchers().inc();
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.shared.metrics.watchers().dec();
    }
}

impl Supervised for JobWatcher {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        // `started` runs again and counts the watcher again.
        self.shared.metrics.watchers().dec();
        self.restarts += 1;
        if self.restarts > MAX_WATCHER_RESTARTS {
            tracing::error!(job = %self.name, restarts = self.restarts, "job watcher keeps failing; the scheduler re-reads the job from the store");
            self.shared.store.mark_dirty(self.name.clone());
            // A full mailbox still leaves the dirty mark for the resync.
            let _ = self.shared.scheduler.tell(Admit);
            ctx.stop();
            return;
        }
        tracing::warn!(job = %self.name, "job watcher restarting; re-reading the job from the store");
        // Rebuild from the store (the news being handled was lost with the
        // panic) and report the state again, whatever was reported before.
        self.state = None;
        self.inbox.put(match self.shared.store.get(&self.name) {
            Some(r) => News::Record(r),
            None => News::Gone,
        });
        ctx.notify(Changed);
    }
}

#[cfg(feature = "test-hooks")]
impl Handler<Crash> for JobWatcher {
    type Result = ();
    fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        self.crashes += 1;
    }
}

/// The Job changed: take the newest news from the watcher's [`Inbox`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Changed;

impl Handler<Changed> for JobWatcher {
    type Result = ();
    fn handle(&mut self, _: Changed, ctx: &mut Context<Self>) {
        #[cfg(feature = "test-hooks")]
        if self.crashes > 0 {
            self.crashes -= 1;
            panic!("fault injection: the job watcher was told to crash");
        }
        let record = match self.inbox.take() {
            // An earlier nudge took the newest news already.
            None => return,
            Some(News::Record(record)) => record,
            Some(News::Gone) => {
                tracing::info!(job = %self.name, "job deleted");
                self.shared.notify(&self.name, Forget(self.name.clone()));
                ctx.stop();
                return;
            }
        };
        let state = record.state;
        let previous = self.state;
        if let Some(change) = self.kueue.see(previous, &record) {
            self.shared.notify(&self.name, change);
        }
        if previous != Some(state) {
            let waited = self.since.elapsed();
            tracing::info!(job = %self.name, state = state.as_str(), previous = self.state.map(JobState::as_str), after_ms = waited.as_millis() as u64, "job state");
            self.state = Some(state);
            self.since = Instant::now();
            self.shared
                .notify(&self.name, Observe(Observed::of(&record)));
            // The report goes out from the reporters' lanes: this only
            // queues it, so the watch never waits for GitHub.
            self.shared.reporting.changed(&record);
        } else if record.evictions() != self.evictions {
            // The eviction count landed on the Job: the report says it.
            self.shared.reporting.changed(&record);
        }
        self.evictions = record.evictions();
        if !state.is_live() {
            ctx.stop();
        }
    }
}

/// What a watcher saw Kueue do to its Job (a Job in a Kueue LocalQueue):
/// queued → running is an admission; an eviction is the first sign of one —
/// Kueue's `kueue.x-k8s.io/stopping` annotation on the running Job, or the
/// running Job suspended again (queued) — told once until it runs again.
/// A watcher that just started (no previous state) tells nothing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KueueFollow {
    /// The current eviction was told.
    evicting: bool,
}

impl KueueFollow {
    /// The change `record` shows after `previous`, if any.
    pub fn see(&mut self, previous: Option<JobState>, record: &JobRecord) -> Option<KueueChange> {
        let queue = record.kueue_queue()?.to_string();
        let stopping = record.kueue.as_deref().is_some_and(|k| k.stopping);
        let previous = previous?;
        let change = match (previous, record.state) {
            (JobState::Queued, JobState::Running) if !stopping => {
                self.evicting = false;
                let admitted = record.started_at.unwrap_or_else(chrono::Utc::now);
                let waited = record
                    .created_at
                    .map_or(0.0, |c| (admitted - c).num_milliseconds() as f64 / 1000.0);
                Change::Admitted { queue, waited }
            }
            (JobState::Running, JobState::Running) if !stopping => {
                self.evicting = false;
                return None;
            }
            (JobState::Running, JobState::Running | JobState::Queued) if !self.evicting => {
                self.evicting = true;
                Change::Evicted {
                    queue,
                    before: record.evictions(),
                }
            }
            _ => return None,
        };
        Some(KueueChange {
            name: record.name.clone(),
            uid: record.uid.clone(),
            change,
        })
    }
}

crate::tracked_handlers!(JobWatcher => Changed);
#[cfg(feature = "test-hooks")]
crate::tracked_handlers!(JobWatcher => Crash);

/// The demux that started the watcher is gone (the Job watch is being
/// restarted): stop; the new demux starts a watcher per live Job again
/// from its relist.
#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl Handler<Stop> for JobWatcher {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Drop for Demux {
    fn drop(&mut self) {
        for (w, _) in self.watchers.values() {
            w.tell_past_bound(Stop);
        }
    }
}

/// Routes watch events to the store and the per-Job watcher actors.
pub struct Demux {
    watchers: HashMap<Arc<str>, (Mailbox<JobWatcher>, Arc<Inbox>)>,
    shared: Shared,
    /// The namespaces watched, and those listed at least once.
    namespaces: usize,
    listed: std::collections::HashSet<Arc<str>>,
}

impl Demux {
    /// A demux starting its watchers under `runtime`. Must run inside an
    /// actix `System`, on the thread its watchers run on.
    pub fn new(
        store: JobStore,
        scheduler: Mailbox<Scheduler>,
        runtime: Runtime,
        metrics: Arc<Metrics>,
        stats: Arc<DemuxStats>,
    ) -> Self {
        Demux {
            watchers: HashMap::new(),
            namespaces: 1,
            listed: Default::default(),
            shared: Shared {
                store,
                scheduler,
                watcher_metrics: runtime.actor_metrics("job_watcher"),
                runtime,
                metrics,
                stats,
                reporting: Reporting::none(),
            },
        }
    }

    /// It is told of `count` namespaces' watches: the store is ready once
    /// each has been listed (default 1).
    pub fn watching(mut self, count: usize) -> Self {
        self.namespaces = count.max(1);
        self
    }

    /// Its watchers report their Jobs' state changes to `reporting`.
    pub fn with_reporting(mut self, reporting: Reporting) -> Self {
        self.shared.reporting = reporting;
        self
    }

    /// Live watcher actors.
    pub fn watchers(&self) -> usize {
        self.watchers.len()
    }

    /// The watcher following `name`, if any (for fault injection in tests;
    /// feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn watcher(&self, name: &str) -> Option<Mailbox<JobWatcher>> {
        self.watchers.get(name).map(|(w, _)| w.clone())
    }

    /// Leaves `news` for `name`'s watcher, if it still runs, and nudges it.
    /// `None`: no running watcher (it is forgotten); `Some(false)`: its
    /// mailbox was full (a nudge already waiting takes the newest news).
    fn tell_watcher(&mut self, name: &str, news: News) -> Option<bool> {
        let (w, inbox) = self.watchers.get(name)?;
        if !w.is_alive() {
            self.watchers.remove(name);
            return None;
        }
        inbox.put(news);
        self.shared.stats.to_watchers.inc();
        let sent = w.tell(Changed).is_ok();
        if !sent {
            // (The watcher's mailbox counts it in the actor metrics.)
            self.shared.stats.overflows.inc();
        }
        Some(sent)
    }

    /// A Job was added or changed.
    pub fn apply(&mut self, job: &Job) {
        let Some(name) = job.metadata.name.as_deref() else {
            return;
        };
        let previous = self.shared.store.get(name);
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(p) = previous.as_deref().filter(|p| &*p.namespace != namespace) {
            if keeps(p, job) {
                tracing::warn!(job = name, namespace, kept = %p.namespace,
                    "a managed Job of this name exists in another namespace; this one is ignored (it stays suspended): delete it");
                return;
            }
        }
        let previous = previous.filter(|p| &*p.namespace == namespace);
        let Some(record) = JobRecord::from_job(job, previous.as_deref()) else {
            return;
        };
        if record.state.is_finished() && previous.is_some_and(|p| p.state.is_live()) {
            // How long it ran (from the full object, before it is dropped).
            self.shared.metrics.service().finished(job);
        }
        self.apply_record(record);
    }

    /// A Job's record was added or changed.
    pub fn apply_record(&mut self, record: JobRecord) {
        let stats = &self.shared.stats;
        stats.events.inc();
        let name = record.name.clone();
        let applied = self.shared.store.apply(record);
        stats.tracked.set(self.shared.store.len() as i64);
        let live = applied.after.is_live();
        if self
            .tell_watcher(&name, News::Record(applied.record.clone()))
            .is_some()
        {
            if !live {
                // It reads the final record and stops.
                self.watchers.remove(&name);
            }
            return;
        }
        if !live {
            // Nothing to follow; the scheduler still needs to know.
            // (Only a Job it may hold: it never sees finished ones, and a
            // relist rebuilds it from the store anyway.)
            if applied.before.is_some_and(JobState::is_live) {
                self.shared
                    .notify(&name, Observe(Observed::of(&applied.record)));
            }
            return;
        }
        let inbox = Arc::new(Inbox::default());
        let w = self.shared.runtime.start_transient(
            "job_watcher",
            &self.shared.watcher_metrics,
            WATCHER_MAILBOX,
            JobWatcher {
                name: name.clone(),
                inbox: inbox.clone(),
                state: None,
                evictions: 0,
                kueue: KueueFollow::default(),
                since: Instant::now(),
                shared: self.shared.clone(),
                restarts: 0,
                #[cfg(feature = "test-hooks")]
                crashes: 0,
            },
        );
        self.watchers.insert(name.clone(), (w, inbox));
        self.tell_watcher(&name, News::Record(applied.record));
    }

    /// A Job of `namespace` was deleted.
    pub fn delete(&mut self, namespace: &str, name: &str) {
        self.shared.stats.events.inc();
        let stored = self.shared.store.get(name);
        if stored.is_some_and(|r| &*r.namespace != namespace) {
            // The ignored twin of a stored Job (see the module docs): the
            // stored one lives on.
            return;
        }
        let gone = self.shared.store.delete(namespace, name);
        self.shared
            .stats
            .tracked
            .set(self.shared.store.len() as i64);
        self.ended(name, gone.map(|r| r.name.clone()));
    }

    /// Tells whoever follows `name` that it is gone from the store.
    fn ended(&mut self, name: &str, stored: Option<Arc<str>>) {
        let name: Arc<str> = stored.unwrap_or_else(|| name.into());
        let told = self.tell_watcher(&name, News::Gone);
        self.watchers.remove(&name);
        if told.is_none() {
            self.shared.notify(&name, Forget(name.clone()));
        }
    }

    /// A relist of `namespace` began.
    pub fn relist_started(&mut self, namespace: &str) {
        self.shared.store.begin_relist(namespace);
    }

    /// A relist of `namespace` ended: its Jobs deleted while the watch was
    /// down end their watchers. Once every namespace has been listed, the
    /// store is ready and the scheduler rebuilds from it (after each later
    /// relist too); `None` until then.
    pub fn relist_done(&mut self, namespace: &Arc<str>) -> Option<usize> {
        for r in self.shared.store.finish_relist(namespace) {
            self.ended(&r.name, Some(r.name.clone()));
        }
        self.listed.insert(namespace.clone());
        self.all_listed()
    }

    /// The watch of `namespace` was denied (403) before it listed
    /// anything: the service may not see that tenant namespace's Jobs (its
    /// preflight checks say which permission is missing). It counts as
    /// listed, empty, so the other namespaces' Jobs are scheduled rather
    /// than held back by one namespace's Role; its Jobs join the store
    /// once its watch lists. Answers like [`Self::relist_done`].
    pub fn denied(&mut self, namespace: &Arc<str>) -> Option<usize> {
        if !self.listed.insert(namespace.clone()) {
            return None;
        }
        tracing::warn!(namespace = %namespace, "the Job watch of this namespace is denied; scheduling the other namespaces' Jobs without it");
        self.all_listed()
    }

    /// Once every namespace has been listed (or denied): the store is
    /// ready and the scheduler rebuilds from it.
    fn all_listed(&mut self) -> Option<usize> {
        if self.listed.len() < self.namespaces {
            return None;
        }
        self.shared.store.mark_ready();
        if self.shared.scheduler.tell(Synced).is_err() {
            // The scheduler picks the relist up from the store on its tick.
            self.shared.store.request_rebuild();
            tracing::warn!("scheduler mailbox full; it rebuilds from the store on its next resync");
        }
        Some(self.shared.store.len())
    }

    fn handle(&mut self, namespace: &Arc<str>, ev: watcher::Event<SlimJob>) -> Option<usize> {
        match ev {
            watcher::Event::Apply(job) | watcher::Event::InitApply(job) => self.apply(&job.0),
            watcher::Event::Delete(job) => {
                if let Some(n) = job.0.metadata.name.as_deref() {
                    self.delete(namespace, n);
                }
            }
            watcher::Event::Init => self.relist_started(namespace),
            watcher::Event::InitDone => return self.relist_done(namespace),
        }
        None
    }
}

/// Whether the stored record `kept` of a name stays when a Job of the same
/// name shows up in another namespace: the older one stays, and between
/// Jobs of the same second the one of the first namespace by name, so
/// every replica keeps the same one whatever order it heard them in.
fn keeps(kept: &JobRecord, other: &Job) -> bool {
    let created = other
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    let ns = other.metadata.namespace.as_deref().unwrap_or_default();
    (kept.created, &*kept.namespace) <= (created, ns)
}

/// What the Job watch works with (cloned for each supervised run).
#[derive(Clone)]
pub struct WatchParts {
    pub store: JobStore,
    pub scheduler: Mailbox<Scheduler>,
    /// Per-Job watchers start under it.
    pub runtime: Runtime,
    /// Set after each complete (re)list (`/ready`).
    pub synced: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// Where a permission denial of the watch is reported.
    pub gate: crate::cluster::gate::KubeGate,
    /// The watch's failures and silence (`/ready`).
    pub health: Arc<crate::cluster::metered::WatchHealth>,
    /// Where the per-Job watchers report state changes.
    pub reporting: Reporting,
    /// The namespaces the events come from, the service's own first.
    pub namespaces: Vec<String>,
}

/// Runs the one Job watch over `events` until the stream ends (the
/// supervisor then starts it again). Sets `synced` after each complete
/// (re)list.
pub async fn run(events: crate::cluster::metered::JobEvents, parts: WatchParts) {
    let WatchParts {
        store,
        scheduler,
        runtime,
        synced,
        metrics,
        gate,
        health,
        reporting,
        namespaces,
    } = parts;
    let mut stream = events;
    let stats = metrics.demux_stats();
    let mut demux = Demux::new(store, scheduler, runtime, metrics, stats)
        .with_reporting(reporting)
        .watching(namespaces.len());
    // The service's own namespace: its watch denied leaves the store
    // unready (nothing works without it); a tenant's does not.
    let home = namespaces.first().cloned().unwrap_or_default();
    while let Some((namespace, ev)) = stream.next().await {
        match ev {
            Ok(ev) => {
                health.heard(Some(&namespace));
                if let Some(jobs) = demux.handle(&namespace, ev) {
                    synced.store(true, Ordering::SeqCst);
                    tracing::info!(jobs, namespace = %namespace, "job watch synced");
                }
            }
            // A denial names the missing permission once (not every retry).
            Err(e) => {
                health.failed(&namespace);
                match crate::cluster::forbidden::watch_denial(&e) {
                    Some(message) => {
                        gate.forbidden(&message);
                        let tenant = *namespace != *home;
                        if let Some(jobs) = tenant.then(|| demux.denied(&namespace)).flatten() {
                            synced.store(true, Ordering::SeqCst);
                            tracing::info!(jobs, "job watch synced");
                        }
                    }
                    None => {
                        tracing::warn!(error = %e, namespace = %namespace, "job watch error; retrying with backoff")
                    }
                }
            }
        }
    }
    synced.store(false, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::KueueRecord;

    fn rec(state: JobState, stopping: bool) -> JobRecord {
        let job = Job {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("j".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut r = JobRecord::from_job(&job, None).expect("a named Job");
        r.state = state;
        r.kueue = Some(Box::new(KueueRecord {
            queue: Some("agents".into()),
            stopping,
            ..Default::default()
        }));
        r
    }

    fn kind(c: Option<KueueChange>) -> Option<&'static str> {
        c.map(|c| match c.change {
            Change::Admitted { .. } => "admitted",
            Change::Evicted { .. } => "evicted",
        })
    }

    #[test]
    fn an_eviction_is_told_once_however_kueue_shows_it() {
        use JobState::{Queued, Running};
        let mut f = KueueFollow::default();
        assert_eq!(
            kind(f.see(None, &rec(Queued, false))),
            None,
            "no previous state"
        );
        assert_eq!(
            kind(f.see(Some(Queued), &rec(Running, false))),
            Some("admitted")
        );
        // The stopping mark first, then the suspension: one eviction.
        assert_eq!(
            kind(f.see(Some(Running), &rec(Running, true))),
            Some("evicted")
        );
        assert_eq!(kind(f.see(Some(Running), &rec(Queued, true))), None);
        assert_eq!(kind(f.see(Some(Queued), &rec(Queued, false))), None);
        assert_eq!(
            kind(f.see(Some(Queued), &rec(Running, false))),
            Some("admitted")
        );
        // Suspended again without the mark: an eviction too.
        assert_eq!(
            kind(f.see(Some(Running), &rec(Queued, false))),
            Some("evicted")
        );
        // Not Kueue's: nothing.
        let mut plain = rec(Running, false);
        plain.kueue = None;
        assert_eq!(kind(f.see(Some(Queued), &plain)), None);
    }

    fn job(namespace: &str, created: &str) -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "gh-implement-x-1-abc", "namespace": namespace,
                "creationTimestamp": created}
        }))
        .expect("a Job")
    }

    #[test]
    fn of_a_name_in_two_namespaces_every_replica_keeps_the_same_one() {
        let older =
            JobRecord::from_job(&job("team-b", "2026-01-01T00:00:00Z"), None).expect("a record");
        // The older stays, whichever was heard first.
        assert!(keeps(&older, &job("team-a", "2026-01-01T00:00:05Z")));
        let newer =
            JobRecord::from_job(&job("team-a", "2026-01-01T00:00:05Z"), None).expect("a record");
        assert!(!keeps(&newer, &job("team-b", "2026-01-01T00:00:00Z")));
        // The same second: the first namespace by name.
        let b =
            JobRecord::from_job(&job("team-b", "2026-01-01T00:00:00Z"), None).expect("a record");
        assert!(!keeps(&b, &job("team-a", "2026-01-01T00:00:00Z")));
        let a =
            JobRecord::from_job(&job("team-a", "2026-01-01T00:00:00Z"), None).expect("a record");
        assert!(keeps(&a, &job("team-b", "2026-01-01T00:00:00Z")));
    }
}
