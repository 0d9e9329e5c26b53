//! The source actor (one supervised instance per source): dedup, rate limits,
//! then the Job's create (the scheduler hears of it from the watch). Its
//! handler returns a future, so one slow API call
//! never holds up the next event.
//!
//! ```text
//!  Submit(task) ─▶ dedup cache hit? ─▶ Duplicate (KeyReused if its request hash differs)
//!               └▶ same key in flight? ─▶ waits for it ─▶ Duplicate | its error
//!                                         (KeyReused at once if its request hash differs)
//!               └▶ dedup record hit? ─▶ Duplicate | Gone (its Job deleted)
//!               └▶ rate limit ─▶ RateLimited(retry after)
//!               └▶ Persister ─▶ Kube actor ─▶ Queued(job) | Duplicate(job, from 409)
//! ```
//!
//! A redelivery never spends the rate limit: the dedup cache, the
//! in-flight keys and the dedup record are checked first. A key enters the
//! dedup cache and the dedup record ([`crate::cluster::dedup`]) only once
//! its task is fully persisted (Job and files), so "duplicate" always names
//! a complete task. A known key whose Job the watch store does not show is
//! looked up on the API server (one GET): absent, the answer is `Gone` (the
//! Job ran and was deleted); a failed lookup still answers `Duplicate`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture, Shared};

#[cfg(feature = "test-hooks")]
use crate::actors::Crash;
use crate::cluster::dedup::DedupRecord;
use crate::cluster::store::JobStore;
use crate::job::JobExtras;
use crate::scheduler::error::EnqueueError;
use crate::scheduler::{Enqueued, Persister};
use crate::sources::intake::{DedupCache, Limited, RateLimits};
use crate::task::{Task, TaskSource};

/// Asks for a Task to become a Job; answers once the Job exists.
#[derive(Message)]
#[rtype(result = "Result<Enqueued, SubmitError>")]
pub struct Submit {
    pub task: Box<Task>,
    pub extras: JobExtras,
    /// The caller's budget (GitHub waits 10 s).
    pub deadline: Instant,
}

/// Why a Task was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    #[error("rate limited per {}", .0.scope)]
    RateLimited(Limited),
    /// Not persisted (or a reused `Idempotency-Key`), as the scheduler
    /// or this actor's dedup cache found.
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// True when two request hashes are known and differ (a Job made before
/// hashes were kept has none: nothing to compare).
fn differs(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a != b)
}

/// The answer of a submission in flight, shared with redeliveries of it.
type InFlight = Shared<LocalBoxFuture<'static, Result<Enqueued, SubmitError>>>;

/// Dedup keys being persisted right now: each request's hash and answer.
type InFlightKeys = Rc<RefCell<HashMap<String, (Option<String>, InFlight)>>>;

pub struct SourceActor {
    source: TaskSource,
    /// Dedup keys being persisted right now.
    in_flight: InFlightKeys,
    dedup: DedupCache,
    /// Keys accepted within the retention, shared by the replicas.
    record: DedupRecord,
    limits: Arc<RateLimits>,
    persister: Persister,
    /// The watch store: whether a known Task's Job still exists.
    store: JobStore,
}

impl SourceActor {
    pub fn new(
        source: TaskSource,
        dedup: DedupCache,
        record: DedupRecord,
        limits: Arc<RateLimits>,
        persister: Persister,
        store: JobStore,
    ) -> Self {
        SourceActor {
            source,
            in_flight: Rc::default(),
            dedup,
            record,
            limits,
            persister,
            store,
        }
    }

    /// The answer for a Task accepted before as Job `job`: `Duplicate`
    /// when the store shows the Job or the API server has it in
    /// `namespace` (or cannot say), `Gone` when the API server answers it
    /// is absent.
    fn known(
        &self,
        job: String,
        namespace: Option<String>,
        deadline: Instant,
    ) -> LocalBoxFuture<'static, Enqueued> {
        if self.store.get(&job).is_some() {
            return Box::pin(async move { Enqueued::Duplicate(job) });
        }
        let persister = self.persister.clone();
        Box::pin(async move {
            match persister.exists(&job, namespace.as_deref(), deadline).await {
                Ok(false) => Enqueued::Gone(job),
                Ok(true) => Enqueued::Duplicate(job),
                Err(e) => {
                    tracing::debug!(job = %job, error = %e, "could not tell whether a known task's job still exists");
                    Enqueued::Duplicate(job)
                }
            }
        })
    }
}

impl Actor for SourceActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let limits = self.limits.clone();
        ctx.run_interval(std::time::Duration::from_secs(60), move |_, _| {
            limits.shrink()
        });
    }
}

