//! The simulated cluster's own components: a Job controller, a scheduler
//! with one fake kubelet, and the namespace controller.
//!
//! ```text
//!  store changes ──▶ dirty Jobs/Pods/Namespaces ──▶ reconcile ──▶ store writes
//!        ▲                                              │
//!        └──────── timers (pod runs out, grace period, deadline, TTL) ◀┘
//! ```
//!
//! The Job controller follows batch/v1 ([`job`]); the scheduler binds every
//! pod to one node and the kubelet moves pods Pending → Running →
//! Succeeded/Failed after `sim.orchestrator.dev/run-seconds` with exit code
//! `sim.orchestrator.dev/exit-code` (annotations on the Job or its pod
//! template), stops deleted pods within their grace period, and records the
//! scheduler's and kubelet's events ([`kubelet`]); Terminating namespaces
//! are emptied and then removed ([`namespace`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::resources::{EVENTS, JOBS, NAMESPACES, PODS};
use super::selector::{FieldSelector, LabelSelector};
use super::server::SimState;
use super::store::{now_rfc3339, Store, Stored};

mod crash;
mod describe;
mod job;
mod job_policy;
mod job_support;
mod kubelet;
mod kueue;
mod namespace;

pub const RUN_SECONDS_ANNOTATION: &str = "sim.orchestrator.dev/run-seconds";
pub const EXIT_CODE_ANNOTATION: &str = "sim.orchestrator.dev/exit-code";
/// Per completion index of an `Indexed` Job: `"1=42,2=3"` (index=value),
/// overriding `run-seconds` / `exit-code` for those indexes.
pub const RUN_SECONDS_BY_INDEX_ANNOTATION: &str = "sim.orchestrator.dev/run-seconds-by-index";
pub const EXIT_CODE_BY_INDEX_ANNOTATION: &str = "sim.orchestrator.dev/exit-code-by-index";
/// How long a simulated container takes to stop after SIGTERM (it is
/// killed when the grace period ends first).
pub const TERMINATION_SECONDS_ANNOTATION: &str = "sim.orchestrator.dev/termination-seconds";
/// A pod condition (type) the kubelet sets, `True`, when the pod fails
/// (e.g. `DisruptionTarget`), for pod failure policies to match.
pub const POD_CONDITION_ANNOTATION: &str = "sim.orchestrator.dev/pod-condition";
/// The finalizer the Job controller keeps on its pods until it has counted
/// them (`batch.kubernetes.io/job-tracking`).
pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The one node pods are scheduled to, and its address.
pub const NODE_NAME: &str = "sim-node";
pub const NODE_IP: &str = "172.18.0.2";

type Key = (usize, String, String);

struct Controller {
    state: Arc<SimState>,
    /// When the kubelet first saw each pod, and when it started running.
    seen: HashMap<(String, String), Instant>,
    started: HashMap<(String, String), Instant>,
    /// Pods whose container crashed (`OnFailure`), and when it restarts.
    restart_at: HashMap<(String, String), Instant>,
    /// The last progress line each running pod printed (`log_every`).
    ticks: HashMap<(String, String), u128>,
    /// Pods being stopped, and when their containers are gone.
    stopping: HashMap<(String, String), (Instant, i32)>,
    timers: BTreeSet<(Instant, Key)>,
    /// Per Job: the failed count last seen and when it last grew (the
    /// retry back-off counts from there).
    failures: HashMap<(String, String), (usize, Instant)>,
    /// Namespaces being deleted.
    terminating: BTreeSet<String>,
    /// The next pod IP (an offset into 10.244.0.0/16).
    next_ip: u32,
    /// The Kueue emulation, when on.
    kueue: Option<kueue::KueueState>,
}

/// Starts the controller loop on the current runtime.
pub fn spawn(state: Arc<SimState>) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut c = Controller {
            state,
            seen: HashMap::new(),
            started: HashMap::new(),
            stopping: HashMap::new(),
            restart_at: HashMap::new(),
            ticks: HashMap::new(),
            timers: BTreeSet::new(),
            failures: HashMap::new(),
            terminating: BTreeSet::new(),
            next_ip: 0,
            kueue: None,
        };
        c.kueue = c.state.config.kueue.clone().map(kueue::KueueState::new);
        c.run().await
    })
}

fn meta<'a>(o: &'a Value, k: &str) -> &'a str {
    o["metadata"][k].as_str().unwrap_or("")
}

fn deleting(o: &Value) -> bool {
    o["metadata"].get("deletionTimestamp").is_some()
}

