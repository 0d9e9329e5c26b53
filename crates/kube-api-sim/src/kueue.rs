//! An emulation of Kueue's admission of `batch/v1` Jobs, for tests of code
//! that submits Jobs to a Kueue-managed cluster (Kueue itself cannot run
//! in the simulator). Off unless [`crate::SimConfig::kueue`] is set.
//!
//! - The queues of the configuration are served read-only as
//!   `kueue.x-k8s.io/v1beta1` `LocalQueue`s, `ClusterQueue`s,
//!   `WorkloadPriorityClass`es and `ResourceFlavor`s (GET, LIST, WATCH;
//!   writes are `405 MethodNotAllowed`). Queue statuses count the
//!   `pendingWorkloads`, `reservingWorkloads` and `admittedWorkloads`.
//! - A Job with the label `kueue.x-k8s.io/queue-name` is created suspended
//!   (Kueue's webhook); the controller (`controller/kueue.rs`) admits it in
//!   priority order (`kueue.x-k8s.io/priority-class` → the class's value,
//!   unlabelled 0), FIFO within a priority, while its ClusterQueue has fewer
//!   than `quota_jobs` admitted unfinished Jobs: it unsuspends the Job and
//!   merges the flavor's node labels into `spec.template.spec.nodeSelector`
//!   in one write. A Job unsuspended by someone else while not admitted is
//!   suspended again.
//! - Eviction on request ([`crate::SimServer::kueue_evict`] or the
//!   annotation [`EVICT_ANNOTATION`]): the Job is suspended with the
//!   annotation `kueue.x-k8s.io/stopping`, its pods go, `status.startTime`
//!   is cleared, the template is restored, and it queues again.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The label naming a Job's LocalQueue.
pub const QUEUE_NAME_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The label naming a Job's WorkloadPriorityClass.
pub const PRIORITY_CLASS_LABEL: &str = "kueue.x-k8s.io/priority-class";
/// The annotation Kueue sets on a Job while it stops it (eviction).
pub const STOPPING_ANNOTATION: &str = "kueue.x-k8s.io/stopping";
/// Set on a Job (any value) to ask the emulation to evict it; removed when
/// the request is handled. Not Kueue's: the simulator's test hook.
pub const EVICT_ANNOTATION: &str = "sim.orchestrator.dev/kueue-evict";
/// On a ClusterQueue object: its quota in Jobs (the emulation counts Jobs,
/// not resources).
pub const QUOTA_JOBS_ANNOTATION: &str = "sim.orchestrator.dev/quota-jobs";
/// The `reportingComponent` of the emulation's events.
pub const COMPONENT: &str = "kueue-admission";

/// The emulated Kueue installation: its queues, flavors and priority
/// classes, shaped like Kueue's own objects.
///
/// ```
/// use kube_api_sim::kueue::KueueConfig;
/// let kueue = KueueConfig::default()
///     .flavor("gpu-a100", [("cloud.example.com/accelerator", "a100")])
///     .cluster_queue("team-cq", 3, Some("gpu-a100"))
///     .local_queue("default", "team", "team-cq")
///     .priority_class("high", 1000);
/// assert_eq!(kueue.cluster_queues[0].quota_jobs, 3);
/// ```
#[derive(Debug, Clone, Default)]
pub struct KueueConfig {
    pub cluster_queues: Vec<ClusterQueueConfig>,
    pub local_queues: Vec<LocalQueueConfig>,
    pub flavors: Vec<FlavorConfig>,
    /// WorkloadPriorityClass name → value (higher is admitted first).
    pub priority_classes: BTreeMap<String, i32>,
}

/// A ClusterQueue: a quota shared by the LocalQueues that point at it.
#[derive(Debug, Clone)]
pub struct ClusterQueueConfig {
    pub name: String,
    /// The most Jobs admitted and not finished at once.
    pub quota_jobs: u32,
    /// The ResourceFlavor (in [`KueueConfig::flavors`]) admitted Jobs get.
    pub flavor: Option<String>,
}

/// A namespaced LocalQueue, the name Jobs give in `kueue.x-k8s.io/queue-name`.
#[derive(Debug, Clone)]
pub struct LocalQueueConfig {
    pub namespace: String,
    pub name: String,
    pub cluster_queue: String,
}

