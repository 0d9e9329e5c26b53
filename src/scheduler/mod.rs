//! The scheduler actor: owns admission.
//!
//! It asks the Kube actor to persist each accepted Task as a *suspended* Job
//! and answers only then; it admits (unsuspends) queued Jobs by priority,
//! fairly between repositories (least recently admitted first), under
//! `MAX_CONCURRENT_JOBS`, the per-repository and per-source caps, the daily
//! budgets ([`budget`]) and one per concurrency key, and only while this
//! replica holds the scheduler Lease and the Job watch is synced. Every
//! replica keeps the queue and publishes why queued Jobs wait
//! (`job::waits`) on the store's board, for the routes and reports. Its
//! queue is derived state: rebuilt from the watch store's live Jobs on
//! start, on restart, on every resync and when leadership changes, so no
//! accepted work lives only here. A change a full mailbox could not carry
//! is marked dirty in the store and re-read here on the next message or
//! tick.
//!
//! With `SCHEDULER=kueue` Kueue admits instead ([`kueue`]): this actor
//! never unsuspends a Job; it keeps the queue for the wait reasons, counts
//! the budgets, hands Jobs a spent budget held back to Kueue when the
//! budget allows, and records what Kueue did to them.

pub mod budget;
pub mod error;
pub mod kueue;
pub mod queue;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

#[cfg(feature = "test-hooks")]
use crate::actors::Crash;
use crate::actors::Mailbox;
use crate::cluster::audit::{quoted, Audit};
use crate::cluster::build_job_in;
use crate::cluster::files;
use crate::cluster::jobspec::{ANNOTATION_CALLBACK_URL, ANNOTATION_REQUEST_HASH};
use crate::cluster::kube_actor::{AdmitJob, CreateJob, DeleteJob, GetJob, KubeActor, KubeError};
use crate::cluster::lease::Leader;
use crate::cluster::store::JobStore;
use crate::config::Config;
use crate::job::{JobExtras, JobState, WaitKind, Waits};
use crate::metrics::Metrics;
use crate::task::{Task, TaskSource};
use error::EnqueueError;
use queue::{Limits, Observed, Queue};

/// What became of an enqueued Task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new suspended Job now exists.
    Queued(String),
    /// The Job for this Task already existed.
    Duplicate(String),
    /// The Task was accepted before (the dedup record knows its key) and
    /// its Job, named, is deleted since.
    Gone(String),
}

impl Enqueued {
    /// The Job's name.
    pub fn job(&self) -> &str {
        match self {
            Enqueued::Queued(j) | Enqueued::Duplicate(j) | Enqueued::Gone(j) => j,
        }
    }
}

/// Mailbox capacity of the scheduler: watch notifications and nudges
/// waiting.
pub const MAILBOX: usize = 4096;

pub struct Scheduler {
    queue: Queue,
    kube: Mailbox<KubeActor>,
    config: Arc<Config>,
    jobs: JobStore,
    synced: bool,
    /// Leadership as the Lease loop keeps it (read at each admission).
    leader: Leader,
    /// Leadership as this actor last acted on it.
    leading: bool,
    metrics: Arc<Metrics>,
    /// Events on Jobs (Admitted here; Waiting and BudgetWait for the queue).
    audit: Audit,
    /// The wait reason each queued Job's last Event named.
    waits_told: std::collections::HashMap<Arc<str>, WaitKind>,
    /// The budgets spent now, and when they were last counted.
    spent: budget::Spent,
    counted_at: Option<Instant>,
    /// Added to the wall clock for the budget day (a test hook moves it).
    clock_offset: chrono::Duration,
    /// Kueue mode's bookkeeping.
    kueue_state: kueue::KueueState,
}

/// How stale the budgets' count may be at an admission.
const BUDGET_RECOUNT: Duration = Duration::from_secs(1);

