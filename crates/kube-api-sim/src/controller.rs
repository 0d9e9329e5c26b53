//! Job controller and fake kubelet.
//!
//! ```text
//!  store changes ──▶ dirty Jobs/Pods ──▶ reconcile ──▶ store writes
//!        ▲                                   │
//!        └──────────── timers (pod runs out, deadline, TTL) ◀┘
//! ```
//!
//! The controller follows batch/v1: a suspended Job has no pods and a
//! `Suspended` condition; a running Job runs up to `parallelism` pods at once
//! until `completions` have succeeded, retried up to `backoffLimit`, bounded by `activeDeadlineSeconds`, deleted
//! `ttlSecondsAfterFinished` after it ends. The kubelet moves pods
//! Pending → Running → Succeeded/Failed after `sim.orchestrator.dev/run-seconds`
//! with exit code `sim.orchestrator.dev/exit-code` (annotations on the Job or
//! its pod template), and "prints" what the container was given.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::broadcast::error::TryRecvError;

use super::defaults::CONTROLLER_UID_LABEL;
use super::resources::{EVENTS, JOBS, PODS};
use super::selector::{FieldSelector, LabelSelector};
use super::server::SimState;
use super::store::{now_rfc3339, DeleteOptions, Store};

pub const RUN_SECONDS_ANNOTATION: &str = "sim.orchestrator.dev/run-seconds";
pub const EXIT_CODE_ANNOTATION: &str = "sim.orchestrator.dev/exit-code";

type Key = (usize, String, String);

struct Controller {
    state: Arc<SimState>,
    /// When the kubelet first saw each pod, and when it started running.
    seen: HashMap<(String, String), Instant>,
    started: HashMap<(String, String), Instant>,
    timers: BTreeSet<(Instant, Key)>,
    /// Per Job: the failed count last seen and when it last grew (the
    /// retry back-off counts from there).
    failures: HashMap<(String, String), (usize, Instant)>,
}

/// The longest delay before a failed Job pod is replaced.
const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// The retry delay after `failed` failures: `base`, doubled per further
/// failure, capped at 6 minutes.
fn backoff_delay(base: Duration, failed: usize) -> Duration {
    let doublings = failed.saturating_sub(1).min(16) as u32;
    base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// Starts the controller loop on the current runtime.
pub fn spawn(state: Arc<SimState>) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut c = Controller {
            state,
            seen: HashMap::new(),
            started: HashMap::new(),
            timers: BTreeSet::new(),
            failures: HashMap::new(),
        };
        c.run().await
    })
}

fn meta<'a>(o: &'a Value, k: &str) -> &'a str {
    o["metadata"][k].as_str().unwrap_or("")
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

/// Reads a sim annotation from the pod (copied there from the Job).
fn annotation<T: std::str::FromStr>(pod: &Value, key: &str) -> Option<T> {
    pod["metadata"]["annotations"][key]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
}

impl Controller {
    fn store(&self) -> &Store {
        &self.state.store
    }

