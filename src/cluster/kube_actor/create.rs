//! The Kube actor's create, in three steps (the order `src/cluster/files.rs`
//! explains): the files' ConfigMap under a name derived from the Job's, then
//! the suspended Job, then the ConfigMap's owner reference to the Job. A Job
//! therefore never exists without its files, and a retry completes a
//! half-done attempt.

use std::time::Instant;

use actix::prelude::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use super::{CreateJob, KubeActor, KubeError, KubeGate};
use crate::cluster::describe::describe;
use crate::cluster::files;
use crate::cluster::slim::SlimJob;

impl Handler<CreateJob> for KubeActor {
    type Result = ResponseFuture<Result<Job, KubeError>>;
    fn handle(&mut self, msg: CreateJob, _: &mut Context<Self>) -> Self::Result {
        // The Job's own namespace (a rule's tenant namespace), else ours;
        // its files' ConfigMap goes with it.
        let ns = self.ns(msg.job.metadata.namespace.as_deref());
        let (jobs, gate) = (self.jobs(Some(&ns)), self.gate.clone());
        let cms: Api<ConfigMap> = Api::namespaced(self.gate.client(), &ns);
        // The created Job comes back whole; only its identity is used here.
        let slim: Api<SlimJob> = Api::namespaced(self.gate.client(), &ns);
        self.tracked(async move {
            let job_name = msg.job.metadata.name.clone().unwrap_or_default();
            let failed = |reason: &str| {
                tracing::warn!(job = %job_name, namespace = %ns, reason, "Failed to create Kubernetes Job");
            };
            let cm = if msg.files.is_empty() {
                None
            } else {
                files::configmap(&msg.job, &msg.files)
            };
            // The files first: the Job must never exist without them.
            let mut created_cm = false;
            if let Some(cm) = &cm {
                created_cm = ensure_configmap(&cms, &jobs, &gate, msg.deadline, cm)
                    .await
                    .inspect_err(|e| {
                        failed(&format!("its files' ConfigMap could not be created: {e}"))
                    })?;
            }
            let pp = PostParams::default();
            // The API server's own words for the log (clients get ours).
            let last_error = std::sync::Mutex::new(None::<String>);
            let body = SlimJob(*msg.job);
            let created = gate
                .call(msg.deadline, "create", || async {
                    slim.create(&pp, &body).await.inspect_err(|e| {
                        if let Ok(mut l) = last_error.lock() {
                            *l = Some(describe(e));
                        }
                    })
                })
                .await
                .map(|j| j.0);
            if let Err(e) = &created {
                if *e != KubeError::AlreadyExists {
                    let said = last_error.lock().ok().and_then(|mut l| l.take());
                    failed(&said.unwrap_or_else(|| e.to_string()));
                }
            }
            let Some(cm) = cm else {
                return created;
            };
            let cm_name = cm.metadata.name.clone().unwrap_or_default();
            match created {
                Ok(job) => {
                    own(&cms, &gate, msg.deadline, &cm_name, &job).await?;
                    Ok(job)
                }
                Err(KubeError::AlreadyExists) => {
                    // The task exists: finish what an earlier attempt began
                    // before anyone is told "duplicate".
                    let existing = gate
                        .call(msg.deadline, "get", || jobs.get_opt(&job_name))
                        .await?;
                    if let Some(job) = existing {
                        own(&cms, &gate, msg.deadline, &cm_name, &job).await?;
                    }
                    Err(KubeError::AlreadyExists)
                }
                Err(e @ KubeError::Unavailable(_)) => {
                    // The create may have happened after all: keep the files
                    // for the Job that may exist; a retry completes it.
                    Err(e)
                }
                Err(e) => {
                    // Refused for good: take back the files this call made.
                    if created_cm {
                        let dp = DeleteParams::background();
                        let r = gate
                            .call(msg.deadline, "delete", || cms.delete(&cm_name, &dp))
                            .await;
                        if let Err(de) = r.map(|_| ()).or_else(|e| match e {
                            KubeError::NotFound => Ok(()),
                            e => Err(e),
                        }) {
                            tracing::warn!(configmap = %cm_name, error = %de, "could not delete the files of a refused job; a retry reuses them");
                        }
                    }
                    Err(e)
                }
            }
        })
    }
}

/// Creates the files' ConfigMap, or accepts the one an earlier attempt
/// left (same content, or owned by a live Job of the same task). A leftover
/// with other content and no Job is replaced. True if this call created it.
async fn ensure_configmap(
    cms: &Api<ConfigMap>,
    jobs: &Api<Job>,
    gate: &KubeGate,
    deadline: Instant,
    cm: &ConfigMap,
) -> Result<bool, KubeError> {
    let pp = PostParams::default();
    let name = cm.metadata.name.clone().unwrap_or_default();
    for _ in 0..3 {
        match gate.call(deadline, "create", || cms.create(&pp, cm)).await {
            Ok(_) => return Ok(true),
            Err(KubeError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        let Some(found) = gate.call(deadline, "get", || cms.get_opt(&name)).await? else {
            continue;
        };
        if found.data == cm.data {
            return Ok(false);
        }
        let job_name = name.strip_suffix("-files").unwrap_or(&name).to_string();
        if gate
            .call(deadline, "get", || jobs.get_opt(&job_name))
            .await?
            .is_some()
        {
            // The task's Job exists with these files: it stays as it is.
            return Ok(false);
        }
        let dp = DeleteParams::background();
        match gate
            .call(deadline, "delete", || cms.delete(&name, &dp))
            .await
        {
            Ok(_) | Err(KubeError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Err(KubeError::Conflict(format!(
        "the files ConfigMap {name} kept changing"
    )))
}

/// Makes `job` the owner of its files' ConfigMap (if it is not already).
async fn own(
    cms: &Api<ConfigMap>,
    gate: &KubeGate,
    deadline: Instant,
    cm_name: &str,
    job: &Job,
) -> Result<(), KubeError> {
    let Some(patch) = files::owner_patch(job) else {
        return Ok(());
    };
    let current = gate.call(deadline, "get", || cms.get_opt(cm_name)).await?;
    match current {
        Some(cm) if files::owned_by(&cm, job) => return Ok(()),
        // Gone (deleted with an earlier Job of this name): nothing to own.
        None => return Ok(()),
        Some(_) => {}
    }
    let pp = PatchParams::default();
    let patch = Patch::Merge(patch);
    gate.call(deadline, "patch", || cms.patch(cm_name, &pp, &patch))
        .await
        .map(|_| ())
}
