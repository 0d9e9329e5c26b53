//! The Kueue emulation's controller (see [`crate::kueue`]): one workload per
//! queued Job, kept in memory (no `Workload` objects), admitted in priority
//! order up to each ClusterQueue's quota of Jobs, evicted on request.
//!
//! A Job's workload goes Pending → Admitted (unsuspended, flavor node
//! labels merged into its pod template) → Finished (the Job completed or
//! failed; its quota is free), or Admitted → Stopping (evicted: suspended
//! with `kueue.x-k8s.io/stopping` until its pods are gone, then its
//! `startTime` is cleared and its template restored) → Pending again, at
//! the back of its priority.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::job_support::{has_condition, is_active, is_terminating};
use super::{deleting, meta, Controller, Source};
use crate::error::ApiError;
use crate::kueue::{
    queue_status, workload_name, Counts, KueueConfig, COMPONENT, EVICT_ANNOTATION,
    PRIORITY_CLASS_LABEL, QUEUE_NAME_LABEL, STOPPING_ANNOTATION,
};
use crate::resources::{CLUSTERQUEUES, JOBS, LOCALQUEUES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No Workload could be made (an unknown priority class): Kueue leaves
    /// the Job alone.
    NoWorkload,
    Pending,
    Admitted,
    /// Evicted; holds its quota until the Job's pods are gone.
    Stopping,
    Finished,
}

#[derive(Debug)]
struct Workload {
    uid: String,
    local_queue: String,
    /// `None`: the LocalQueue does not exist (never admitted).
    cluster_queue: Option<String>,
    priority: i32,
    /// Queue order within a priority (creation, or the last eviction).
    seq: u64,
    phase: Phase,
    /// The nodeSelector entries admission added (removed on eviction).
    added: BTreeMap<String, String>,
}

/// The emulation's state inside the controller.
pub(super) struct KueueState {
    cfg: KueueConfig,
    workloads: BTreeMap<(String, String), Workload>,
    seq: u64,
}