    async fn run(&mut self) {
        let mut rx = self.state.store.subscribe();
        let mut dirty: BTreeSet<Key> = BTreeSet::new();
        self.resync(&mut dirty);
        loop {
            for key in std::mem::take(&mut dirty) {
                self.reconcile(&key);
            }
            let next = self.timers.first().map(|(t, _)| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(c) => self.mark(&mut dirty, c.res, &c.namespace, &c.object),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync(&mut dirty),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = sleep => {}
            }
            // Batch everything already queued.
            loop {
                match rx.try_recv() {
                    Ok(c) => self.mark(&mut dirty, c.res, &c.namespace, &c.object),
                    Err(TryRecvError::Lagged(_)) => self.resync(&mut dirty),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            while let Some(first) = self.timers.first().cloned() {
                if first.0 > now {
                    break;
                }
                self.timers.remove(&first);
                dirty.insert(first.1);
            }
        }
    }

    fn resync(&mut self, dirty: &mut BTreeSet<Key>) {
        let all = LabelSelector::default();
        let none = FieldSelector::default();
        for res in [JOBS, PODS] {
            if let Ok(page) = self.store().list(res, None, &all, &none, None, None) {
                for o in page.items {
                    dirty.insert((res, meta(&o, "namespace").into(), meta(&o, "name").into()));
                }
            }
        }
    }

    fn mark(&mut self, dirty: &mut BTreeSet<Key>, res: usize, ns: &str, obj: &Value) {
        match res {
            JOBS => {
                dirty.insert((JOBS, ns.into(), meta(obj, "name").into()));
            }
            PODS => {
                dirty.insert((PODS, ns.into(), meta(obj, "name").into()));
                if let Some(owner) = obj["metadata"]["ownerReferences"]
                    .as_array()
                    .and_then(|r| r.iter().find(|o| o["kind"] == "Job"))
                {
                    if let Some(n) = owner["name"].as_str() {
                        dirty.insert((JOBS, ns.into(), n.into()));
                    }
                }
            }
            _ => {}
        }
    }

    fn timer(&mut self, at: Instant, key: Key) {
        self.timers.insert((at, key));
    }

    fn reconcile(&mut self, key: &Key) {
        match key.0 {
            JOBS => self.reconcile_job(&key.1, &key.2),
            PODS => self.kubelet(&key.1, &key.2),
            _ => {}
        }
    }

    fn event(&self, ns: &str, job: &Value, kind: &str, reason: &str, message: &str) {
        let now = now_rfc3339();
        let ev = json!({
            "metadata": {"generateName": format!("{}.", meta(job, "name")), "namespace": ns},
            "involvedObject": {"kind": "Job", "apiVersion": "batch/v1", "namespace": ns,
                "name": meta(job, "name"), "uid": meta(job, "uid")},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "job-controller"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let _ = self.store().create(EVENTS, ns, ev, false);
    }

    fn job_pods(&self, ns: &str, job: &Value) -> Vec<Arc<Value>> {
        let uid = meta(job, "uid");
        let sel =
            LabelSelector::parse(&format!("{CONTROLLER_UID_LABEL}={uid}")).unwrap_or_default();
        self.store()
            .list(PODS, Some(ns), &sel, &FieldSelector::default(), None, None)
            .map(|p| p.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|o| o["uid"] == uid))
            })
            .collect()
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

    fn reconcile_job(&mut self, ns: &str, name: &str) {
        let Ok(job) = self.store().get(JOBS, ns, name) else {
            self.failures.remove(&(ns.to_string(), name.to_string()));
            return;
        };
        if job["metadata"].get("deletionTimestamp").is_some() {
            return;
        }
        let mut status = job["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let key = (JOBS, ns.to_string(), name.to_string());
        let now_wall = chrono::Utc::now();
        if has_condition(&job, "Complete") || has_condition(&job, "Failed") {
            self.failures.remove(&(ns.to_string(), name.to_string()));
            if let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_i64() {
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
                    let due = f.with_timezone(&chrono::Utc) + chrono::Duration::seconds(ttl);
                    if due <= now_wall {
                        let opts = DeleteOptions {
                            propagation: Some("Background".into()),
                            ..Default::default()
                        };
                        let _ = self.store().delete(JOBS, ns, name, &opts);
                    } else {
                        let wait = (due - now_wall).to_std().unwrap_or_default();
                        self.timer(Instant::now() + wait, key);
                    }
                }
            }
            return;
        }
        let pods = self.job_pods(ns, &job);
        let is_active = |p: &Value| {
            matches!(p["status"]["phase"].as_str(), Some("Pending" | "Running"))
                && p["metadata"].get("deletionTimestamp").is_none()
        };
        if job["spec"]["suspend"] == true {
            for p in pods.iter().filter(|p| is_active(p)) {
                self.delete_pod(ns, p);
            }
            if !has_condition(&job, "Suspended") {
                self.event(ns, &job, "Normal", "Suspended", "Job suspended");
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
            self.event(ns, &job, "Normal", "Resumed", "Job resumed");
            status["startTime"] = json!(now_rfc3339());
        }
        if status["startTime"].is_null() {
            status["startTime"] = json!(now_rfc3339());
        }
        let succeeded = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Succeeded")
            .count();
        let failed = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Failed")
            .count();
        let active: Vec<&Arc<Value>> = pods.iter().filter(|p| is_active(p)).collect();
        let ready = active
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        // `completions` unset (with `parallelism` set): the first success
        // completes the Job once its other pods have ended.
        let completions = job["spec"]["completions"].as_u64().map(|c| c as usize);
        let parallelism = job["spec"]["parallelism"].as_u64().unwrap_or(1) as usize;
        let backoff = job["spec"]["backoffLimit"].as_u64().unwrap_or(6) as usize;
        status["succeeded"] = json!(succeeded);
        status["failed"] = json!(failed);
        status["terminating"] = json!(0);
        status["uncountedTerminatedPods"] = json!({});
        let deadline = job["spec"]["activeDeadlineSeconds"].as_i64().and_then(|s| {
            let start = chrono::DateTime::parse_from_rfc3339(status["startTime"].as_str()?).ok()?;
            Some(start.with_timezone(&chrono::Utc) + chrono::Duration::seconds(s))
        });
        let fail = |this: &mut Self, status: &mut Value, reason: &str, msg: &str| {
            // The pods it terminates count as failed, as the real controller
            // counts them.
            for p in &active {
                this.delete_pod(ns, p);
            }
            status["failed"] = json!(failed + active.len());
            status["active"] = json!(0);
            status["ready"] = json!(0);
            set_condition(status, "FailureTarget", true, reason, msg);
            set_condition(status, "Failed", true, reason, msg);
            this.event(ns, &job, "Warning", reason, msg);
        };
        let complete = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        if complete {
            status["active"] = json!(0);
            status["ready"] = json!(0);
            status["completionTime"] = json!(now_rfc3339());
            set_condition(
                &mut status,
                "SuccessCriteriaMet",
                true,
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            set_condition(
                &mut status,
                "Complete",
                true,
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            self.event(ns, &job, "Normal", "Completed", "Job completed");
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
        for k in [RUN_SECONDS_ANNOTATION, EXIT_CODE_ANNOTATION] {
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
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": meta(job, "name"),
                    "uid": meta(job, "uid"), "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": tmpl["spec"].clone(),
        });
        match self.store().create(PODS, ns, pod, false) {
            Ok(p) => self.event(
                ns,
                job,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {}", meta(&p, "name")),
            ),
            Err(e) => self.event(
                ns,
                job,
                "Warning",
                "FailedCreate",
                &format!("Error creating: {e}"),
            ),
        }
    }

    fn kubelet(&mut self, ns: &str, name: &str) {
        let id = (ns.to_string(), name.to_string());
        let Ok(pod) = self.store().get(PODS, ns, name) else {
            self.seen.remove(&id);
            self.started.remove(&id);
            return;
        };
        let key = (PODS, ns.to_string(), name.to_string());
        let cfg = &self.state.config;
        let run = annotation::<f64>(&pod, RUN_SECONDS_ANNOTATION)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(cfg.default_run_seconds);
        let exit = annotation::<i32>(&pod, EXIT_CODE_ANNOTATION).unwrap_or(cfg.default_exit_code);
        let pending = Duration::from_secs_f64(cfg.pending_seconds);
        let now = Instant::now();
        match pod["status"]["phase"].as_str() {
            Some("Pending") => {
                let seen = *self.seen.entry(id.clone()).or_insert(now);
                if now < seen + pending {
                    self.timer(seen + pending, key);
                    return;
                }
                self.start_pod(ns, name, &pod, run, exit);
                self.started.insert(id, now);
                if pod["spec"]["restartPolicy"] != "Always" {
                    self.timer(now + Duration::from_secs_f64(run), key);
                }
            }
            Some("Running") => {
                if pod["spec"]["restartPolicy"] == "Always" {
                    return;
                }
                let started = *self.started.entry(id.clone()).or_insert(now);
                let due = started + Duration::from_secs_f64(run);
                if now < due {
                    self.timer(due, key);
                    return;
                }
                self.finish_pod(ns, name, exit);
                self.seen.remove(&id);
                self.started.remove(&id);
            }
            _ => {}
        }
    }

    fn start_pod(&self, ns: &str, name: &str, pod: &Value, run: f64, exit: i32) {
        let now = now_rfc3339();
        let mut init_statuses = Vec::new();
        for c in pod["spec"]["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let cname = c["name"].as_str().unwrap_or("");
            self.store()
                .append_log(ns, name, cname, describe(self.store(), ns, c, None));
            init_statuses.push(json!({"name": cname, "image": c["image"], "ready": true, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}));
        }
        let mut statuses = Vec::new();
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let cname = c["name"].as_str().unwrap_or("");
            self.store().append_log(
                ns,
                name,
                cname,
                describe(self.store(), ns, c, Some((run, exit))),
            );
            statuses.push(
                json!({"name": cname, "image": c["image"], "imageID": "", "ready": true,
                "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}}),
            );
        }
        let conds: Vec<Value> = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            .iter()
            .map(|t| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now}))
            .collect();
        let _ = self.store().modify(PODS, ns, name, true, false, |cur| {
            let mut n = cur.clone();
            n["status"] = json!({
                "phase": "Running", "conditions": conds, "hostIP": "10.0.0.1", "podIP": "10.244.0.10",
                "startTime": now, "qosClass": cur["status"]["qosClass"].clone(),
                "initContainerStatuses": init_statuses, "containerStatuses": statuses,
            });
            Ok(n)
        });
    }

    fn finish_pod(&self, ns: &str, name: &str, exit: i32) {
        let now = now_rfc3339();
        // The container's last line is written before the pod turns terminal,
        // so a follower that stops at the terminal phase has read it.
        let containers = self
            .store()
            .get(PODS, ns, name)
            .map(|p| {
                p["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for c in containers {
            self.store().append_log(
                ns,
                name,
                &c,
                [format!("[sim] container exited with code {exit}")],
            );
        }
        let _ = self.store().modify(PODS, ns, name, true, false, |cur| {
            let mut n = cur.clone();
            let phase = if exit == 0 { "Succeeded" } else { "Failed" };
            n["status"]["phase"] = json!(phase);
            if let Some(list) = n["status"]["containerStatuses"].as_array_mut() {
                for s in list {
                    let started = s["state"]["running"]["startedAt"].clone();
                    s["ready"] = json!(false);
                    s["started"] = json!(false);
                    s["state"] = json!({"terminated": {"exitCode": exit,
                        "reason": if exit == 0 { "Completed" } else { "Error" },
                        "startedAt": started, "finishedAt": now}});
                }
            }
            if let Some(conds) = n["status"]["conditions"].as_array_mut() {
                for c in conds {
                    if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                        c["status"] = json!("False");
                        c["reason"] = json!("PodCompleted");
                        c["lastTransitionTime"] = json!(now);
                    }
                }
            }
            Ok(n)
        });
    }
}

/// The lines the fake kubelet "prints" for a container: image, the command
/// and args *after* Kubernetes' `$(VAR)` expansion (what the process would
/// get as argv, see [`super::expansion`]), and env *names* (values are
/// never printed).
fn describe(store: &Store, ns: &str, c: &Value, run: Option<(f64, i32)>) -> Vec<String> {
    let env_values = super::expansion::environment(store, ns, c);
    let list = |v: &Value| {
        serde_json::to_string(&super::expansion::expand_list(v, &env_values)).unwrap_or_default()
    };
    let env: Vec<String> = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let n = e["name"].as_str()?;
            let src = if e["valueFrom"]["secretKeyRef"].is_object() {
                " (from secret)"
            } else if e["valueFrom"].is_object() {
                " (from reference)"
            } else {
                ""
            };
            Some(format!("{n}{src}"))
        })
        .collect();
    let env_from: Vec<String> = c["envFrom"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e["secretRef"]["name"]
                .as_str()
                .map(|s| format!("secret/{s}"))
                .or_else(|| {
                    e["configMapRef"]["name"]
                        .as_str()
                        .map(|s| format!("configmap/{s}"))
                })
        })
        .collect();
    let mut out = vec![
        format!(
            "[sim] simulated container {:?}: no process runs",
            c["name"].as_str().unwrap_or("")
        ),
        format!("[sim] image: {}", c["image"].as_str().unwrap_or("")),
        format!("[sim] command: {}", list(&c["command"])),
        format!("[sim] args: {}", list(&c["args"])),
        format!(
            "[sim] workingDir: {}",
            c["workingDir"].as_str().unwrap_or("")
        ),
        format!("[sim] env: {}", env.join(", ")),
    ];
    if !env_from.is_empty() {
        out.push(format!("[sim] envFrom: {}", env_from.join(", ")));
    }
    if let Some((secs, code)) = run {
        out.push(format!(
            "[sim] running for {secs}s, then exiting with code {code}"
        ));
    }
    out
}
