//! The Kube actor's Kueue calls (`SCHEDULER=kueue`): handing a held Job to
//! Kueue (its queue labels, never `spec.suspend`), deleting a cancelled
//! Job (suspending one would only have Kueue requeue it), and the Kueue
//! preflight probes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions};
use serde_json::json;

use super::{patch_as_read, KubeActor, KubeError, KubeGate, Plan};
use crate::cluster::kueue::QUEUE_NAME_LABEL;
use crate::cluster::preflight::kueue::KueueSeen;
use crate::config::kueue::KueueSettings;

/// Hands a queued Job the service held back to Kueue: adds its queue (and
/// priority class) labels — only to a managed Job that is suspended, not
/// cancelled, not finished and carries no queue name yet. Answers whether
/// it wrote.
#[derive(Message)]
#[rtype(result = "Result<bool, KubeError>")]
pub struct HandToKueue {
    pub name: String,
    /// The Job's namespace (`None`: the service's own).
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub deadline: Instant,
}

/// Runs the Kueue preflight probes; `None` outside Kueue mode.
#[derive(Message)]
#[rtype(result = "Option<KueueSeen>")]
pub struct KueuePreflight {
    /// The tenant namespaces, each with the rules naming it (their
    /// LocalQueues are looked up there).
    pub tenants: Vec<crate::cluster::preflight::Tenant>,
}

impl KubeActor {
    /// In Kueue mode (`settings`): cancels delete the Job, and preflight
    /// rounds include the Kueue probes.
    pub fn with_kueue(mut self, settings: Option<Arc<KueueSettings>>) -> Self {
        self.kueue = settings;
        self
    }
}

impl Handler<HandToKueue> for KubeActor {
    type Result = ResponseFuture<Result<bool, KubeError>>;
    fn handle(&mut self, msg: HandToKueue, _: &mut Context<Self>) -> Self::Result {
        let (jobs, gate) = (self.jobs(msg.namespace.as_deref()), self.gate.clone());
        self.tracked(async move {
            use crate::cluster::view::job_state;
            use crate::job::JobState;
            let plan = |job: Option<&Job>| {
                let Some(job) = job.filter(|j| crate::cluster::jobspec::is_managed(j)) else {
                    return Err(KubeError::NotFound);
                };
                let labelled = job
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(QUEUE_NAME_LABEL));
                if labelled || job_state(job) != JobState::Queued {
                    return Ok(Plan::Answer(false));
                }
                Ok(Plan::Patch(json!({"metadata": {"labels": msg.labels}})))
            };
            let done = |_read: &Job, _patched: Job| true;
            patch_as_read(
                &jobs,
                &gate,
                &msg.name,
                msg.deadline,
                "handed to Kueue",
                plan,
                done,
            )
            .await
        })
    }
}

impl Handler<KueuePreflight> for KubeActor {
    type Result = ResponseFuture<Option<KueueSeen>>;
    fn handle(&mut self, msg: KueuePreflight, _: &mut Context<Self>) -> Self::Result {
        let (gate, ns, settings) = (
            self.gate.clone(),
            self.namespace.clone(),
            self.kueue.clone(),
        );
        Box::pin(async move {
            let settings = settings?;
            Some(crate::cluster::probe::kueue::observe(&gate, &ns, &settings, &msg.tenants).await)
        })
    }
}

/// Deletes a Job this call just cancelled (the uid it had, so a new Job of
/// the same name is never hit); background propagation removes its pods.
/// A failure is logged: the cancelled-Job sweep deletes it later.
pub(super) async fn delete_cancelled(
    jobs: &Api<Job>,
    gate: &KubeGate,
    job: &Job,
    deadline: Instant,
) {
    let Some(name) = job.metadata.name.as_deref() else {
        return;
    };
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match gate
        .call(deadline, "delete", || jobs.delete(name, &dp))
        .await
    {
        Ok(_) | Err(KubeError::NotFound) => {
            tracing::info!(job = %name, "cancelled job deleted (Kueue mode: a suspended job would be requeued)")
        }
        Err(e) => {
            tracing::warn!(job = %name, error = %e, "deleting the cancelled job failed; the sweep deletes it")
        }
    }
}