impl Scheduler {
    pub fn new(
        kube: Mailbox<KubeActor>,
        config: Arc<Config>,
        jobs: JobStore,
        leader: Leader,
        metrics: Arc<Metrics>,
        audit: Audit,
    ) -> Self {
        if budget::any(&config.scheduler) && config.job_ttl_seconds < 86_400 {
            tracing::warn!(
                job_ttl_seconds = config.job_ttl_seconds,
                "daily budgets count the Jobs that still exist: finished Jobs deleted after JOB_TTL_SECONDS take their minutes and cost with them; set it to 86400 or more"
            );
        }
        metrics.set_budgets_exhausted(0, 0);
        let limits = Limits {
            max_running: config.max_concurrent_jobs as usize,
            per_repository: config.scheduler.per_repository,
            per_source: config
                .scheduler
                .per_source
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        };
        Scheduler {
            queue: Queue::with_limits(limits),
            kube,
            config,
            jobs,
            synced: false,
            leader,
            leading: false,
            metrics,
            audit,
            waits_told: Default::default(),
            spent: budget::Spent::default(),
            counted_at: None,
            clock_offset: chrono::Duration::zero(),
            kueue_state: Default::default(),
        }
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.clock_offset
    }

    /// Counts today's use from the store's Jobs (when any budget is set and
    /// the last count is older than [`BUDGET_RECOUNT`], or `force`) and
    /// holds back the repositories and sources that spent theirs.
    fn count_budgets(&mut self, force: bool) {
        let c = &self.config.scheduler;
        if !budget::any(c) {
            return;
        }
        if !force
            && self
                .counted_at
                .is_some_and(|t| t.elapsed() < BUDGET_RECOUNT)
        {
            return;
        }
        self.counted_at = Some(Instant::now());
        let now = self.now();
        let (day_start, _) = budget::day_of(now);
        // Jobs that ran today (or run): a finished Job of an earlier day is
        // skipped without a clone.
        let started = self
            .jobs
            .filtered(|r| r.started_at.is_some() && r.completed_at.is_none_or(|t| t >= day_start));
        let usage = budget::usage(&started, now, c.usd_per_repository > 0.0);
        let spent = budget::spent(&usage, c);
        let (repos, sources) = (spent.repository_keys(), spent.source_keys());
        if repos != self.spent.repository_keys() || sources != self.spent.source_keys() {
            tracing::info!(
                repositories = ?spent.repositories.keys().collect::<Vec<_>>(),
                sources = ?spent.sources.keys().collect::<Vec<_>>(),
                "daily budgets spent"
            );
            self.queue.set_spent(repos, sources);
        }
        self.spent = spent;
        self.metrics
            .set_budgets_exhausted(self.spent.repositories.len(), self.spent.sources.len());
    }

    /// What holds queued Jobs back now, for the routes and reports.
    fn waits(&self) -> Waits {
        let o = self.queue.occupancy();
        let l = self.queue.limits();
        Waits {
            published: true,
            max_running: l.max_running,
            running: o.running,
            per_repository: l.per_repository,
            repositories: o.repositories,
            per_source: self.config.scheduler.per_source.clone(),
            sources: o.sources,
            keys: o.keys,
            spent_repositories: self.spent.repositories.clone(),
            spent_sources: self.spent.sources.clone(),
            until: budget::until_text(self.now()),
            kueue: self.kueue().is_some(),
        }
    }

    /// Counts the queued Jobs held back per reason (O(queued): on the
    /// resync tick only); on the leader, a Job whose reason changed gets a
    /// `Waiting` (or `BudgetWait`) Event, once per change.
    fn count_waiting(&mut self) {
        let waits = self.jobs.waits().get();
        let mut counts: std::collections::HashMap<WaitKind, usize> = Default::default();
        let mut told: std::collections::HashMap<Arc<str>, WaitKind> = Default::default();
        for r in self.jobs.in_state(JobState::Queued) {
            if let Some((kind, why)) = waits.reason(&r) {
                *counts.entry(kind).or_default() += 1;
                // (Kueue's queue is said once, in the Accepted Event.)
                let said = self.waits_told.get(&r.name) == Some(&kind);
                if self.leading && !said && kind != WaitKind::Kueue {
                    // The audit trail's own rate limit bounds a storm.
                    if kind == WaitKind::Budget {
                        self.audit.budget_wait(&r.name, &why);
                    } else {
                        self.audit.waiting(&r.name, &why);
                    }
                }
                told.insert(r.name.clone(), kind);
            }
        }
        self.waits_told = told;
        let all: Vec<(&str, usize)> = WaitKind::ALL
            .iter()
            .map(|k| (k.as_str(), counts.get(k).copied().unwrap_or(0)))
            .collect();
        self.metrics.set_waiting(&all);
    }

