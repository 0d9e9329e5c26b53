//! [`SlimJob`]: a batch/v1 Job as the watch and the create path read it.
//!
//! Every Job event the API server sends carries the whole object: the pod
//! template (tens of env vars, volumes, security context) and
//! `metadata.managedFields`, which together are most of its bytes. The
//! service keeps a small projection of each Job ([`crate::job::JobRecord`])
//! and needs only a few of those fields, so decoding all of them into
//! `k8s_openapi` types — an allocation per string, map and list — was the
//! largest part of the service's CPU per watch event. `SlimJob` decodes the
//! same JSON into only what the projection and the metrics read; serde skips
//! the rest without allocating. It serializes as the full Job it wraps, so
//! it can also be sent (a create answers the created Job, read slim too).
//!
//! Kept: `metadata` except `managedFields`; `spec.suspend`,
//! `spec.activeDeadlineSeconds` and the containers' `name` and `env` (the
//! task document lives in the agent's env); the whole `status`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Job decoded slim (see the module docs); `.0` is the Job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlimJob(pub Job);

impl k8s_openapi::Resource for SlimJob {
    const API_VERSION: &'static str = <Job as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Job as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Job as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Job as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Job as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Job as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for SlimJob {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.0.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

impl Serialize for SlimJob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SlimJob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Wire::deserialize(d).map(|w| SlimJob(w.into_job()))
    }
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    metadata: WireMeta,
    spec: Option<WireSpec>,
    status: Option<JobStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    generate_name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    finalizers: Option<Vec<String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    suspend: Option<bool>,
    active_deadline_seconds: Option<i64>,
    #[serde(default)]
    template: WireTemplate,
}

#[derive(Deserialize, Default)]
struct WireTemplate {
    spec: Option<WirePodSpec>,
}

#[derive(Deserialize)]
struct WirePodSpec {
    #[serde(default)]
    containers: Vec<WireContainer>,
}

#[derive(Deserialize)]
struct WireContainer {
    #[serde(default)]
    name: String,
    env: Option<Vec<EnvVar>>,
}

impl Wire {
    fn into_job(self) -> Job {
        let m = self.metadata;
        let metadata = ObjectMeta {
            name: m.name,
            generate_name: m.generate_name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            labels: m.labels,
            annotations: m.annotations,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            finalizers: m.finalizers,
            owner_references: m.owner_references,
            ..ObjectMeta::default()
        };
        let spec = self.spec.map(|s| JobSpec {
            suspend: s.suspend,
            active_deadline_seconds: s.active_deadline_seconds,
            template: PodTemplateSpec {
                metadata: None,
                spec: s.template.spec.map(|p| PodSpec {
                    containers: p
                        .containers
                        .into_iter()
                        .map(|c| Container {
                            name: c.name,
                            env: c.env,
                            ..Container::default()
                        })
                        .collect(),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        });
        Job {
            metadata,
            spec,
            status: self.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobRecord;

    /// A Job as the API server sends it: template, managedFields, status.
    fn full() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "gh-issue-octo-repo-1-abc", "namespace": "agents", "uid": "u-1",
                "resourceVersion": "42", "generation": 2,
                "creationTimestamp": "2026-12-01T10:00:00Z",
                "labels": {"app.kubernetes.io/managed-by": "orchestrator", "orchestrator.dev/priority": "p03"},
                "annotations": {"orchestrator.dev/dedup-key": "github:1", "orchestrator.dev/repository": "octo/repo"},
                "managedFields": [{"manager": "orchestrator", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:suspend": {}}}}]
            },
            "spec": {
                "suspend": false, "activeDeadlineSeconds": 3600, "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "volumes": [{"name": "w", "emptyDir": {}}],
                        "containers": [{
                            "name": "agent", "image": "agent:1",
                            "env": [{"name": "TASK_JSON", "value": "{\"title\":\"Fix it\",\"repository\":\"octo/repo\"}"},
                                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
                        }]
                    }
                }
            },
            "status": {"active": 1, "startTime": "2026-12-01T10:00:05Z",
                "conditions": [{"type": "Suspended", "status": "False", "reason": "JobResumed"}]}
        })
    }

    #[test]
    fn keeps_what_the_projection_reads_and_drops_the_rest() {
        let v = full();
        let slim: SlimJob = serde_json::from_value(v.clone()).expect("decodes");
        let fat: Job = serde_json::from_value(v).expect("decodes");
        assert!(slim.0.metadata.managed_fields.is_none());
        assert!(fat.metadata.managed_fields.is_some());
        let spec = slim.0.spec.as_ref().expect("spec");
        assert_eq!(spec.suspend, Some(false));
        assert_eq!(spec.active_deadline_seconds, Some(3600));
        assert_eq!(spec.backoff_limit, None);
        let pod = spec.template.spec.as_ref().expect("pod spec");
        assert!(pod.volumes.is_none());
        assert_eq!(pod.containers[0].image, None);
        assert_eq!(
            pod.containers[0].env,
            fat.spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .env
        );
        assert_eq!(slim.0.status, fat.status);
        let mut fat_meta = fat.metadata.clone();
        fat_meta.managed_fields = None;
        assert_eq!(slim.0.metadata, fat_meta);
        // The projection the store keeps is the same either way.
        let a = JobRecord::from_job(&slim.0, None).expect("record");
        let b = JobRecord::from_job(&fat, None).expect("record");
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(a.task.is_some());
    }

    #[test]
    fn serializes_as_the_job_it_wraps_and_refuses_what_a_job_refuses() {
        let fat: Job = serde_json::from_value(full()).expect("decodes");
        let s = serde_json::to_value(SlimJob(fat.clone())).expect("serializes");
        assert_eq!(s, serde_json::to_value(&fat).expect("serializes"));
        let wrong = serde_json::json!({"metadata": {"name": 5}});
        assert!(serde_json::from_value::<SlimJob>(wrong).is_err());
        let empty: SlimJob = serde_json::from_value(serde_json::json!({})).expect("decodes");
        assert_eq!(empty.0, Job::default());
    }
}
