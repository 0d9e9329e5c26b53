//! The scheduler and the one fake kubelet.
//!
//! The scheduler binds each unscheduled pod to [`NODE_NAME`] (`Scheduled`:
//! "Successfully assigned ns/pod to node", pkg/scheduler/schedule_one.go).
//! After `pending_seconds` the kubelet starts the pod with an IP of its own
//! and records, per container, `Pulled` (`Container image "…" already
//! present on machine`, or `Pulling`/`Pulled` for `imagePullPolicy:
//! Always`), `Created` (`Created container: c`) and `Started` (`Started
//! container c`), as pkg/kubelet/images and kuberuntime_container.go word
//! them. A deleted pod gets `Killing` (`Stopping container c`); its
//! containers stop after `sim.orchestrator.dev/termination-seconds` (or
//! `SimConfig::termination_seconds`) or are killed when the grace period
//! ends, whichever is first; then the kubelet deletes it with grace 0.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::crash::crash_delay;
use super::describe::describe;
use super::{
    after, annotation, deleting, indexed_annotation, job_support, Controller, Source,
    EXIT_CODE_ANNOTATION, EXIT_CODE_BY_INDEX_ANNOTATION, NODE_IP, NODE_NAME,
    POD_CONDITION_ANNOTATION, RUN_SECONDS_ANNOTATION, RUN_SECONDS_BY_INDEX_ANNOTATION,
    TERMINATION_SECONDS_ANNOTATION,
};
use crate::resources::{JOBS, PODS};
use crate::store::{now_rfc3339, DeleteOptions};

pub(super) const KUBELET: Source<'static> = Source {
    component: "kubelet",
    host: Some(NODE_NAME),
};

/// Exit codes of a process ended by SIGTERM and by SIGKILL.
const SIGTERM_EXIT: i32 = 143;
const SIGKILL_EXIT: i32 = 137;

pub(super) fn containers(pod: &Value, field: &str) -> Vec<Value> {
    pod["spec"][field].as_array().cloned().unwrap_or_default()
}

impl Controller {
    pub(super) fn kubelet(&mut self, ns: &str, name: &str) {
        let id = (ns.to_string(), name.to_string());
        let Ok(pod) = self.store().get(PODS, ns, name) else {
            self.seen.remove(&id);
            self.started.remove(&id);
            self.stopping.remove(&id);
            self.restart_at.remove(&id);
            self.ticks.remove(&id);
            return;
        };
        self.release_orphan(ns, &pod);
        if deleting(&pod) {
            return self.stop(ns, name, &pod);
        }
        let key = (PODS, ns.to_string(), name.to_string());
        let cfg = &self.state.config;
        let run = indexed_annotation::<f64>(
            &pod,
            RUN_SECONDS_ANNOTATION,
            RUN_SECONDS_BY_INDEX_ANNOTATION,
        )
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(cfg.default_run_seconds);
        let exit =
            indexed_annotation::<i32>(&pod, EXIT_CODE_ANNOTATION, EXIT_CODE_BY_INDEX_ANNOTATION)
                .unwrap_or(cfg.default_exit_code);
        let pending = Duration::from_secs_f64(cfg.pending_seconds);
        let now = Instant::now();
        match pod["status"]["phase"].as_str() {
            Some("Pending") => {
                if pod["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
                    return self.schedule(ns, name, &pod);
                }
                let seen = *self.seen.entry(id.clone()).or_insert(now);
                if now < seen + pending {
                    self.timer(seen + pending, key);
                    return;
                }
                self.start_pod(ns, name, &pod, run, exit);
                self.started.insert(id, now);
                if pod["spec"]["restartPolicy"] != "Always" {
                    self.timer(after(now, run), key);
                }
            }
            Some("Running") => {
                if pod["spec"]["restartPolicy"] == "Always" {
                    return;
                }
                if let Some(at) = self.restart_at.get(&id).copied() {
                    if now < at {
                        self.timer(at, key);
                        return;
                    }
                    self.restart_at.remove(&id);
                    self.restart_containers(ns, name, &pod, run, exit);
                    self.started.insert(id, now);
                    self.timer(after(now, run), key);
                    return;
                }
                let started = *self.started.entry(id.clone()).or_insert(now);
                let due = after(started, run);
                if now < due {
                    let next = match self.state.config.log_every {
                        Some(every) if !every.is_zero() => {
                            self.tick_log(ns, name, &pod, started, now, every);
                            due.min(now + every)
                        }
                        _ => due,
                    };
                    self.timer(next, key);
                    return;
                }
                if exit != 0 && pod["spec"]["restartPolicy"] == "OnFailure" {
                    // The kubelet restarts the container in the same pod
                    // after its crash-loop back-off.
                    let restarts = job_support::restarts(&pod).min(16) as u32;
                    let delay = crash_delay(self.state.config.crash_loop_backoff_base, restarts);
                    self.crash(ns, name, &pod, exit, delay);
                    self.started.remove(&id);
                    self.restart_at.insert(id, now + delay);
                    self.timer(now + delay, key);
                    return;
                }
                self.finish_pod(ns, name, exit);
                self.seen.remove(&id);
                self.started.remove(&id);
                self.ticks.remove(&id);
            }
            _ => {}
        }
    }