    /// Follows the Lease: a replica that just became leader starts from the
    /// store, not from what it saw as a follower. Returns whether this
    /// replica leads now.
    fn sync_leadership(&mut self) -> bool {
        let now = self.leader.is_leader();
        if now != self.leading {
            tracing::info!(leader = now, "scheduler leadership changed");
            self.leading = now;
            if now && self.synced {
                self.rebuild(true);
            }
        }
        now
    }

    /// Rebuilds the queue from the watch's store (the source of truth).
    ///
    /// With `keep_in_flight`, admissions this actor has requested but the
    /// store does not show yet stay counted (their answers are still on the
    /// way); otherwise a Job whose unsuspension was in flight would look
    /// queued, and another Job could be admitted next to it, over the limit.
    fn rebuild(&mut self, keep_in_flight: bool) {
        let in_flight = if keep_in_flight {
            self.queue.admitting()
        } else {
            Vec::new()
        };
        self.queue.clear();
        self.jobs.take_dirty();
        for r in self.jobs.live() {
            self.queue.observe(Observed::of(&r));
        }
        for name in &in_flight {
            self.queue.keep_admitting(name);
        }
        self.publish();
    }

    /// Re-reads the Jobs whose notification a full mailbox refused.
    fn resync_dirty(&mut self) {
        for name in self.jobs.take_dirty() {
            match self.jobs.get(&name) {
                Some(r) => self.queue.observe(Observed::of(&r)),
                None => self.queue.forget(&name),
            }
        }
    }

    /// The watch store has listed everything: a `Synced` message a full
    /// mailbox refused is picked up here.
    fn catch_up(&mut self) {
        let requested = self.jobs.take_rebuild();
        if (requested || !self.synced) && self.jobs.is_ready() {
            self.synced = true;
            self.rebuild(true);
        }
        self.resync_dirty();
    }

    fn publish(&self) {
        self.metrics
            .set_jobs(self.queue.queued(), self.queue.running());
        self.jobs.waits().set(self.waits());
    }

    /// Cancelled Jobs stay suspended, so Kubernetes' TTL never removes them:
    /// the leader deletes them `JOB_TTL_SECONDS` after they were cancelled.
    fn collect_cancelled(&mut self) {
        if !(self.synced && self.sync_leadership()) {
            return;
        }
        // In Kueue mode a cancel deletes the Job at once: one still here
        // is one whose delete failed, deleted now.
        let keep = match self.kueue() {
            Some(_) => 0,
            None => i64::from(self.config.job_ttl_seconds),
        };
        let cutoff = chrono::Utc::now().timestamp() - keep;
        for name in self.jobs.cancelled_before(cutoff) {
            tracing::info!(job = %name, "deleting a cancelled job past its TTL");
            // A full Kube mailbox skips it; the next sweep tries again.
            if let Err(e) = self.kube.tell(DeleteJob {
                namespace: self.jobs.get(&name).map(|r| r.namespace.to_string()),
                name: name.to_string(),
                deadline: Instant::now() + Duration::from_secs(30),
            }) {
                tracing::warn!(error = %e, "deleting a cancelled job postponed");
                break;
            }
        }
    }

