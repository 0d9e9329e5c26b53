//! The scheduler in Kueue mode (`SCHEDULER=kueue`): Kueue admits, this
//! service never does.
//!
//! ```text
//!  task ─▶ Persister ─ budget left ─▶ Job + kueue.x-k8s.io/queue-name ──▶ Kueue admits (unsuspends)
//!                    └ budget spent ─▶ Job without it (held) ─ budget day ends ─▶ HandToKueue ─┘
//!  watcher: queued → running: KueueChange::Admitted   (Event Admitted, metric)
//!           running → queued: KueueChange::Evicted    (Event Evicted, metric, eviction count on the Job)
//! ```
//!
//! What stays: the queue is still kept from the watch (counts, the wait
//! reasons routes and reports show, `orchestrator_jobs`), the daily budgets
//! are still counted, and a task whose budget is spent is *held*: created
//! suspended without Kueue's queue label, so Kueue does not see it, and
//! handed to Kueue (its labels added, `spec.suspend` untouched) by the
//! Lease holder once the budget day ends. What goes: `MAX_CONCURRENT_JOBS`,
//! the per-repository and per-source caps, the fair order and one running
//! Job per issue — Kueue's quotas and priorities decide instead. A Job
//! already handed to Kueue is not taken back when a budget runs out (as a
//! running Job is not stopped in built-in mode).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{Persister, Scheduler};
use crate::cluster::kube_actor::{AnnotateJob, HandToKueue};
use crate::cluster::kueue::{Placement, ANNOTATION_EVICTIONS};
use crate::config::kueue::KueueSettings;
use crate::job::{JobRecord, JobState};
use crate::task::Task;

/// What the scheduler keeps for Kueue mode.
#[derive(Default)]
pub struct KueueState {
    /// Held Jobs whose hand-over to Kueue is in flight.
    handing: std::collections::HashSet<Arc<str>>,
}

/// A Job's watcher saw Kueue act on it (sent to the scheduler, which
/// records it on the Lease holder).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct KueueChange {
    pub name: Arc<str>,
    pub uid: Option<Box<str>>,
    pub change: Change,
}

/// What Kueue did.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Admitted (unsuspended) the Job, from this LocalQueue; it had been
    /// queued this long (seconds, since it was created).
    Admitted { queue: String, waited: f64 },
    /// Evicted the running Job (suspended it again); it queues anew. The
    /// evictions counted on the Job before this one.
    Evicted { queue: String, before: u32 },
}

/// Refuses to start when `KUEUE_QUEUES` names a rule no rule has (a typo
/// would put that rule's Jobs in the default queue unnoticed); logs the
/// mode.
pub fn check_rules(
    config: &crate::config::Config,
    rules: &crate::rules::Rules,
) -> Result<(), crate::config::ConfigError> {
    let Some(k) = &config.scheduler.kueue else {
        return Ok(());
    };
    if let Some(unknown) = k.rules().find(|r| rules.get(r).is_none()) {
        let known: Vec<&str> = rules.rules().iter().map(|r| r.name.as_str()).collect();
        return Err(crate::config::ConfigError {
            var: "KUEUE_QUEUES",
            message: format!(
                "names the rule {unknown:?}, which no routing rule has (rules: {})",
                known.join(", ")
            ),
        });
    }
    tracing::info!(
        queue = %k.default_queue,
        queues = k.queues.len(),
        priority_classes = k.priority_classes.len(),
        "SCHEDULER=kueue: Kueue admits the Jobs; MAX_CONCURRENT_JOBS, the per-repository and per-source caps and one running Job per issue do not apply"
    );
    Ok(())
}

impl Persister {
    /// Kueue mode: puts the task's Job in its LocalQueue (labels), unless a
    /// spent budget holds it back (then it is created without them, and the
    /// scheduler hands it over later). Returns what the `Accepted` Event
    /// says of it.
    pub(super) fn place_in_kueue(
        &self,
        settings: &KueueSettings,
        task: &Task,
        job: &mut k8s_openapi::api::batch::v1::Job,
    ) -> String {
        let placement = Placement::of(
            settings,
            task.labels.get("rule").map(String::as_str),
            task.repository.as_deref(),
            task.source.as_str(),
            task.priority,
        );
        let repo = task.repository.as_deref().unwrap_or("").to_lowercase();
        let spent = self
            .waits
            .as_ref()
            .and_then(|w| w.get().budget_spent(&repo, task.source.as_str()));
        match spent {
            Some(why) => format!(
                ", held back from Kueue LocalQueue {:?} until the budget allows: {why}",
                placement.queue
            ),
            None => {
                placement.apply(job);
                format!(", put in Kueue LocalQueue {:?}", placement.queue)
            }
        }
    }
}

impl Scheduler {
    /// The Kueue settings in Kueue mode.
    pub(super) fn kueue(&self) -> Option<&KueueSettings> {
        self.config.scheduler.kueue.as_ref()
    }