impl Supervised for SourceActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The dedup cache and limits live outside the actor and survive.
        tracing::warn!(actor = self.source.as_str(), "source actor restarting");
    }
}

impl Handler<Submit> for SourceActor {
    type Result = ResponseFuture<Result<Enqueued, SubmitError>>;

    fn handle(&mut self, msg: Submit, _: &mut Context<Self>) -> Self::Result {
        let key = msg.task.dedup_key.clone();
        let hash = msg.extras.request_hash.clone();
        let now = Instant::now();
        if let Some(c) = self.dedup.get(&key, now) {
            if differs(hash.as_deref(), c.request_hash.as_deref()) {
                return Box::pin(async move { Err(EnqueueError::KeyReused(c.job).into()) });
            }
            let known = self.known(c.job, msg.extras.namespace.clone(), msg.deadline);
            return Box::pin(async move { Ok(known.await) });
        }
        let in_flight = self.in_flight.borrow().get(&key).cloned();
        if let Some((first_hash, first)) = in_flight {
            if differs(hash.as_deref(), first_hash.as_deref()) {
                let job = msg.task.job_name();
                return Box::pin(async move { Err(EnqueueError::KeyReused(job).into()) });
            }
            // A redelivery while the first is being persisted: its answer,
            // as a duplicate once the first succeeded.
            return Box::pin(async move {
                first.await.map(|e| match e {
                    Enqueued::Queued(job) | Enqueued::Duplicate(job) => Enqueued::Duplicate(job),
                    gone @ Enqueued::Gone(_) => gone,
                })
            });
        }
        // Accepted within the retention (by any replica, before any
        // restart) and its Job not in the store: deleted since (or not
        // seen by the watch yet). The API server says which; a Job that
        // exists goes the usual way (its `409` answers, request hashes
        // compared).
        let job = msg.task.job_name();
        let maybe_gone = self.store.get(&job).is_none()
            && self.record.contains(&key, chrono::Utc::now().timestamp());
        // Grafana is one authenticated sender for every alert: its alerts
        // share no sender bucket (the per-repository limit still applies).
        let sender = match self.source {
            TaskSource::Grafana => None,
            _ => msg.task.requested_by.clone(),
        };
        // Grafana alerts also share a bucket per alert rule (alert storms).
        let rule = match self.source {
            TaskSource::Grafana => msg
                .task
                .labels
                .get(crate::sources::grafana::RULE_LABEL)
                .cloned(),
            _ => None,
        };
        let (limits, repo) = (self.limits.clone(), msg.task.repository.clone());
        let check = move || limits.check(repo.as_deref(), sender.as_deref(), rule.as_deref());
        if !maybe_gone {
            if let Err(l) = check() {
                return Box::pin(async move { Err(SubmitError::RateLimited(l)) });
            }
        }
        let persister = self.persister.clone();
        let dedup = (self.dedup.clone(), self.record.clone());
        let dedup_key = key.clone();
        let in_flight = self.in_flight.clone();
        let work = async move {
            let r = async {
                if maybe_gone {
                    // A redelivery of a task whose Job is deleted spends
                    // no rate limit either.
                    let ns = msg.extras.namespace.as_deref();
                    if let Ok(false) = persister.exists(&job, ns, msg.deadline).await {
                        return Ok(Enqueued::Gone(job));
                    }
                    check().map_err(SubmitError::RateLimited)?;
                }
                persist(persister, dedup, &dedup_key, msg).await
            }
            .await;
            // Whoever drives the shared future to the end clears the key.
            in_flight.borrow_mut().remove(&dedup_key);
            r
        }
        .boxed_local()
        .shared();
        self.in_flight
            .borrow_mut()
            .insert(key, (hash, work.clone()));
        Box::pin(work)
    }
}

/// Persists the Task's Job; remembers the key once it is persisted (in
/// this replica's dedup cache, and in the dedup record, written to the API
/// server within a second or so).
async fn persist(
    persister: Persister,
    (dedup, record): (DedupCache, DedupRecord),
    dedup_key: &str,
    msg: Submit,
) -> Result<Enqueued, SubmitError> {
    let hash = msg.extras.request_hash.clone();
    let e = persister
        .persist(&msg.task, msg.extras, msg.deadline)
        .await?;
    dedup.insert(dedup_key, e.job(), hash.as_deref(), Instant::now());
    record.record(dedup_key, chrono::Utc::now().timestamp());
    Ok(e)
}

#[cfg(feature = "test-hooks")]
impl Handler<Crash> for SourceActor {
    type Result = ();
    fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("fault injection: a source actor was told to crash");
    }
}

crate::tracked_handlers!(SourceActor => Submit);
#[cfg(feature = "test-hooks")]
crate::tracked_handlers!(SourceActor => Crash);