    fn admit(&mut self, ctx: &mut Context<Self>) {
        if !(self.synced && self.sync_leadership()) {
            // Followers keep the same queue: their routes show the reasons.
            self.publish();
            return;
        }
        // No admission call outlives this replica's leadership.
        let Some(lead_until) = self.leader.valid_until() else {
            self.publish();
            return;
        };
        self.count_budgets(false);
        if self.kueue().is_some() {
            // Kueue admits: nothing is unsuspended here.
            self.publish();
            return;
        }
        for name in self.queue.take_admissions() {
            self.metrics.admitted();
            tracing::info!(job = %name, "admitting queued job");
            let msg = AdmitJob {
                namespace: self.jobs.get(&name).map(|r| r.namespace.to_string()),
                name: name.clone(),
                deadline: lead_until.min(Instant::now() + Duration::from_secs(30)),
            };
            self.kube
                .ask(msg)
                .into_actor(self)
                .map(move |r, this, ctx| {
                    let ok = match r {
                        Ok(Ok(())) => {
                            this.audit.admitted(&name);
                            true
                        }
                        Ok(Err(KubeError::NotFound)) => {
                            this.queue.forget(&name);
                            true
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(job = %name, error = %e, "admission failed; will retry");
                            false
                        }
                        Err(e) => {
                            tracing::warn!(job = %name, error = %e, "admission not sent; will retry");
                            false
                        }
                    };
                    if !ok {
                        this.queue.admission_failed(&name);
                        ctx.notify_later(Admit, Duration::from_secs(1));
                    }
                    this.publish();
                })
                .spawn(ctx);
        }
        self.publish();
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Also after a restart: pick leadership up from the Lease loop.
        self.admit(ctx);
        // A periodic nudge covers anything a lost message would leave behind.
        let periods = &self.config.scheduler;
        ctx.run_interval(periods.resync, |this, ctx| {
            this.catch_up();
            if this.synced {
                this.count_budgets(true);
            }
            this.admit(ctx);
            this.hand_over_held(ctx);
            this.count_waiting();
        });
        ctx.run_interval(periods.cancelled_sweep, |this, _| this.collect_cancelled());
    }
}

impl Supervised for Scheduler {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(
            actor = "scheduler",
            "actor restarting; rebuilding the queue from the Job store"
        );
        self.synced = false;
        // Leadership is picked up again from the Lease loop's state.
        self.leading = false;
        // The Job store is still synced if the watch is; rebuild from it.
        if self.jobs.is_ready() {
            self.synced = true;
            // The old context's admission callbacks are gone: start clean.
            self.rebuild(false);
        }
    }
}

/// A Job's state changed (from its watcher).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Observe(pub Observed);

/// A Job is gone from the API server.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget(pub Arc<str>);

/// The Job watch (re)listed everything: rebuild the queue from the store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Synced;

/// This replica gained (true) or lost (false) the scheduler Lease. A nudge:
/// the scheduler reads leadership from the Lease loop's shared state, so a
/// message that does not change leadership changes nothing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leadership(pub bool);

/// How many Jobs the queue holds: (queued, running or being admitted). For
/// tests, through the raw address (only with the `test-hooks` feature).
#[cfg(feature = "test-hooks")]
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub struct Counts;

#[cfg(feature = "test-hooks")]
impl Handler<Counts> for Scheduler {
    type Result = MessageResult<Counts>;
    fn handle(&mut self, _: Counts, _: &mut Context<Self>) -> Self::Result {
        // Only reads: what a lost notification left behind shows until the
        // next resync, as it would to the admission logic.
        MessageResult((self.queue.queued(), self.queue.running()))
    }
}

/// Moves the scheduler's budget clock (the UTC day budgets count in) by
/// this much past the wall clock, and recounts: a test reaches "the next
/// day" without waiting for it. Only with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShiftBudgetClock(pub chrono::Duration);

#[cfg(feature = "test-hooks")]
impl Handler<ShiftBudgetClock> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: ShiftBudgetClock, ctx: &mut Context<Self>) {
        self.clock_offset = msg.0;
        self.count_budgets(true);
        self.admit(ctx);
        self.hand_over_held(ctx);
    }
}

/// Re-read the Jobs marked dirty and try to admit queued Jobs now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Admit;

/// Persists Tasks as suspended Jobs, apart from the scheduler actor: a
/// create takes no scheduler mailbox slot and never waits behind admission
/// work (the scheduler hears of the new Job from the watch, like of any
/// other). Cheap to clone; each source actor holds one.
#[derive(Clone)]
pub struct Persister {
    kube: Mailbox<KubeActor>,
    config: Arc<Config>,
    audit: Audit,
    /// Which budgets are spent (Kueue mode holds their new Jobs back).
    waits: Option<crate::job::WaitBoard>,
    /// The watch store: a task's Job seen in another namespace.
    store: JobStore,
}

