//! Job watching: ONE watch over all managed Jobs (`kube::runtime::watcher`
//! feeding a reflector store), demultiplexed to one [`JobWatcher`] actor per
//! live Job. A watcher follows its Job's state changes, reports them to the
//! scheduler and ends with its Job.
//!
//! ```text
//!  watch(managed-by=orchestrator) ─▶ reflector store ─▶ demux ─┬▶ JobWatcher(a) ─┐
//!                                                              ├▶ JobWatcher(b) ─┼▶ Scheduler
//!                                                              └▶ …              ─┘
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use crate::cluster::jobspec::MANAGED_SELECTOR;
use crate::cluster::state::{job_state, JobState};
use crate::metrics::Metrics;
use crate::scheduler::{observe_job, Forget, Observe, Scheduler, Synced};

/// Follows one Job until it finishes or disappears.
pub struct JobWatcher {
    name: String,
    state: Option<JobState>,
    since: Instant,
    scheduler: Addr<Scheduler>,
    metrics: Arc<Metrics>,
}

impl Actor for JobWatcher {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.metrics.watchers().inc();
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.metrics.watchers().dec();
    }
}

/// The Job's latest state from the watch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobUpdate(pub Arc<Job>);

/// The Job was deleted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobGone;

impl Handler<JobUpdate> for JobWatcher {
    type Result = ();
    fn handle(&mut self, msg: JobUpdate, ctx: &mut Context<Self>) {
        let state = job_state(&msg.0);
        if self.state != Some(state) {
            let waited = self.since.elapsed();
            tracing::info!(job = %self.name, state = state.as_str(), previous = self.state.map(JobState::as_str), after_ms = waited.as_millis() as u64, "job state");
            self.state = Some(state);
            self.since = Instant::now();
        }
        if let Some(o) = observe_job(&msg.0) {
            self.scheduler.do_send(Observe(o));
        }
        if state.is_finished() {
            ctx.stop();
        }
    }
}

impl Handler<JobGone> for JobWatcher {
    type Result = ();
    fn handle(&mut self, _: JobGone, ctx: &mut Context<Self>) {
        tracing::info!(job = %self.name, "job deleted");
        self.scheduler.do_send(Forget(self.name.clone()));
        ctx.stop();
    }
}

/// Routes watch events to per-Job watcher actors.
struct Demux {
    watchers: HashMap<String, Addr<JobWatcher>>,
    scheduler: Addr<Scheduler>,
    metrics: Arc<Metrics>,
}

impl Demux {
    fn apply(&mut self, job: Job) {
        let Some(name) = job.metadata.name.clone() else {
            return;
        };
        let finished = job_state(&job).is_finished();
        let job = Arc::new(job);
        if let Some(w) = self.watchers.get(&name) {
            if w.connected() {
                if finished {
                    self.metrics.service().finished(&job);
                }
                w.do_send(JobUpdate(job));
                if finished {
                    self.watchers.remove(&name);
                }
                return;
            }
            self.watchers.remove(&name);
        }
        if finished {
            // Nothing to follow; the scheduler still needs to know.
            if let Some(o) = observe_job(&job) {
                self.scheduler.do_send(Observe(o));
            }
            return;
        }
        let w = JobWatcher {
            name: name.clone(),
            state: None,
            since: Instant::now(),
            scheduler: self.scheduler.clone(),
            metrics: self.metrics.clone(),
        }
        .start();
        w.do_send(JobUpdate(job));
        self.watchers.insert(name, w);
    }

    fn delete(&mut self, job: &Job) {
        let Some(name) = job.metadata.name.as_deref() else {
            return;
        };
        match self.watchers.remove(name) {
            Some(w) if w.connected() => w.do_send(JobGone),
            _ => self.scheduler.do_send(Forget(name.to_string())),
        }
    }
}

/// Runs the one Job watch until the process stops. Sets `synced` after each
/// complete (re)list. Returns only if the watch stream ends, which the
/// caller treats as fatal.
pub async fn run(
    api: Api<Job>,
    writer: Writer<Job>,
    scheduler: Addr<Scheduler>,
    synced: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    let cfg = watcher::Config::default().labels(MANAGED_SELECTOR);
    let stream = reflector::reflector(writer, watcher(api, cfg)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut demux = Demux {
        watchers: HashMap::new(),
        scheduler: scheduler.clone(),
        metrics,
    };
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Apply(job)) => demux.apply(job),
            Ok(watcher::Event::Delete(job)) => demux.delete(&job),
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(job)) => {
                if let Some(n) = &job.metadata.name {
                    listed.insert(n.clone());
                }
                demux.apply(job);
            }
            Ok(watcher::Event::InitDone) => {
                // Jobs deleted while the watch was down end their watchers.
                let gone: Vec<String> = demux
                    .watchers
                    .keys()
                    .filter(|n| !listed.contains(*n))
                    .cloned()
                    .collect();
                for n in gone {
                    if let Some(w) = demux.watchers.remove(&n) {
                        w.do_send(JobGone);
                    }
                }
                synced.store(true, Ordering::SeqCst);
                scheduler.do_send(Synced);
                tracing::info!(jobs = listed.len(), "job watch synced");
            }
            Err(e) => {
                tracing::warn!(error = %e, "job watch error; retrying with backoff");
            }
        }
    }
    synced.store(false, Ordering::SeqCst);
}