/// Reads a sim annotation from the pod (copied there from the Job).
fn annotation<T: std::str::FromStr>(pod: &Value, key: &str) -> Option<T> {
    pod["metadata"]["annotations"][key]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
}

/// A sim annotation, with its per-index override for the pod's completion
/// index.
fn indexed_annotation<T: std::str::FromStr>(pod: &Value, key: &str, by_index: &str) -> Option<T> {
    let index = job_policy::pod_index(pod).map(|i| i.to_string());
    let per_index = pod["metadata"]["annotations"][by_index]
        .as_str()
        .and_then(|list| {
            list.split(',').find_map(|pair| {
                let (i, v) = pair.split_once('=')?;
                (Some(i.trim()) == index.as_deref()).then(|| v.trim().parse().ok())?
            })
        });
    per_index.or_else(|| annotation(pod, key))
}

/// Who records an event.
struct Source<'a> {
    component: &'a str,
    host: Option<&'a str>,
}

impl Controller {
    fn store(&self) -> &Store {
        &self.state.store
    }

    async fn run(&mut self) {
        let store = self.state.store.clone();
        store.follow_writes();
        let mut dirty: BTreeSet<Key> = BTreeSet::new();
        self.resync(&mut dirty);
        loop {
            for key in std::mem::take(&mut dirty) {
                self.reconcile(&key);
            }
            self.kueue_admit();
            let next = self.timers.first().map(|(t, _)| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = store.wait_written() => {}
                _ = sleep => {}
            }
            // Everything written meanwhile, in one batch.
            let (written, overflowed) = store.written();
            if overflowed {
                self.resync(&mut dirty);
            }
            for o in written {
                self.mark(&mut dirty, &o);
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
        for res in [NAMESPACES, JOBS, PODS] {
            if let Ok(page) = self.store().list(res, None, &all, &none, None, None) {
                for o in page.items {
                    self.mark(dirty, &o);
                }
            }
        }
    }

    /// Marks what a change to `obj` concerns (read from its index).
    fn mark(&mut self, dirty: &mut BTreeSet<Key>, obj: &Stored) {
        let (ns, name) = (&*obj.namespace, &*obj.name);
        if self.terminating.contains(ns) {
            dirty.insert((NAMESPACES, String::new(), ns.into()));
        }
        match obj.res {
            NAMESPACES if obj.deleting => {
                self.terminating.insert(name.to_string());
                dirty.insert((NAMESPACES, String::new(), name.into()));
            }
            JOBS => {
                dirty.insert((JOBS, ns.into(), name.into()));
            }
            PODS => {
                dirty.insert((PODS, ns.into(), name.into()));
                if let Some(o) = obj.owners.iter().find(|o| &*o.kind == "Job") {
                    dirty.insert((JOBS, ns.into(), o.name.to_string()));
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
            JOBS => {
                // Kueue acts first: a Job it must stop is never started.
                self.kueue_job(&key.1, &key.2);
                self.reconcile_job(&key.1, &key.2)
            }
            PODS => self.kubelet(&key.1, &key.2),
            NAMESPACES => self.reconcile_namespace(&key.2),
            _ => {}
        }
    }

    /// Records an event about `obj` (a `fieldPath` for a container).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        obj: &Value,
        field_path: Option<&str>,
        source: Source<'_>,
        kind: &str,
        reason: &str,
        message: &str,
    ) {
        let ns = meta(obj, "namespace");
        let now = now_rfc3339();
        let mut involved = json!({"kind": obj["kind"], "apiVersion": obj["apiVersion"],
            "namespace": ns, "name": meta(obj, "name"), "uid": meta(obj, "uid"),
            "resourceVersion": meta(obj, "resourceVersion")});
        if let Some(f) = field_path {
            involved["fieldPath"] = json!(f);
        }
        let mut src = json!({"component": source.component});
        if let Some(h) = source.host {
            src["host"] = json!(h);
        }
        let ev = json!({
            "metadata": {"generateName": format!("{}.", meta(obj, "name")), "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": kind,
            "source": src,
            "reportingComponent": source.component,
            "reportingInstance": source.host.unwrap_or(""),
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let _ = self.store().create(EVENTS, ns, ev, false);
    }

    /// An event of the Job controller about a Job.
    fn event(&self, job: &Value, kind: &str, reason: &str, message: &str) {
        let source = Source {
            component: "job-controller",
            host: None,
        };
        self.record(job, None, source, kind, reason, message);
    }
}

/// `secs` seconds after `from`.
fn after(from: Instant, secs: f64) -> Instant {
    from + Duration::from_secs_f64(secs.clamp(0.0, 1e9))
}