impl Persister {
    pub fn new(
        kube: Mailbox<KubeActor>,
        config: Arc<Config>,
        audit: Audit,
        store: JobStore,
    ) -> Self {
        Persister {
            kube,
            config,
            audit,
            waits: None,
            store,
        }
    }

    /// Reads which budgets are spent from `waits` (the scheduler publishes
    /// them), for Kueue mode's holding back.
    pub fn with_waits(mut self, waits: crate::job::WaitBoard) -> Self {
        self.waits = Some(waits);
        self
    }

    /// `Accepted` on the Job just created for `task` (where it came from:
    /// source, event, delivery or idempotency key, sender or token hash,
    /// rule), and `Retried` when it is a retry.
    fn record_accepted(&self, task: &Task, job: &k8s_openapi::api::batch::v1::Job, placed: &str) {
        let label = |k: &str| task.labels.get(k).map(String::as_str);
        let mut m = format!("accepted from {}", task.source.as_str());
        if let (Some(e), Some(a)) = (label("event"), label("action")) {
            m.push_str(&format!(" ({} {})", quoted(e), quoted(a)));
        }
        if let Some(d) = &task.delivery_id {
            // An API task's is its Idempotency-Key (or PM task id).
            let what = match task.source {
                TaskSource::Github => "delivery",
                _ => "key",
            };
            m.push_str(&format!(", {what} {}", quoted(d)));
        }
        if let Some(by) = &task.requested_by {
            m.push_str(&format!(", by {}", quoted(by)));
        }
        if let Some(r) = label("rule") {
            m.push_str(&format!(", rule {}", quoted(r)));
        }
        m.push_str(placed);
        self.audit.accepted(job, &m);
        if let Some(old) = label("retry_of") {
            let by = task.requested_by.as_deref().unwrap_or("someone");
            let by = format!("{} (/agent retry)", quoted(by));
            self.audit.retried(job, old, &by);
        }
    }

    /// Builds `task`'s Job (with `extras`) and creates it, suspended, in
    /// its namespace before `deadline`: `Queued` once the API server has
    /// it, `Duplicate` when it existed (`KeyReused` when made from another
    /// request under the same `Idempotency-Key`) — in that namespace, or
    /// in another one the watch store shows it in (the task was accepted
    /// while its rule named another namespace: one task, one Job).
    pub async fn persist(
        &self,
        task: &Task,
        extras: JobExtras,
        deadline: Instant,
    ) -> Result<Enqueued, EnqueueError> {
        let namespace = extras
            .namespace
            .as_deref()
            .unwrap_or(&self.config.namespace);
        if let Some(r) = self.store.get(&task.job_name()) {
            if &*r.namespace != namespace {
                tracing::info!(job = %r.name, namespace = %r.namespace, wanted = namespace,
                    "the task's Job exists in another namespace: a duplicate");
                return match extras.request_hash {
                    None => Ok(Enqueued::Duplicate(r.name.to_string())),
                    Some(h) => {
                        let at = Some(r.namespace.to_string());
                        same_request(&self.kube, r.name.to_string(), at, &h, deadline).await
                    }
                };
            }
        }
        let mut job = build_job_in(task, &self.config, namespace, extras.secret.as_deref())
            .map_err(|e| EnqueueError::Invalid(e.to_string()))?;
        if !extras.files.is_empty() {
            files::attach(&mut job, &extras.files);
        }
        if let (Some(t), Some(spec)) = (extras.timeout_seconds, job.spec.as_mut()) {
            spec.active_deadline_seconds = Some(t);
        }
        if let Some(h) = &extras.request_hash {
            job.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ANNOTATION_REQUEST_HASH.to_string(), h.clone());
        }
        if let Some(u) = &extras.callback_url {
            job.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ANNOTATION_CALLBACK_URL.to_string(), u.clone());
        }
        let placed = match &self.config.scheduler.kueue {
            Some(k) => self.place_in_kueue(k, task, &mut job),
            None => String::new(),
        };
        let name = job.metadata.name.clone().unwrap_or_default();
        let sent = self
            .kube
            .ask(CreateJob {
                job: Box::new(job),
                files: extras.files,
                deadline,
            })
            .await?;
        match sent {
            Ok(created) => {
                self.record_accepted(task, &created, &placed);
                Ok(Enqueued::Queued(name))
            }
            Err(KubeError::AlreadyExists) => match extras.request_hash {
                None => Ok(Enqueued::Duplicate(name)),
                Some(h) => {
                    let at = Some(namespace.to_string());
                    same_request(&self.kube, name, at, &h, deadline).await
                }
            },
            Err(e) => Err(e.into()),
        }
    }
}

