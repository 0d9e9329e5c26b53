//! The Job controller, following batch/v1 and pkg/controller/job: a
//! suspended Job has no pods and a `Suspended` condition; a running Job runs
//! up to `parallelism` pods at once until `completions` have succeeded
//! (`Indexed`: one success per index, `status.completedIndexes`), retried up
//! to `backoffLimit` after an exponential back-off (`OnFailure`: container
//! restarts count), bounded by `activeDeadlineSeconds`, deleted
//! `ttlSecondsAfterFinished` after it ends. `podFailurePolicy` rules decide
//! what a failed pod means (FailJob, FailIndex, Ignore, Count);
//! `successPolicy` can end an `Indexed` Job early; `backoffLimitPerIndex`
//! and `maxFailedIndexes` limit retries per index (`status.failedIndexes`);
//! `podReplacementPolicy: Failed` waits for terminating pods to finish.
//!
//! Pods carry the `batch.kubernetes.io/job-tracking` finalizer until they are
//! counted: `status.succeeded`/`status.failed` are running totals, so pods
//! that are deleted afterwards still count. A pod being deleted by someone
//! else counts as failed (`TerminatingOrFailed`), or once it has failed
//! (`Failed`, or with a pod failure policy); pods the controller itself
//! removes lose the finalizer first and are not counted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::job_policy::{
    format_indexes, match_pod_failure_policy, parse_indexes, pod_index, success_rule, Action,
    INDEX_FAILURES_ANNOTATION,
};
use super::job_support::{
    backoff_delay, has_condition, is_active, is_terminating, phase, restarts, set_condition,
    tracked,
};
use super::{deleting, Controller};
use crate::resources::JOBS;
use crate::store::now_rfc3339;

