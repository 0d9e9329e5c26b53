//! The Job controller, following batch/v1 and pkg/controller/job: a
//! suspended Job has no pods and a `Suspended` condition; a running Job runs
//! up to `parallelism` pods at once until `completions` have succeeded,
//! retried up to `backoffLimit` after an exponential back-off, bounded by
//! `activeDeadlineSeconds`, deleted `ttlSecondsAfterFinished` after it ends.
//!
//! Pods carry the `batch.kubernetes.io/job-tracking` finalizer until they are
//! counted: `status.succeeded`/`status.failed` are running totals, so pods
//! that are deleted afterwards still count, as on a real cluster. A pod
//! being deleted by someone else counts as failed (the default
//! `podReplacementPolicy: TerminatingOrFailed`); pods the controller itself
//! removes (suspension) lose the finalizer first and are not counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    deleting, meta, Controller, EXIT_CODE_ANNOTATION, JOB_TRACKING_FINALIZER,
    RUN_SECONDS_ANNOTATION, TERMINATION_SECONDS_ANNOTATION,
};
use crate::defaults::CONTROLLER_UID_LABEL;
use crate::resources::{JOBS, PODS};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{now_rfc3339, DeleteOptions};

/// The longest delay before a failed Job pod is replaced.
const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// The retry delay after `failed` failures: `base`, doubled per further
/// failure, capped at 6 minutes.
fn backoff_delay(base: Duration, failed: usize) -> Duration {
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

fn has_condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

fn set_condition(status: &mut Value, kind: &str, value: bool, reason: &str, message: &str) {
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

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

/// A pod neither finished nor being deleted.
fn is_active(p: &Value) -> bool {
    matches!(phase(p), "Pending" | "Running") && !deleting(p)
}

/// `isPodFailed` with the default replacement policy: failed, or being
/// deleted before it succeeded.
fn counts_as_failed(p: &Value) -> bool {
    phase(p) == "Failed" || (deleting(p) && phase(p) != "Succeeded")
}

impl Controller {
    fn job_pods(&self, ns: &str, job: &Value) -> Vec<Arc<Value>> {
        let uid = meta(job, "uid");
        let sel =
            LabelSelector::parse(&format!("{CONTROLLER_UID_LABEL}={uid}")).unwrap_or_default();
        self.store()
            .list(PODS, Some(ns), &sel, &FieldSelector::default(), None, None)
            .map(|p| p.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| owner(p).is_some_and(|o| o["uid"] == uid))
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

    fn delete_pod(&self, ns: &str, pod: &Value) {
        let _ = self
            .store()
            .delete(PODS, ns, meta(pod, "name"), &DeleteOptions::default());
    }

    fn write_status(&self, ns: &str, name: &str, mut status: Value) {
        // Like the real controller, zero counts are left out.
        if let Some(m) = status.as_object_mut() {
            for k in ["active", "succeeded", "failed"] {
                if m.get(k) == Some(&json!(0)) {
                    m.remove(k);
                }
            }
        }
        let _ = self.store().modify(JOBS, ns, name, true, false, |cur| {
            let mut n = cur.clone();
            n["status"] = status;
            Ok(n)
        });
    }

    /// The TTL after a Job finished: delete it when due, else arm a timer.
    fn finished_job(&mut self, ns: &str, name: &str, job: &Value) {
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

    pub(super) fn reconcile_job(&mut self, ns: &str, name: &str) {
        let Ok(job) = self.store().get(JOBS, ns, name) else {
            self.failures.remove(&(ns.to_string(), name.to_string()));
            return;
        };
        if deleting(&job) {
            return;
        }
        if has_condition(&job, "Complete") || has_condition(&job, "Failed") {
            return self.finished_job(ns, name, &job);
        }
        let mut status = job["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let key = (JOBS, ns.to_string(), name.to_string());
        let now_wall = chrono::Utc::now();
        let pods = self.job_pods(ns, &job);
        if job["spec"]["suspend"] == true {
            for p in pods.iter().filter(|p| is_active(p)) {
                // deleteJobPods: the finalizer goes first, so a pod removed
                // for suspension is not counted as failed.
                self.untrack(ns, p);
                self.delete_pod(ns, p);
            }
            if !has_condition(&job, "Suspended") {
                self.event(&job, "Normal", "Suspended", "Job suspended");
            }
            set_condition(
                &mut status,
                "Suspended",
                true,
                "JobSuspended",
                "Job suspended",
            );
            status["active"] = json!(0);
            status["ready"] = json!(0);
            if let Some(m) = status.as_object_mut() {
                m.remove("startTime");
            }
            self.write_status(ns, name, status);
            return;
        }
        if has_condition(&job, "Suspended") {
            set_condition(&mut status, "Suspended", false, "JobResumed", "Job resumed");
            self.event(&job, "Normal", "Resumed", "Job resumed");
            status["startTime"] = json!(now_rfc3339());
        }
        if status["startTime"].is_null() {
            status["startTime"] = json!(now_rfc3339());
        }
        // Count the pods that finished since the last pass, then release
        // them.
        let mut succeeded = status["succeeded"].as_u64().unwrap_or(0) as usize;
        let mut failed = status["failed"].as_u64().unwrap_or(0) as usize;
        for p in pods.iter().filter(|p| tracked(p)) {
            if phase(p) == "Succeeded" {
                succeeded += 1;
            } else if counts_as_failed(p) {
                failed += 1;
            } else {
                continue;
            }
            self.untrack(ns, p);
        }
        let active: Vec<&Arc<Value>> = pods.iter().filter(|p| is_active(p)).collect();
        let ready = active.iter().filter(|p| phase(p) == "Running").count();
        let terminating = pods
            .iter()
            .filter(|p| deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
            .count();
        // `completions` unset (with `parallelism` set): the first success
        // completes the Job once its other pods have ended.
        let completions = job["spec"]["completions"].as_u64().map(|c| c as usize);
        let parallelism = job["spec"]["parallelism"].as_u64().unwrap_or(1) as usize;
        let backoff = job["spec"]["backoffLimit"].as_u64().unwrap_or(6) as usize;
        status["succeeded"] = json!(succeeded);
        status["failed"] = json!(failed);
        status["terminating"] = json!(terminating);
        status["uncountedTerminatedPods"] = json!({});
        let deadline = job["spec"]["activeDeadlineSeconds"].as_i64().and_then(|s| {
            let start = chrono::DateTime::parse_from_rfc3339(status["startTime"].as_str()?).ok()?;
            Some(start.with_timezone(&chrono::Utc) + chrono::Duration::seconds(s))
        });
        let fail = |this: &mut Self, status: &mut Value, reason: &str, msg: &str| {
            // The pods it terminates count as failed, as the real controller
            // counts them once the Job has finished.
            for p in &active {
                this.untrack(ns, p);
                this.delete_pod(ns, p);
            }
            status["failed"] = json!(failed + active.len());
            status["active"] = json!(0);
            status["ready"] = json!(0);
            status["terminating"] = json!(terminating + active.len());
            set_condition(status, "FailureTarget", true, reason, msg);
            set_condition(status, "Failed", true, reason, msg);
            this.event(&job, "Warning", reason, msg);
        };
        let complete = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        if complete {
            status["active"] = json!(0);
            status["ready"] = json!(0);
            status["completionTime"] = json!(now_rfc3339());
            let why = "Reached expected number of succeeded pods";
            set_condition(
                &mut status,
                "SuccessCriteriaMet",
                true,
                "CompletionsReached",
                why,
            );
            set_condition(&mut status, "Complete", true, "CompletionsReached", why);
            self.event(&job, "Normal", "Completed", "Job completed");
        } else if failed > backoff {
            fail(
                self,
                &mut status,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            );
        } else if deadline.is_some_and(|d| d <= now_wall) {
            fail(
                self,
                &mut status,
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            );
        } else {
            // Up to `parallelism` pods at once, never more than the
            // completions still missing.
            let want = match completions {
                Some(c) => parallelism.min(c.saturating_sub(succeeded)),
                None if succeeded > 0 => 0,
                None => parallelism,
            };
            // After a failure, a replacement waits out the back-off.
            let now = Instant::now();
            let id = (ns.to_string(), name.to_string());
            let last = self.failures.get(&id).copied();
            let since = match last {
                Some((n, at)) if n == failed => at,
                _ => now,
            };
            if last.is_none_or(|(n, _)| n != failed) {
                self.failures.insert(id, (failed, now));
            }
            let ready_at = since + backoff_delay(self.state.config.job_backoff_base, failed);
            let mut created = active.len();
            if failed == 0 || now >= ready_at {
                for _ in active.len()..want {
                    self.create_pod(ns, &job);
                    created += 1;
                }
            } else if active.len() < want {
                self.timer(ready_at, key.clone());
            }
            status["active"] = json!(created);
            status["ready"] = json!(ready);
            if let Some(d) = deadline {
                let wait = (d - now_wall).to_std().unwrap_or_default();
                self.timer(Instant::now() + wait, key);
            }
        }
        // The write's MODIFIED event brings the Job back here, which arms
        // the TTL timer once it has finished.
        self.write_status(ns, name, status);
    }

    fn create_pod(&self, ns: &str, job: &Value) {
        let tmpl = &job["spec"]["template"];
        let mut annotations = tmpl["metadata"]["annotations"].clone();
        if !annotations.is_object() {
            annotations = json!({});
        }
        for k in [
            RUN_SECONDS_ANNOTATION,
            EXIT_CODE_ANNOTATION,
            TERMINATION_SECONDS_ANNOTATION,
        ] {
            if annotations.get(k).is_none() {
                if let Some(v) = job["metadata"]["annotations"].get(k) {
                    annotations[k] = v.clone();
                }
            }
        }
        let pod = json!({
            "metadata": {
                "generateName": format!("{}-", meta(job, "name")),
                "namespace": ns,
                "labels": tmpl["metadata"]["labels"].clone(),
                "annotations": annotations,
                "finalizers": [JOB_TRACKING_FINALIZER],
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": meta(job, "name"),
                    "uid": meta(job, "uid"), "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": tmpl["spec"].clone(),
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
