//! Files delivered to a Job (PM Agent markdown files): a ConfigMap owned by
//! the Job (so it is garbage-collected with it), mounted read-only at
//! [`crate::task::files::FILES_DIR`] in the agent container.
//!
//! Order of creation (see the Kube actor's `CreateJob`): the ConfigMap
//! first under a name derived from the Job's deterministic name, then the
//! Job, then the ConfigMap's owner reference. A Job therefore never exists
//! without its files, and a half-done attempt is completed by the retry.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, EnvVar, KeyToPath, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use crate::task::files::{TaskFile, FILES_DIR};

/// The ConfigMap's name for a Job.
pub fn configmap_name(job: &str) -> String {
    // Job names are ≤ 63 characters, so this stays a valid object name.
    format!("{job}-files")
}

/// Mounts the files' ConfigMap into the Job's agent container.
pub fn attach(job: &mut Job, files: &[TaskFile]) {
    let Some(name) = job.metadata.name.clone() else {
        return;
    };
    let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return;
    };
    let items = files
        .iter()
        .enumerate()
        .map(|(i, f)| KeyToPath {
            key: format!("f{i}"),
            path: f.filename.clone(),
            ..Default::default()
        })
        .collect();
    pod.volumes.get_or_insert_default().push(Volume {
        name: "task-files".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: configmap_name(&name),
            items: Some(items),
            optional: Some(false),
            default_mode: Some(0o444),
            ..Default::default()
        }),
        ..Default::default()
    });
    for c in pod
        .containers
        .iter_mut()
        .filter(|c| c.name == super::jobspec::AGENT_CONTAINER)
    {
        c.volume_mounts.get_or_insert_default().push(VolumeMount {
            name: "task-files".into(),
            mount_path: FILES_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        c.env.get_or_insert_default().push(EnvVar {
            name: "TASK_FILES_DIR".into(),
            value: Some(FILES_DIR.into()),
            ..Default::default()
        });
    }
}

/// The ConfigMap holding `files` for the Job `job` will become, created
/// *before* the Job (so the Job never exists without what it mounts). It
/// gets its owner reference once the Job exists ([`owner_patch`]).
pub fn configmap(job: &Job, files: &[TaskFile]) -> Option<ConfigMap> {
    let name = job.metadata.name.clone()?;
    let data: BTreeMap<String, String> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("f{i}"), f.content.clone()))
        .collect();
    Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(configmap_name(&name)),
            namespace: job.metadata.namespace.clone(),
            labels: job.metadata.labels.clone(),
            ..Default::default()
        },
        data: Some(data),
        immutable: Some(true),
        ..Default::default()
    })
}

/// The owner reference that makes the created Job own its ConfigMap (so
/// it is garbage-collected with the Job), as a merge-patch body.
pub fn owner_patch(job: &Job) -> Option<serde_json::Value> {
    let owner = OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone()?,
        uid: job.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Some(serde_json::json!({"metadata": {"ownerReferences": [owner]}}))
}

/// True if `cm` is already owned by the Job `job`.
pub fn owned_by(cm: &ConfigMap, job: &Job) -> bool {
    let uid = job.metadata.uid.as_deref();
    cm.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job" && Some(o.uid.as_str()) == uid)
}
