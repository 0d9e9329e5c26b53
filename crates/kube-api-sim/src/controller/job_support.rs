//! What the Job controller does to pods and to a Job's status: listing a
//! Job's pods, creating them (with a completion index for `Indexed` Jobs),
//! releasing their tracking finalizer, conditions, and the TTL after a Job
//! finished.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::job_policy::{INDEX_ANNOTATION, INDEX_FAILURES_ANNOTATION};
use super::{
    deleting, meta, Controller, EXIT_CODE_ANNOTATION, EXIT_CODE_BY_INDEX_ANNOTATION,
    JOB_TRACKING_FINALIZER, POD_CONDITION_ANNOTATION, RUN_SECONDS_ANNOTATION,
    RUN_SECONDS_BY_INDEX_ANNOTATION, TERMINATION_SECONDS_ANNOTATION,
};
use crate::defaults::CONTROLLER_UID_LABEL;
use crate::resources::{JOBS, PODS};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{now_rfc3339, DeleteOptions};

/// The longest delay before a failed Job pod is replaced.
const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// The retry delay after `failed` failures: `base`, doubled per further
/// failure, capped at 6 minutes.
pub(super) fn backoff_delay(base: Duration, failed: usize) -> Duration {
    let doublings = failed.saturating_sub(1).min(16) as u32;
    base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// The Job owner reference of a pod.
pub(super) fn owner(pod: &Value) -> Option<&Value> {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|r| r.iter().find(|o| o["kind"] == "Job"))
}