    /// Whether a queued Job is held back from Kueue by a spent budget.
    fn budget_holds(&self, r: &JobRecord) -> bool {
        self.spent.repositories.contains_key(&r.repository_key())
            || r.source
                .as_deref()
                .is_some_and(|s| self.spent.sources.contains_key(s))
    }

    /// On the Lease holder: hands Job `r` to Kueue if it is queued, not in
    /// Kueue's hands, and no spent budget holds it.
    pub(super) fn hand_over(&mut self, r: &JobRecord, ctx: &mut Context<Self>) {
        let Some(settings) = self.kueue() else {
            return;
        };
        if r.state != JobState::Queued
            || r.kueue_queue().is_some()
            || self.kueue_state.handing.contains(&r.name)
            || self.budget_holds(r)
        {
            return;
        }
        let Some(lead_until) = self.leader.valid_until() else {
            return;
        };
        let placement = Placement::of_record(settings, r);
        let name = r.name.clone();
        tracing::info!(job = %name, queue = %placement.queue, "handing a held job to Kueue");
        self.kueue_state.handing.insert(name.clone());
        let msg = HandToKueue {
            name: name.to_string(),
            namespace: Some(r.namespace.to_string()),
            labels: placement.labels(),
            deadline: lead_until.min(Instant::now() + Duration::from_secs(30)),
        };
        self.kube
            .ask(msg)
            .into_actor(self)
            .map(move |r, this, _| {
                this.kueue_state.handing.remove(&name);
                match r {
                    Ok(Ok(true)) => this.audit.record(
                        &name,
                        None,
                        crate::cluster::audit::EventType::Normal,
                        crate::cluster::audit::reason::QUEUED_IN_KUEUE,
                        &format!(
                            "handed to Kueue: LocalQueue {:?} (held back until its budget allowed)",
                            placement.queue
                        ),
                    ),
                    Ok(Ok(false)) | Ok(Err(crate::cluster::kube_actor::KubeError::NotFound)) => {
                        false
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(job = %name, error = %e, "handing the job to Kueue failed; retried at the next resync");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(job = %name, error = %e, "handing the job to Kueue not sent; retried at the next resync");
                        false
                    }
                };
            })
            .spawn(ctx);
    }

    /// On the Lease holder (each resync): hands every held Job whose
    /// budget allows it to Kueue. O(queued Jobs).
    pub(super) fn hand_over_held(&mut self, ctx: &mut Context<Self>) {
        if self.kueue().is_none() || !(self.synced && self.leading) {
            return;
        }
        for r in self.jobs.in_state(JobState::Queued) {
            if r.kueue_queue().is_none() {
                self.hand_over(&r, ctx);
            }
        }
    }

    /// A watcher saw Kueue admit or evict a Job: the Lease holder records
    /// it (Event, metrics; an eviction also on the Job, as its count).
    pub(super) fn kueue_changed(&mut self, msg: KueueChange) {
        if !self.sync_leadership() {
            return;
        }
        let uid = msg.uid.as_deref();
        let name = &msg.name;
        let kueue = self.metrics.kueue();
        match msg.change {
            Change::Admitted { queue, waited } => {
                kueue.admitted();
                self.metrics.admitted();
                self.metrics.service().waited(waited);
                tracing::info!(job = %name, queue = %queue, "admitted by Kueue");
                self.audit.kueue_admitted(name, uid, &queue);
            }
            Change::Evicted { queue, before } => {
                kueue.evicted();
                let n = before + 1;
                tracing::info!(job = %name, queue = %queue, evictions = n, "evicted by Kueue, requeued");
                self.audit.kueue_evicted(name, uid, &queue, n);
                let write = AnnotateJob {
                    name: name.to_string(),
                    namespace: self.jobs.get(name).map(|r| r.namespace.to_string()),
                    annotations: vec![(ANNOTATION_EVICTIONS.to_string(), Some(n.to_string()))],
                    keep: more_evictions,
                    deadline: Instant::now() + Duration::from_secs(30),
                };
                if let Err(e) = self.kube.tell(write) {
                    tracing::warn!(job = %name, error = %e, "the eviction count was not written");
                }
            }
        }
    }
}

/// Writes an eviction count only over a smaller one (two watchers of the
/// same eviction count it once).
fn more_evictions(current: Option<&str>, writes: &[(String, Option<String>)]) -> bool {
    let now: u32 = current.and_then(|c| c.parse().ok()).unwrap_or(0);
    let new: u32 = writes
        .first()
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    new > now
}

impl Handler<KueueChange> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: KueueChange, _: &mut Context<Self>) {
        self.kueue_changed(msg);
    }
}

crate::tracked_handlers!(Scheduler => KueueChange);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eviction_count_only_grows() {
        let w = |n: &str| vec![(ANNOTATION_EVICTIONS.to_string(), Some(n.to_string()))];
        assert!(more_evictions(None, &w("1")));
        assert!(more_evictions(Some("1"), &w("2")));
        assert!(!more_evictions(Some("2"), &w("2")), "counted once");
        assert!(!more_evictions(Some("3"), &w("2")));
    }
}