impl KueueState {
    pub(super) fn new(cfg: KueueConfig) -> Self {
        KueueState {
            cfg,
            workloads: BTreeMap::new(),
            seq: 0,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"][key]
        .as_str()
        .filter(|s| !s.is_empty())
}

fn finished(job: &Value) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

fn remove_annotation(job: &mut Value, key: &str) {
    if let Some(m) = job["metadata"]["annotations"].as_object_mut() {
        m.remove(key);
    }
}

impl Controller {
    /// An event of the emulation about a Job.
    fn kueue_event(&self, job: &Value, kind: &str, reason: &str, message: &str) {
        let source = Source {
            component: COMPONENT,
            host: None,
        };
        self.record(job, None, source, kind, reason, message);
    }

    /// A Job changed: keep its workload in step.
    pub(super) fn kueue_job(&mut self, ns: &str, name: &str) {
        let Some(mut kq) = self.kueue.take() else {
            return;
        };
        self.kueue_job_in(&mut kq, ns, name);
        self.kueue = Some(kq);
    }

    fn kueue_job_in(&mut self, kq: &mut KueueState, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        let job = match self.store().get(JOBS, ns, name) {
            Ok(j) if !deleting(&j) => j,
            _ => {
                kq.workloads.remove(&key);
                return;
            }
        };
        let Some(lq) = label(&job, QUEUE_NAME_LABEL) else {
            kq.workloads.remove(&key);
            return;
        };
        let uid = meta(&job, "uid");
        if kq.workloads.get(&key).is_none_or(|w| w.uid != uid) {
            let wl = self.new_workload(kq, &job, ns, lq);
            kq.workloads.insert(key.clone(), wl);
        }
        let Some(wl) = kq.workloads.get_mut(&key) else {
            return;
        };
        // The queue name may change while the Job waits.
        if wl.phase == Phase::Pending && wl.local_queue != lq {
            wl.local_queue = lq.to_string();
            wl.cluster_queue = kq
                .cfg
                .find_local_queue(ns, lq)
                .map(|q| q.cluster_queue.clone());
        }
        let evict = job["metadata"]["annotations"]
            .get(EVICT_ANNOTATION)
            .is_some();
        if finished(&job) {
            if wl.phase != Phase::NoWorkload {
                wl.phase = Phase::Finished;
            }
            if evict {
                self.write_job(ns, name, |j| remove_annotation(j, EVICT_ANNOTATION));
            }
            return;
        }
        let suspended = job["spec"]["suspend"] == true;
        match wl.phase {
            Phase::NoWorkload | Phase::Finished => {
                if evict {
                    self.write_job(ns, name, |j| remove_annotation(j, EVICT_ANNOTATION));
                }
            }
            Phase::Pending => {
                if !suspended {
                    let ok = self.write_job(ns, name, |j| {
                        j["spec"]["suspend"] = json!(true);
                        remove_annotation(j, EVICT_ANNOTATION);
                    });
                    if ok {
                        self.kueue_event(
                            &job,
                            "Normal",
                            "Stopped",
                            "Not admitted by cluster queue",
                        );
                    }
                } else if evict {
                    self.write_job(ns, name, |j| remove_annotation(j, EVICT_ANNOTATION));
                }
            }
            Phase::Admitted if evict => {
                let ok = self.write_job(ns, name, |j| {
                    j["spec"]["suspend"] = json!(true);
                    remove_annotation(j, EVICT_ANNOTATION);
                    if !j["metadata"]["annotations"].is_object() {
                        j["metadata"]["annotations"] = json!({});
                    }
                    j["metadata"]["annotations"][STOPPING_ANNOTATION] = json!("true");
                });
                if ok {
                    wl.phase = Phase::Stopping;
                    self.kueue_event(
                        &job,
                        "Normal",
                        "Stopped",
                        "Evicted: evicted on request (the simulator's kueue_evict)",
                    );
                }
            }
            Phase::Admitted => {
                if suspended {
                    // Kueue starts an admitted Job that is suspended.
                    let labels = wl
                        .cluster_queue
                        .as_deref()
                        .map(|c| kq.cfg.node_labels(c))
                        .unwrap_or_default();
                    let _ = self.start_job(ns, name, &labels);
                }
            }
            Phase::Stopping => self.finish_stopping(ns, name, &job, wl, suspended),
        }
        // A requeued workload goes to the back of its priority.
        if kq
            .workloads
            .get(&key)
            .is_some_and(|w| w.phase == Phase::Pending && w.seq == 0)
        {
            let seq = kq.next_seq();
            if let Some(w) = kq.workloads.get_mut(&key) {
                w.seq = seq;
            }
        }
    }

    /// The workload Kueue makes for a Job it sees for the first time.
    fn new_workload(&self, kq: &mut KueueState, job: &Value, ns: &str, lq: &str) -> Workload {
        let mut wl = Workload {
            uid: meta(job, "uid").to_string(),
            local_queue: lq.to_string(),
            cluster_queue: kq
                .cfg
                .find_local_queue(ns, lq)
                .map(|q| q.cluster_queue.clone()),
            priority: 0,
            seq: kq.next_seq(),
            phase: Phase::Pending,
            added: BTreeMap::new(),
        };
        if let Some(pc) = label(job, PRIORITY_CLASS_LABEL) {
            match kq.cfg.priority_classes.get(pc) {
                Some(v) => wl.priority = *v,
                None => {
                    wl.phase = Phase::NoWorkload;
                    if !finished(job) {
                        self.kueue_event(
                            job,
                            "Warning",
                            "ErrWorkloadCompose",
                            &format!("workloadpriorityclasses.kueue.x-k8s.io {pc:?} not found"),
                        );
                    }
                    return wl;
                }
            }
        }
        if finished(job) {
            wl.phase = Phase::Finished;
            return wl;
        }
        let name = meta(job, "name");
        self.kueue_event(
            job,
            "Normal",
            "CreatedWorkload",
            &format!(
                "Created Workload: {ns}/{}",
                workload_name(name, meta(job, "uid"))
            ),
        );
        if wl.cluster_queue.is_none() {
            self.kueue_event(
                job,
                "Warning",
                "Inadmissible",
                &format!("LocalQueue {lq} doesn't exist"),
            );
        }
        wl
    }

    /// Eviction, second half: once the Job is suspended and its pods are
    /// gone, clear `startTime`, restore the template, drop the stopping
    /// annotation and queue the workload again.
    fn finish_stopping(
        &mut self,
        ns: &str,
        name: &str,
        job: &Value,
        wl: &mut Workload,
        suspended: bool,
    ) {
        if !suspended {
            self.write_job(ns, name, |j| j["spec"]["suspend"] = json!(true));
            return;
        }
        let pods_left = self
            .job_pods(ns, job)
            .iter()
            .any(|p| is_active(p) || is_terminating(p));
        if !has_condition(job, "Suspended") || pods_left {
            return;
        }
        if job["status"].get("startTime").is_some() {
            let _ = self.store().modify(JOBS, ns, name, true, false, |cur| {
                let mut status = cur["status"].clone();
                if let Some(m) = status.as_object_mut() {
                    m.remove("startTime");
                }
                Ok(json!({ "status": status }))
            });
        }
        let added = std::mem::take(&mut wl.added);
        let ok = self.write_job(ns, name, |j| {
            remove_annotation(j, STOPPING_ANNOTATION);
            let sel = &mut j["spec"]["template"]["spec"]["nodeSelector"];
            if let Some(m) = sel.as_object_mut() {
                for (k, v) in &added {
                    if m.get(k).and_then(Value::as_str) == Some(v.as_str()) {
                        m.remove(k);
                    }
                }
                if m.is_empty() {
                    if let Some(spec) = j["spec"]["template"]["spec"].as_object_mut() {
                        spec.remove("nodeSelector");
                    }
                }
            }
        });
        if ok {
            wl.phase = Phase::Pending;
            wl.seq = 0; // a new place at the back, set by the caller
        } else {
            wl.added = added;
        }
    }

    /// Writes a Job through the API's update path (validated); false on
    /// failure.
    fn write_job(&self, ns: &str, name: &str, f: impl FnOnce(&mut Value)) -> bool {
        self.store()
            .modify(JOBS, ns, name, false, false, |cur| {
                let mut j = cur.clone();
                f(&mut j);
                Ok(j)
            })
            .is_ok()
    }

    /// Unsuspends a Job with `labels` merged into its pod template's
    /// `nodeSelector`, in one write. Returns the entries it added, or why
    /// it could not.
    fn start_job(
        &self,
        ns: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut added = BTreeMap::new();
        let r = self.store().modify(JOBS, ns, name, false, false, |cur| {
            let mut j = cur.clone();
            let spec = &mut j["spec"]["template"]["spec"];
            if !spec["nodeSelector"].is_object() && !labels.is_empty() {
                spec["nodeSelector"] = json!({});
            }
            for (k, v) in labels {
                match spec["nodeSelector"][k].as_str() {
                    Some(old) if old == v => {}
                    Some(old) => {
                        return Err(ApiError::bad_request(format!(
                            "conflict for nodeSelector {k:?}: the Job has {old:?}, the flavor {v:?}"
                        )))
                    }
                    None => {
                        spec["nodeSelector"][k] = json!(v);
                        added.insert(k.clone(), v.clone());
                    }
                }
            }
            j["spec"]["suspend"] = json!(false);
            Ok(j)
        });
        match r {
            Ok(_) => Ok(added),
            Err(e) => Err(e.message),
        }
    }

    /// Admits pending workloads while their ClusterQueue has quota, then
    /// brings the queues' status counts up to date.
    pub(super) fn kueue_admit(&mut self) {
        let Some(mut kq) = self.kueue.take() else {
            return;
        };
        let queues = kq.cfg.cluster_queues.clone();
        for cq in &queues {
            let in_cq = |w: &Workload| w.cluster_queue.as_deref() == Some(cq.name.as_str());
            let mut used = kq
                .workloads
                .values()
                .filter(|w| in_cq(w) && matches!(w.phase, Phase::Admitted | Phase::Stopping))
                .count();
            let mut pending: Vec<(i32, u64, (String, String))> = kq
                .workloads
                .iter()
                .filter(|(_, w)| in_cq(w) && w.phase == Phase::Pending)
                .map(|(k, w)| (-w.priority, w.seq, k.clone()))
                .collect();
            pending.sort();
            let labels = kq.cfg.node_labels(&cq.name);
            for (_, _, (ns, name)) in pending {
                if used >= cq.quota_jobs as usize {
                    break;
                }
                let Ok(job) = self.store().get(JOBS, &ns, &name) else {
                    continue;
                };
                if finished(&job) || deleting(&job) {
                    continue;
                }
                let Some(wl) = kq.workloads.get_mut(&(ns.clone(), name.clone())) else {
                    continue;
                };
                match self.start_job(&ns, &name, &labels) {
                    Ok(added) => {
                        wl.phase = Phase::Admitted;
                        wl.added = added;
                        used += 1;
                        self.kueue_event(
                            &job,
                            "Normal",
                            "Started",
                            &format!("Admitted by clusterQueue {}", cq.name),
                        );
                    }
                    Err(why) => {
                        // A permanent error: the workload ends as failed
                        // to start.
                        wl.phase = Phase::Finished;
                        self.kueue_event(
                            &job,
                            "Warning",
                            "FailedToStart",
                            &format!("Invalid admission: {why}"),
                        );
                    }
                }
            }
        }
        self.kueue_status(&kq);
        self.kueue = Some(kq);
    }

    /// Writes the LocalQueue and ClusterQueue workload counts (only when
    /// they changed).
    fn kueue_status(&self, kq: &KueueState) {
        type Pred<'a> = &'a dyn Fn(&str, &Workload) -> bool;
        let count = |f: Pred<'_>| {
            let mut c = Counts::default();
            for ((ns, _), w) in &kq.workloads {
                if !f(ns, w) {
                    continue;
                }
                match w.phase {
                    Phase::Pending => c.pending += 1,
                    Phase::Admitted => {
                        c.reserving += 1;
                        c.admitted += 1;
                    }
                    Phase::Stopping => c.reserving += 1,
                    Phase::NoWorkload | Phase::Finished => {}
                }
            }
            c
        };
        let write = |res: usize, ns: &str, name: &str, c: Counts, cluster: bool| {
            self.store().system_write(res, ns, name, |o| {
                if !o["status"].is_object() {
                    o["status"] = queue_status(c, cluster);
                }
                o["status"]["pendingWorkloads"] = json!(c.pending);
                o["status"]["reservingWorkloads"] = json!(c.reserving);
                o["status"]["admittedWorkloads"] = json!(c.admitted);
            });
        };
        for lq in &kq.cfg.local_queues {
            let c = count(&|ns: &str, w: &Workload| {
                ns == lq.namespace && w.local_queue == lq.name && w.cluster_queue.is_some()
            });
            write(LOCALQUEUES, &lq.namespace, &lq.name, c, false);
        }
        for cq in &kq.cfg.cluster_queues {
            let c = count(&|_: &str, w: &Workload| {
                w.cluster_queue.as_deref() == Some(cq.name.as_str())
            });
            write(CLUSTERQUEUES, "", &cq.name, c, true);
        }
    }
}