impl Persister {
    /// Whether Job `name` exists on the API server in `namespace` (`None`:
    /// the service's own; one GET; for a Task known as a duplicate whose
    /// Job the watch store does not show).
    pub async fn exists(
        &self,
        name: &str,
        namespace: Option<&str>,
        deadline: Instant,
    ) -> Result<bool, EnqueueError> {
        let got = self
            .kube
            .ask(GetJob {
                name: name.to_string(),
                namespace: namespace.map(str::to_string),
                deadline,
                read_share: false,
            })
            .await?
            .map_err(|e| EnqueueError::Unavailable(e.to_string()))?;
        Ok(got.is_some())
    }
}

/// A duplicate of a task made under an `Idempotency-Key`: `Duplicate` if
/// the existing Job was made from the same request (or carries no hash:
/// made before hashes were kept, nothing to compare), `KeyReused` if not.
/// Reads the Job from the API server (the authoritative copy; this runs
/// only on a `409`, so it costs one GET per retried key).
async fn same_request(
    kube: &Mailbox<KubeActor>,
    name: String,
    namespace: Option<String>,
    hash: &str,
    deadline: Instant,
) -> Result<Enqueued, EnqueueError> {
    let got = kube
        .ask(GetJob {
            name: name.clone(),
            namespace,
            deadline,
            read_share: false,
        })
        .await?
        // Any failure to read it back is temporary here: the sender retries.
        .map_err(|e| EnqueueError::Unavailable(e.to_string()))?;
    let theirs = got.as_ref().and_then(|j| {
        j.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REQUEST_HASH))
    });
    match theirs {
        Some(t) if t != hash => Err(EnqueueError::KeyReused(name)),
        _ => Ok(Enqueued::Duplicate(name)),
    }
}

impl Handler<Observe> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: Observe, ctx: &mut Context<Self>) {
        let held = self.kueue().is_some() && msg.0.state == JobState::Queued;
        let name = msg.0.name.clone();
        self.queue.observe(msg.0);
        self.resync_dirty();
        self.admit(ctx);
        if held && self.synced && self.leading {
            if let Some(r) = self.jobs.get(&name) {
                self.hand_over(&r, ctx);
            }
        }
    }
}

impl Handler<Forget> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: Forget, ctx: &mut Context<Self>) {
        self.queue.forget(&msg.0);
        self.resync_dirty();
        self.admit(ctx);
    }
}

impl Handler<Synced> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: Synced, ctx: &mut Context<Self>) {
        self.synced = true;
        self.rebuild(true);
        self.admit(ctx);
    }
}

impl Handler<Leadership> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: Leadership, ctx: &mut Context<Self>) {
        let before = self.leading;
        if self.sync_leadership() != before {
            self.admit(ctx);
        }
    }
}

impl Handler<Admit> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: Admit, ctx: &mut Context<Self>) {
        self.resync_dirty();
        self.admit(ctx);
    }
}

#[cfg(feature = "test-hooks")]
impl Handler<Crash> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("fault injection: the scheduler was told to crash");
    }
}

crate::tracked_handlers!(Scheduler => Observe, Forget, Synced, Leadership, Admit);
#[cfg(feature = "test-hooks")]
crate::tracked_handlers!(Scheduler => Crash, ShiftBudgetClock);