    /// Prints the running containers' progress line (`log_every`): tick N
    /// is the Nth interval since the containers started.
    fn tick_log(
        &mut self,
        ns: &str,
        name: &str,
        pod: &Value,
        started: Instant,
        now: Instant,
        every: Duration,
    ) {
        let tick = now.duration_since(started).as_nanos() / every.as_nanos().max(1);
        let id = (ns.to_string(), name.to_string());
        if tick == 0 || self.ticks.get(&id) == Some(&tick) {
            return;
        }
        self.ticks.insert(id, tick);
        for c in containers(pod, "containers") {
            if let Some(cname) = c["name"].as_str() {
                self.store()
                    .append_log(ns, name, cname, [format!("[sim] working: tick {tick}")]);
            }
        }
    }

    /// A Job pod whose Job is gone (or going) loses the tracking finalizer,
    /// as the Job controller releases orphans.
    fn release_orphan(&self, ns: &str, pod: &Value) {
        if !job_support::tracked(pod) {
            return;
        }
        let Some(owner) = job_support::owner(pod) else {
            return;
        };
        let name = owner["name"].as_str().unwrap_or("");
        let alive = self
            .store()
            .get(JOBS, ns, name)
            .is_ok_and(|j| j["metadata"]["uid"] == owner["uid"] && !deleting(&j));
        if !alive {
            self.untrack(ns, pod);
        }
    }