/// A ResourceFlavor: node labels merged into an admitted Job's pod
/// template as `nodeSelector`.
#[derive(Debug, Clone)]
pub struct FlavorConfig {
    pub name: String,
    pub node_labels: BTreeMap<String, String>,
}

impl KueueConfig {
    /// Adds a ClusterQueue admitting up to `quota_jobs` Jobs at once.
    pub fn cluster_queue(mut self, name: &str, quota_jobs: u32, flavor: Option<&str>) -> Self {
        self.cluster_queues.push(ClusterQueueConfig {
            name: name.into(),
            quota_jobs,
            flavor: flavor.map(str::to_string),
        });
        self
    }

    /// Adds a LocalQueue `namespace/name` feeding `cluster_queue`.
    pub fn local_queue(mut self, namespace: &str, name: &str, cluster_queue: &str) -> Self {
        self.local_queues.push(LocalQueueConfig {
            namespace: namespace.into(),
            name: name.into(),
            cluster_queue: cluster_queue.into(),
        });
        self
    }

    /// Adds a ResourceFlavor with its node labels.
    pub fn flavor<'a>(
        mut self,
        name: &str,
        node_labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.flavors.push(FlavorConfig {
            name: name.into(),
            node_labels: node_labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        self
    }

    /// Adds a WorkloadPriorityClass.
    pub fn priority_class(mut self, name: &str, value: i32) -> Self {
        self.priority_classes.insert(name.into(), value);
        self
    }

    /// Checks references: every LocalQueue's ClusterQueue and every
    /// ClusterQueue's flavor exist, and no name is given twice.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for cq in &self.cluster_queues {
            if !seen.insert(("cq", String::new(), cq.name.clone())) {
                return Err(format!("kueue: ClusterQueue {:?} given twice", cq.name));
            }
            if let Some(f) = &cq.flavor {
                if !self.flavors.iter().any(|x| &x.name == f) {
                    return Err(format!(
                        "kueue: ClusterQueue {:?} names the unknown ResourceFlavor {f:?}",
                        cq.name
                    ));
                }
            }
        }
        for lq in &self.local_queues {
            if !seen.insert(("lq", lq.namespace.clone(), lq.name.clone())) {
                return Err(format!(
                    "kueue: LocalQueue {}/{} given twice",
                    lq.namespace, lq.name
                ));
            }
            if !self
                .cluster_queues
                .iter()
                .any(|c| c.name == lq.cluster_queue)
            {
                return Err(format!(
                    "kueue: LocalQueue {}/{} names the unknown ClusterQueue {:?}",
                    lq.namespace, lq.name, lq.cluster_queue
                ));
            }
        }
        for f in &self.flavors {
            if !seen.insert(("rf", String::new(), f.name.clone())) {
                return Err(format!("kueue: ResourceFlavor {:?} given twice", f.name));
            }
        }
        Ok(())
    }

    pub fn find_local_queue(&self, namespace: &str, name: &str) -> Option<&LocalQueueConfig> {
        self.local_queues
            .iter()
            .find(|q| q.namespace == namespace && q.name == name)
    }

    pub fn find_cluster_queue(&self, name: &str) -> Option<&ClusterQueueConfig> {
        self.cluster_queues.iter().find(|q| q.name == name)
    }

    /// The node labels of a ClusterQueue's flavor (empty without one).
    pub fn node_labels(&self, cluster_queue: &str) -> BTreeMap<String, String> {
        self.find_cluster_queue(cluster_queue)
            .and_then(|c| c.flavor.as_deref())
            .and_then(|f| self.flavors.iter().find(|x| x.name == f))
            .map(|f| f.node_labels.clone())
            .unwrap_or_default()
    }
}

/// Workload counts of a queue's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: u32,
    /// Holding quota (admitted, or being stopped after an eviction).
    pub reserving: u32,
    pub admitted: u32,
}