pub(super) fn tracked(pod: &Value) -> bool {
    pod["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == JOB_TRACKING_FINALIZER))
}

pub(super) fn has_condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

pub(super) fn set_condition(
    status: &mut Value,
    kind: &str,
    value: bool,
    reason: &str,
    message: &str,
) {
    let now = now_rfc3339();
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(list) = status["conditions"].as_array_mut() else {
        return;
    };
    let want = if value { "True" } else { "False" };
    if let Some(c) = list.iter_mut().find(|c| c["type"] == kind) {
        if c["status"] != want || c["reason"] != reason {
            c["status"] = json!(want);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            c["lastProbeTime"] = json!(now);
            c["lastTransitionTime"] = json!(now);
        }
    } else {
        list.push(
            json!({"type": kind, "status": want, "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}),
        );
    }
}

pub(super) fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

/// A pod neither finished nor being deleted.
pub(super) fn is_active(p: &Value) -> bool {
    matches!(phase(p), "Pending" | "Running") && !deleting(p)
}

/// Being deleted but not finished.
pub(super) fn is_terminating(p: &Value) -> bool {
    deleting(p) && !matches!(phase(p), "Succeeded" | "Failed")
}

/// The restarts of a pod's containers (`OnFailure`).
pub(super) fn restarts(p: &Value) -> u64 {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|f| p["status"][f].as_array())
        .flatten()
        .filter_map(|s| s["restartCount"].as_u64())
        .sum()
}

impl Controller {
    pub(super) fn job_pods(&self, ns: &str, job: &Value) -> Vec<Arc<Value>> {
        let uid = meta(job, "uid");
        let sel =
            LabelSelector::parse(&format!("{CONTROLLER_UID_LABEL}={uid}")).unwrap_or_default();
        // Selected and checked on the index; only its pods are decoded.
        self.store()
            .list(PODS, Some(ns), &sel, &FieldSelector::default(), None, None)
            .map(|p| p.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                p.owners
                    .iter()
                    .find(|o| &*o.kind == "Job")
                    .is_some_and(|o| &*o.uid == uid)
            })
            .map(|p| Arc::new(p.value()))
            .collect()
    }

    /// Removes the tracking finalizer (the pod has been counted, or is not
    /// to be).
    pub(super) fn untrack(&self, ns: &str, pod: &Value) {
        self.store().system_write(PODS, ns, meta(pod, "name"), |p| {
            if let Some(f) = p["metadata"]["finalizers"].as_array_mut() {
                f.retain(|x| x != JOB_TRACKING_FINALIZER);
            }
        });
    }

    /// `deleteJobPods`: the finalizer goes first, then the pod (gracefully).
    pub(super) fn remove_pod(&self, ns: &str, pod: &Value) {
        self.untrack(ns, pod);
        let _ = self
            .store()
            .delete(PODS, ns, meta(pod, "name"), &DeleteOptions::default());
    }

    pub(super) fn write_status(&self, ns: &str, name: &str, mut status: Value) {
        // Like the real controller, zero counts are left out.
        if let Some(m) = status.as_object_mut() {
            for k in ["active", "succeeded", "failed"] {
                if m.get(k) == Some(&json!(0)) {
                    m.remove(k);
                }
            }
            if m.get("completedIndexes") == Some(&json!("")) {
                m.remove("completedIndexes");
            }
        }
        // A status write reads only the body's status (no copy of the Job).
        let _ = self.store().modify(JOBS, ns, name, true, false, |_| {
            Ok(json!({ "status": status }))
        });
    }

    /// After a Job finished: release its pods, and delete it when its TTL
    /// is over (else arm a timer).
    pub(super) fn finished_job(&mut self, ns: &str, name: &str, job: &Value) {
        self.failures.remove(&(ns.to_string(), name.to_string()));
        for p in self.job_pods(ns, job).iter().filter(|p| tracked(p)) {
            self.untrack(ns, p);
        }
        let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_i64() else {
            return;
        };
        let status = &job["status"];
        let finished = status["completionTime"]
            .as_str()
            .or_else(|| {
                status["conditions"].as_array().and_then(|cs| {
                    cs.iter()
                        .find(|c| c["type"] == "Failed" || c["type"] == "Complete")
                        .and_then(|c| c["lastTransitionTime"].as_str())
                })
            })
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if let Some(f) = finished {
            let now_wall = chrono::Utc::now();
            let due = f.with_timezone(&chrono::Utc) + chrono::Duration::seconds(ttl);
            if due <= now_wall {
                let opts = DeleteOptions {
                    propagation: Some("Background".into()),
                    ..Default::default()
                };
                let _ = self.store().delete(JOBS, ns, name, &opts);
            } else {
                let wait = (due - now_wall).to_std().unwrap_or_default();
                self.timer(Instant::now() + wait, (JOBS, ns.into(), name.into()));
            }
        }
    }

    /// Creates a pod from the Job's template; for an `Indexed` Job with its
    /// index (annotation and label `batch.kubernetes.io/job-completion-index`,
    /// hostname `<job>-<index>`, env `JOB_COMPLETION_INDEX`) and, with
    /// `backoffLimitPerIndex`, the index's earlier failures.
    pub(super) fn create_pod(&self, ns: &str, job: &Value, index: Option<(usize, Option<usize>)>) {
        let tmpl = &job["spec"]["template"];
        let job_name = meta(job, "name");
        let mut annotations = tmpl["metadata"]["annotations"].clone();
        if !annotations.is_object() {
            annotations = json!({});
        }
        for k in [
            RUN_SECONDS_ANNOTATION,
            EXIT_CODE_ANNOTATION,
            RUN_SECONDS_BY_INDEX_ANNOTATION,
            EXIT_CODE_BY_INDEX_ANNOTATION,
            TERMINATION_SECONDS_ANNOTATION,
            POD_CONDITION_ANNOTATION,
        ] {
            if annotations.get(k).is_none() {
                if let Some(v) = job["metadata"]["annotations"].get(k) {
                    annotations[k] = v.clone();
                }
            }
        }
        let mut labels = tmpl["metadata"]["labels"].clone();
        let mut spec = tmpl["spec"].clone();
        let mut prefix = format!("{job_name}-");
        if let Some((i, failures)) = index {
            annotations[INDEX_ANNOTATION] = json!(i.to_string());
            if let Some(n) = failures {
                annotations[INDEX_FAILURES_ANNOTATION] = json!(n.to_string());
            }
            if !labels.is_object() {
                labels = json!({});
            }
            labels[INDEX_ANNOTATION] = json!(i.to_string());
            spec["hostname"] = json!(format!("{job_name}-{i}"));
            prefix = format!("{job_name}-{i}-");
            let var = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "apiVersion": "v1",
                "fieldPath": format!("metadata.annotations['{INDEX_ANNOTATION}']")}}});
            for field in ["initContainers", "containers"] {
                for c in spec[field].as_array_mut().into_iter().flatten() {
                    if !c["env"].is_array() {
                        c["env"] = json!([]);
                    }
                    if let Some(env) = c["env"].as_array_mut() {
                        env.push(var.clone());
                    }
                }
            }
        }
        let pod = json!({
            "metadata": {
                "generateName": prefix,
                "namespace": ns,
                "labels": labels,
                "annotations": annotations,
                "finalizers": [JOB_TRACKING_FINALIZER],
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                    "uid": meta(job, "uid"), "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": spec,
        });
        match self.store().create(PODS, ns, pod, false) {
            Ok(p) => self.event(
                job,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {}", meta(&p, "name")),
            ),
            Err(e) => self.event(
                job,
                "Warning",
                "FailedCreate",
                &format!("Error creating: {e}"),
            ),
        }
    }
}