    /// The scheduler's binding: `spec.nodeName`, the `PodScheduled`
    /// condition and the `Scheduled` event.
    fn schedule(&mut self, ns: &str, name: &str, pod: &Value) {
        let now = now_rfc3339();
        let bound = self.store().system_write(PODS, ns, name, |p| {
            p["spec"]["nodeName"] = json!(NODE_NAME);
            p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True",
                "lastProbeTime": null, "lastTransitionTime": now}]);
        });
        if bound.is_some() {
            let source = Source {
                component: "default-scheduler",
                host: None,
            };
            let msg = format!("Successfully assigned {ns}/{name} to {NODE_NAME}");
            self.record(pod, None, source, "Normal", "Scheduled", &msg);
        }
    }

    /// The next pod IP in 10.244.0.0/16 (distinct for 64,000 pods).
    fn pod_ip(&mut self) -> String {
        let n = self.next_ip;
        self.next_ip = (n + 1) % (250 * 256);
        format!("10.244.{}.{}", n / 250, n % 250 + 2)
    }

    pub(super) fn container_events(&self, pod: &Value, field: &str, c: &Value) {
        let cname = c["name"].as_str().unwrap_or("");
        let image = c["image"].as_str().unwrap_or("");
        let path = format!("spec.{field}{{{cname}}}");
        let ev = |reason: &str, msg: &str| {
            self.record(pod, Some(&path), KUBELET, "Normal", reason, msg);
        };
        if c["imagePullPolicy"] == "Always" {
            ev("Pulling", &format!("Pulling image {image:?}"));
            ev(
                "Pulled",
                &format!("Successfully pulled image {image:?} in 0s (0s including waiting). Image size: 0 bytes."),
            );
        } else {
            ev(
                "Pulled",
                &format!("Container image {image:?} already present on machine"),
            );
        }
        ev("Created", &format!("Created container: {cname}"));
        ev("Started", &format!("Started container {cname}"));
    }

    /// Runs the pod's app containers (their kubelet events and log, ending
    /// in `exit` after `run` seconds) and returns them.
    pub(super) fn run_containers(
        &self,
        ns: &str,
        name: &str,
        pod: &Value,
        run: f64,
        exit: i32,
    ) -> Vec<Value> {
        let list = containers(pod, "containers");
        for c in &list {
            let cname = c["name"].as_str().unwrap_or("");
            self.container_events(pod, "containers", c);
            self.store().append_log(
                ns,
                name,
                cname,
                describe(self.store(), pod, c, Some((run, exit))),
            );
        }
        list
    }

    fn start_pod(&mut self, ns: &str, name: &str, pod: &Value, run: f64, exit: i32) {
        let now = now_rfc3339();
        let ip = self.pod_ip();
        let mut init_statuses = Vec::new();
        for c in containers(pod, "initContainers") {
            let cname = c["name"].as_str().unwrap_or("");
            self.container_events(pod, "initContainers", &c);
            self.store()
                .append_log(ns, name, cname, describe(self.store(), pod, &c, None));
            init_statuses.push(json!({"name": cname, "image": c["image"], "ready": true, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}));
        }
        let statuses: Vec<Value> = self
            .run_containers(ns, name, pod, run, exit)
            .iter()
            .map(|c| {
                json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true,
                "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let conds: Vec<Value> = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            .iter()
            .map(|t| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now}))
            .collect();
        let _ = self.store().modify(PODS, ns, name, true, false, |cur| {
            let mut n = cur.clone();
            n["status"] = json!({
                "phase": "Running", "conditions": conds,
                "hostIP": NODE_IP, "hostIPs": [{"ip": NODE_IP}],
                "podIP": ip, "podIPs": [{"ip": ip}],
                "startTime": now, "qosClass": cur["status"]["qosClass"].clone(),
                "initContainerStatuses": init_statuses, "containerStatuses": statuses,
            });
            Ok(n)
        });
    }

    /// Ends the pod's containers with `exit`.
    fn finish_pod(&self, ns: &str, name: &str, exit: i32) {
        let now = now_rfc3339();
        // The container's last line is written before the pod turns terminal,
        // so a follower that stops at the terminal phase has read it.
        let names: Vec<String> = self
            .store()
            .get(PODS, ns, name)
            .map(|p| {
                containers(&p, "containers")
                    .iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let last_lines = &self.state.config.final_output;
        for c in names {
            self.store().append_log(
                ns,
                name,
                &c,
                last_lines
                    .iter()
                    .cloned()
                    .chain([format!("[sim] container exited with code {exit}")]),
            );
        }
        let _ = self.store().modify(PODS, ns, name, true, false, |cur| {
            let mut n = cur.clone();
            let condition = annotation::<String>(cur, POD_CONDITION_ANNOTATION);
            let phase = if exit == 0 { "Succeeded" } else { "Failed" };
            n["status"]["phase"] = json!(phase);
            if let Some(list) = n["status"]["containerStatuses"].as_array_mut() {
                for s in list {
                    let started = s["state"]["running"]["startedAt"].clone();
                    s["ready"] = json!(false);
                    s["started"] = json!(false);
                    let reason = if exit == 0 { "Completed" } else { "Error" };
                    s["state"] = json!({"terminated": {"exitCode": exit, "reason": reason,
                        "startedAt": started, "finishedAt": now}});
                }
            }
            if let Some(conds) = n["status"]["conditions"].as_array_mut() {
                for c in conds.iter_mut() {
                    if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                        c["status"] = json!("False");
                        c["reason"] = json!("PodCompleted");
                        c["lastTransitionTime"] = json!(now);
                    }
                }
                if let Some(kind) = condition.as_deref().filter(|_| exit != 0) {
                    conds.push(json!({"type": kind, "status": "True",
                        "reason": "TerminationByKubelet",
                        "message": "Pod was terminated by the simulated kubelet",
                        "lastProbeTime": null, "lastTransitionTime": now}));
                }
            }
            Ok(n)
        });
    }

    /// A pod being deleted: stop its containers (SIGTERM, then SIGKILL at
    /// the end of the grace period), then delete it for good.
    fn stop(&mut self, ns: &str, name: &str, pod: &Value) {
        let id = (ns.to_string(), name.to_string());
        let key = (PODS, ns.to_string(), name.to_string());
        let grace = pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0);
        let running = pod["status"]["phase"] == "Running";
        if grace > 0 && running {
            let now = Instant::now();
            let (due, exit) = match self.stopping.get(&id) {
                Some(s) => *s,
                None => {
                    for c in containers(pod, "containers") {
                        let cname = c["name"].as_str().unwrap_or("");
                        let path = format!("spec.containers{{{cname}}}");
                        let msg = format!("Stopping container {cname}");
                        self.record(pod, Some(&path), KUBELET, "Normal", "Killing", &msg);
                    }
                    let takes = annotation::<f64>(pod, TERMINATION_SECONDS_ANNOTATION)
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .unwrap_or(self.state.config.termination_seconds);
                    let (secs, exit) = if takes < grace as f64 {
                        (takes, SIGTERM_EXIT)
                    } else {
                        (grace as f64, SIGKILL_EXIT)
                    };
                    let s = (after(now, secs), exit);
                    self.stopping.insert(id.clone(), s);
                    s
                }
            };
            if now < due {
                self.timer(due, key);
                return;
            }
            self.finish_pod(ns, name, exit);
        }
        self.stopping.remove(&id);
        self.seen.remove(&id);
        self.started.remove(&id);
        if grace > 0 {
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            let _ = self.store().delete(PODS, ns, name, &opts);
        }
    }
}