/// A queue's `status` with these counts.
pub fn queue_status(c: Counts, cluster: bool) -> Value {
    let message = if cluster {
        "Can admit new workloads"
    } else {
        "Can submit new workloads to localQueue"
    };
    json!({
        "pendingWorkloads": c.pending,
        "reservingWorkloads": c.reserving,
        "admittedWorkloads": c.admitted,
        "conditions": [{
            "type": "Active", "status": "True", "reason": "Ready", "message": message,
            "lastTransitionTime": crate::store::now_rfc3339(),
        }],
    })
}

/// The objects the configuration is served as: (resource, namespace, body).
pub fn objects(cfg: &KueueConfig) -> Vec<(usize, String, Value)> {
    use crate::resources::{CLUSTERQUEUES, LOCALQUEUES, RESOURCEFLAVORS, WORKLOADPRIORITYCLASSES};
    let mut out = Vec::new();
    for f in &cfg.flavors {
        out.push((
            RESOURCEFLAVORS,
            String::new(),
            json!({"metadata": {"name": f.name}, "spec": {"nodeLabels": f.node_labels}}),
        ));
    }
    for (name, value) in &cfg.priority_classes {
        out.push((
            WORKLOADPRIORITYCLASSES,
            String::new(),
            json!({"metadata": {"name": name}, "value": value, "description": ""}),
        ));
    }
    for cq in &cfg.cluster_queues {
        let flavors: Vec<Value> = cq
            .flavor
            .iter()
            .map(|f| json!({"name": f, "resources": []}))
            .collect();
        out.push((
            CLUSTERQUEUES,
            String::new(),
            json!({
                "metadata": {"name": cq.name,
                    "annotations": {QUOTA_JOBS_ANNOTATION: cq.quota_jobs.to_string()}},
                "spec": {
                    "namespaceSelector": {},
                    "queueingStrategy": "BestEffortFIFO",
                    "resourceGroups": [{"coveredResources": [], "flavors": flavors}],
                },
                "status": queue_status(Counts::default(), true),
            }),
        ));
    }
    for lq in &cfg.local_queues {
        out.push((
            LOCALQUEUES,
            lq.namespace.clone(),
            json!({
                "metadata": {"name": lq.name, "namespace": lq.namespace},
                "spec": {"clusterQueue": lq.cluster_queue},
                "status": queue_status(Counts::default(), false),
            }),
        ));
    }
    out
}

/// Kueue's webhook on create: a Job with a queue name starts suspended.
pub fn on_job_create(job: &mut Value) {
    let queued = job["metadata"]["labels"][QUEUE_NAME_LABEL]
        .as_str()
        .is_some_and(|q| !q.is_empty());
    if queued && job["spec"].is_object() {
        job["spec"]["suspend"] = json!(true);
    }
}

/// `job-<name>-<hash>`: how Kueue names a Job's Workload (the hash here
/// is the simulator's own, five hex digits of the Job's uid).
pub fn workload_name(job_name: &str, uid: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in uid.bytes().chain(job_name.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let prefix: String = job_name.chars().take(63 - 4 - 6).collect();
    format!("job-{prefix}-{:05x}", h & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked() {
        let ok = KueueConfig::default()
            .flavor("f", [("a", "b")])
            .cluster_queue("cq", 1, Some("f"))
            .local_queue("default", "lq", "cq");
        assert!(ok.validate().is_ok());
        assert_eq!(ok.node_labels("cq").get("a").map(String::as_str), Some("b"));
        let bad = ok.clone().local_queue("default", "x", "nope");
        assert!(bad.validate().unwrap_err().contains("unknown ClusterQueue"));
        let bad = KueueConfig::default().cluster_queue("cq", 1, Some("nope"));
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("unknown ResourceFlavor"));
        assert_eq!(objects(&ok).len(), 3);
    }

    #[test]
    fn the_webhook_suspends_queued_jobs_only() {
        let mut j =
            json!({"metadata": {"labels": {QUEUE_NAME_LABEL: "lq"}}, "spec": {"suspend": false}});
        on_job_create(&mut j);
        assert_eq!(j["spec"]["suspend"], true);
        let mut j = json!({"metadata": {}, "spec": {}});
        on_job_create(&mut j);
        assert!(j["spec"].get("suspend").is_none());
        let n = workload_name("hello", "uid-1");
        assert!(
            n.starts_with("job-hello-") && n.len() == "job-hello-".len() + 5,
            "{n}"
        );
    }
}