/// How a Job ends in this pass.
enum Outcome {
    Failed(&'static str, String),
    Succeeded(&'static str, String),
}

impl Controller {
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
        let pods = self.job_pods(ns, &job);
        if job["spec"]["suspend"] == true {
            return self.suspend(ns, &job, status, &pods);
        }
        if has_condition(&job, "Suspended") {
            set_condition(&mut status, "Suspended", false, "JobResumed", "Job resumed");
            self.event(&job, "Normal", "Resumed", "Job resumed");
            status["startTime"] = json!(now_rfc3339());
        }
        if status["startTime"].is_null() {
            status["startTime"] = json!(now_rfc3339());
        }
        self.run_job(ns, &job, status, &pods);
    }

    fn suspend(&mut self, ns: &str, job: &Value, mut status: Value, pods: &[Arc<Value>]) {
        for p in pods.iter().filter(|p| is_active(p)) {
            // Not counted as failed: the finalizer goes first.
            self.remove_pod(ns, p);
        }
        if !has_condition(job, "Suspended") {
            self.event(job, "Normal", "Suspended", "Job suspended");
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
        self.write_status(ns, job["metadata"]["name"].as_str().unwrap_or(""), status);
    }

    fn run_job(&mut self, ns: &str, job: &Value, mut status: Value, pods: &[Arc<Value>]) {
        let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
        let spec = &job["spec"];
        let key = (JOBS, ns.to_string(), name.clone());
        let now_wall = chrono::Utc::now();
        let indexed = spec["completionMode"] == "Indexed";
        let completions = spec["completions"].as_u64().map(|c| c as usize);
        let limit = completions.unwrap_or(0);
        let per_index = spec["backoffLimitPerIndex"]
            .as_u64()
            .filter(|_| indexed)
            .map(|n| n as usize);
        let policy = spec.get("podFailurePolicy").filter(|p| p.is_object());
        let failed_only = spec["podReplacementPolicy"] == "Failed" || policy.is_some();
        let mut completed = parse_indexes(status["completedIndexes"].as_str().unwrap_or(""), limit);
        let mut failed_indexes =
            parse_indexes(status["failedIndexes"].as_str().unwrap_or(""), limit);
        let mut succeeded = status["succeeded"].as_u64().unwrap_or(0) as usize;
        let mut failed = status["failed"].as_u64().unwrap_or(0) as usize;
        let mut outcome: Option<Outcome> = None;

        // Count the pods that finished since the last pass, then release
        // them.
        for p in pods.iter().filter(|p| tracked(p)) {
            let index = pod_index(p).filter(|i| *i < limit);
            if phase(p) == "Succeeded" {
                if let Some(i) = index {
                    completed.insert(i);
                }
                succeeded += 1;
            } else if phase(p) == "Failed" || (!failed_only && deleting(p)) {
                let action = policy.map_or(Action::Count, |pol| match_pod_failure_policy(pol, p));
                match action {
                    Action::Ignore => {}
                    Action::FailJob(message) => {
                        failed += 1;
                        outcome.get_or_insert(Outcome::Failed("PodFailurePolicy", message));
                    }
                    Action::FailIndex => {
                        failed += 1;
                        failed_indexes.extend(index);
                    }
                    Action::Count => {
                        failed += 1;
                        if let (Some(i), Some(max)) = (index, per_index) {
                            if index_failures(p) + 1 > max {
                                failed_indexes.insert(i);
                            }
                        }
                    }
                }
            } else {
                continue;
            }
            self.untrack(ns, p);
        }
        if indexed {
            succeeded = completed.len();
            failed_indexes.retain(|i| !completed.contains(i));
        }
        let active: Vec<&Arc<Value>> = pods.iter().filter(|p| is_active(p)).collect();
        let terminating = pods.iter().filter(|p| is_terminating(p)).count();
        let ready = active.iter().filter(|p| phase(p) == "Running").count();
        let parallelism = spec["parallelism"].as_u64().unwrap_or(1) as usize;
        let backoff = spec["backoffLimit"].as_u64().unwrap_or(6) as usize;
        let deadline = spec["activeDeadlineSeconds"].as_i64().and_then(|s| {
            let start = chrono::DateTime::parse_from_rfc3339(status["startTime"].as_str()?).ok()?;
            Some(start.with_timezone(&chrono::Utc) + chrono::Duration::seconds(s))
        });
        let on_failure_restarts: u64 = if spec["template"]["spec"]["restartPolicy"] == "OnFailure" {
            active.iter().map(|p| restarts(p)).sum()
        } else {
            0
        };

        if outcome.is_none() {
            outcome = self.decide(
                spec,
                &completed,
                &failed_indexes,
                (succeeded, failed, backoff, limit),
                active.is_empty(),
                on_failure_restarts,
                deadline.is_some_and(|d| d <= now_wall),
            );
        }
        status["succeeded"] = json!(succeeded);
        status["failed"] = json!(failed);
        status["terminating"] = json!(terminating);
        status["uncountedTerminatedPods"] = json!({});
        if indexed {
            status["completedIndexes"] = json!(format_indexes(&completed));
        }
        if per_index.is_some() {
            status["failedIndexes"] = json!(format_indexes(&failed_indexes));
        }
        match outcome {
            Some(Outcome::Failed(reason, message)) => {
                // The pods it terminates count as failed, as the real
                // controller counts them once the Job has failed.
                for p in &active {
                    self.remove_pod(ns, p);
                }
                status["failed"] = json!(failed + active.len());
                status["active"] = json!(0);
                status["ready"] = json!(0);
                status["terminating"] = json!(terminating + active.len());
                set_condition(&mut status, "FailureTarget", true, reason, &message);
                set_condition(&mut status, "Failed", true, reason, &message);
                self.event(job, "Warning", reason, &message);
            }
            Some(Outcome::Succeeded(reason, message)) => {
                for p in &active {
                    self.remove_pod(ns, p);
                }
                status["active"] = json!(0);
                status["ready"] = json!(0);
                status["terminating"] = json!(terminating + active.len());
                status["completionTime"] = json!(now_rfc3339());
                set_condition(&mut status, "SuccessCriteriaMet", true, reason, &message);
                set_condition(&mut status, "Complete", true, reason, &message);
                self.event(job, "Normal", "Completed", "Job completed");
            }
            None => {
                let busy = if failed_only { terminating } else { 0 };
                let created = self.create_pods(
                    ns,
                    job,
                    pods,
                    &active,
                    busy,
                    (&completed, &failed_indexes),
                    (succeeded, failed, parallelism),
                );
                status["active"] = json!(created);
                status["ready"] = json!(ready);
                if let Some(d) = deadline {
                    let wait = (d - now_wall).to_std().unwrap_or_default();
                    self.timer(Instant::now() + wait, key);
                }
            }
        }
        // The write's MODIFIED event brings the Job back here, which arms
        // the TTL timer once it has finished.
        self.write_status(ns, &name, status);
    }

    /// Whether the Job ends now, in the real controller's order.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        spec: &Value,
        completed: &BTreeSet<usize>,
        failed_indexes: &BTreeSet<usize>,
        (succeeded, failed, backoff, limit): (usize, usize, usize, usize),
        none_active: bool,
        on_failure_restarts: u64,
        past_deadline: bool,
    ) -> Option<Outcome> {
        let indexed = spec["completionMode"] == "Indexed";
        if let Some(max) = spec["maxFailedIndexes"].as_u64() {
            if failed_indexes.len() > max as usize {
                return Some(Outcome::Failed(
                    "MaxFailedIndexesExceeded",
                    "Job has exceeded the specified maximal number of failed indexes".into(),
                ));
            }
        }
        if indexed {
            if let Some(i) = spec
                .get("successPolicy")
                .and_then(|p| success_rule(p, completed, limit))
            {
                return Some(Outcome::Succeeded(
                    "SuccessPolicy",
                    format!("Matched rules at index {i}"),
                ));
            }
            if !failed_indexes.is_empty() && completed.len() + failed_indexes.len() >= limit {
                return Some(Outcome::Failed(
                    "FailedIndexes",
                    "Job has failed indexes".into(),
                ));
            }
        }
        let complete = match spec["completions"].as_u64() {
            Some(c) if indexed => completed.len() >= c as usize,
            Some(c) => succeeded >= c as usize,
            None => succeeded > 0 && none_active,
        };
        let reached = "Reached expected number of succeeded pods";
        let past_on_failure = if backoff == 0 {
            on_failure_restarts > 0
        } else {
            on_failure_restarts >= backoff as u64
        };
        if complete {
            Some(Outcome::Succeeded("CompletionsReached", reached.into()))
        } else if failed > backoff || past_on_failure {
            Some(Outcome::Failed(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
            ))
        } else if past_deadline {
            Some(Outcome::Failed(
                "DeadlineExceeded",
                "Job was active longer than specified deadline".into(),
            ))
        } else {
            None
        }
    }

    /// Starts pods up to `parallelism` (never more than the completions
    /// still missing), after the retry back-off; returns the active count.
    #[allow(clippy::too_many_arguments)]
    fn create_pods(
        &mut self,
        ns: &str,
        job: &Value,
        pods: &[Arc<Value>],
        active: &[&Arc<Value>],
        busy: usize,
        (completed, failed_indexes): (&BTreeSet<usize>, &BTreeSet<usize>),
        (succeeded, failed, parallelism): (usize, usize, usize),
    ) -> usize {
        let spec = &job["spec"];
        let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
        let indexed = spec["completionMode"] == "Indexed";
        let completions = spec["completions"].as_u64().map(|c| c as usize);
        let limit = completions.unwrap_or(0);
        // Pods of indexes already done or given up are not needed.
        let mut running: Vec<&Arc<Value>> = Vec::new();
        let mut seen = BTreeSet::new();
        for p in active {
            let keep = match pod_index(p) {
                Some(i) if indexed => {
                    i < limit
                        && !completed.contains(&i)
                        && !failed_indexes.contains(&i)
                        && seen.insert(i)
                }
                _ => true,
            };
            if keep {
                running.push(p);
            } else {
                self.remove_pod(ns, p);
            }
        }
        let want = match completions {
            Some(c) if indexed => {
                parallelism.min(c.saturating_sub(completed.len() + failed_indexes.len()))
            }
            Some(c) => parallelism.min(c.saturating_sub(succeeded)),
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        let missing = want.saturating_sub(running.len() + busy);
        if missing == 0 {
            return running.len();
        }
        // After a failure, a replacement waits out the back-off.
        let now = Instant::now();
        let id = (ns.to_string(), name.clone());
        let last = self.failures.get(&id).copied();
        let since = match last {
            Some((n, at)) if n == failed => at,
            _ => now,
        };
        if last.is_none_or(|(n, _)| n != failed) {
            self.failures.insert(id, (failed, now));
        }
        let ready_at = since + backoff_delay(self.state.config.job_backoff_base, failed);
        if failed > 0 && now < ready_at {
            self.timer(ready_at, (JOBS, ns.into(), name));
            return running.len();
        }
        if !indexed {
            for _ in 0..missing {
                self.create_pod(ns, job, None);
            }
            return running.len() + missing;
        }
        let per_index = spec["backoffLimitPerIndex"].is_u64();
        let taken: BTreeSet<usize> = pods
            .iter()
            .filter(|p| is_active(p) || (busy > 0 && is_terminating(p)))
            .filter_map(|p| pod_index(p))
            .collect();
        let free: Vec<usize> = (0..limit)
            .filter(|i| !completed.contains(i) && !failed_indexes.contains(i) && !taken.contains(i))
            .take(missing)
            .collect();
        for &i in &free {
            let failures = per_index.then(|| {
                pods.iter()
                    .filter(|p| pod_index(p) == Some(i) && phase(p) == "Failed")
                    .map(|p| index_failures(p) + 1)
                    .max()
                    .unwrap_or(0)
            });
            self.create_pod(ns, job, Some((i, failures)));
        }
        running.len() + free.len()
    }
}

/// How often the pod's index had failed before this pod.
fn index_failures(p: &Value) -> usize {
    p["metadata"]["annotations"][INDEX_FAILURES_ANNOTATION]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
