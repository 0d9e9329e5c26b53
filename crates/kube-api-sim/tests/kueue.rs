//! The Kueue emulation (`SimConfig::kueue`) through the real `kube` client
//! and `kubectl`: admission in priority order within a ClusterQueue's Job
//! quota, Jobs re-suspended when unsuspended unadmitted, unknown queues and
//! priority classes, eviction and readmission, and the read-only queue
//! objects in discovery. Every wait is bounded.

mod kubectl_support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    PropagationPolicy, WatchEvent, WatchParams,
};
use kube::discovery::{verbs, Discovery, Scope};
use kube::Client;
use kube_api_sim::kueue::{KueueConfig, STOPPING_ANNOTATION};
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

const POOL: &str = "sim.example.com/pool";

fn kueue(quota: u32) -> KueueConfig {
    KueueConfig::default()
        .flavor("spot", [(POOL, "spot")])
        .cluster_queue("team-cq", quota, Some("spot"))
        .local_queue("default", "team", "team-cq")
        .priority_class("high", 1000)
        .priority_class("low", -5)
}

fn config(quota: u32) -> SimConfig {
    SimConfig {
        default_run_seconds: 0.3,
        kueue: Some(kueue(quota)),
        ..SimConfig::default()
    }
}

async fn start(quota: u32) -> (SimServer, Client) {
    let server = SimServer::start_local(config(quota)).expect("simulator starts");
    let client = server.client().await.expect("client");
    (server, client)
}

/// A queued Job (on `queue`, with an optional priority class) whose pods
/// run `run_seconds`; created with `suspend: false` as a user would.
fn job(name: &str, queue: &str, priority: Option<&str>, run_seconds: &str) -> Job {
    let mut labels = json!({"kueue.x-k8s.io/queue-name": queue});
    if let Some(p) = priority {
        labels["kueue.x-k8s.io/priority-class"] = json!(p);
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": labels,
            "annotations": {"sim.orchestrator.dev/run-seconds": run_seconds}},
        "spec": {"suspend": false, "backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36"}]}}},
    }))
    .expect("valid job")
}

async fn bounded<T>(what: &str, secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {secs}s"))
}

/// Polls `check` every 20 ms until it gives a value (at most `secs`).
async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    bounded(what, secs, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn suspended(j: &Job) -> bool {
    j.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

fn has_condition(j: &Job, kind: &str) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

fn finished(j: &Job) -> bool {
    has_condition(j, "Complete") || has_condition(j, "Failed")
}

fn node_selector(j: &Job) -> BTreeMap<String, String> {
    j.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.node_selector.clone())
        .unwrap_or_default()
}

fn name(j: &Job) -> String {
    j.metadata.name.clone().unwrap_or_default()
}

/// The events about Job `job` as (type, reason, message).
async fn events(client: &Client, job: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::default_namespaced(client.clone());
    let lp = ListParams::default().fields(&format!("involvedObject.name={job}"));
    api.list(&lp)
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

async fn wait_event(client: &Client, job: &str, reason: &str, text: &str) -> (String, String) {
    eventually(&format!("event {reason} on {job}"), 20, || async {
        events(client, job)
            .await
            .into_iter()
            .find(|(_, r, m)| r == reason && m.contains(text))
            .map(|(t, _, m)| (t, m))
    })
    .await
}

async fn local_queue(client: &Client) -> DynamicObject {
    let ar = kube::discovery::ApiResource {
        group: "kueue.x-k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "kueue.x-k8s.io/v1beta1".into(),
        kind: "LocalQueue".into(),
        plural: "localqueues".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    api.get("team").await.expect("local queue")
}

fn counts(lq: &DynamicObject) -> (i64, i64, i64) {
    let st = &lq.data["status"];
    let n = |k: &str| st[k].as_i64().unwrap_or(-1);
    (
        n("pendingWorkloads"),
        n("reservingWorkloads"),
        n("admittedWorkloads"),
    )
}

#[tokio::test]
async fn ten_jobs_on_a_quota_of_three_run_three_at_a_time_in_priority_order() {
    let (_s, client) = start(3).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    // Three long Jobs hold the quota while the ten queue up.
    for b in ["blocker-0", "blocker-1", "blocker-2"] {
        jobs.create(&pp, &job(b, "team", None, "600"))
            .await
            .unwrap();
    }
    eventually("the blockers are admitted", 20, || async {
        let l = jobs.list(&ListParams::default()).await.ok()?;
        (l.items.iter().filter(|j| !suspended(j)).count() == 3).then_some(())
    })
    .await;

    // Watch every Job from here on.
    let rv = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = jobs
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    let classes = [Some("low"), None, Some("high")];
    let mut expected: Vec<(i32, usize, String)> = Vec::new();
    for i in 0..10 {
        let class = classes[i % 3];
        let n = format!("job-{i}");
        let created = jobs
            .create(&pp, &job(&n, "team", class, "0.3"))
            .await
            .unwrap();
        assert!(suspended(&created), "Kueue's webhook suspends {n}");
        let value = match class {
            Some("high") => 1000,
            Some("low") => -5,
            _ => 0,
        };
        expected.push((-value, i, n));
    }
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, _, n)| n).collect();
    eventually("ten pending workloads", 20, || async {
        (counts(&local_queue(&client).await) == (10, 3, 3)).then_some(())
    })
    .await;

    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for b in ["blocker-0", "blocker-1", "blocker-2"] {
        jobs.delete(b, &dp).await.unwrap();
    }

    // Follow the Jobs until the ten are complete.
    let mut running: BTreeSet<String> = ["blocker-0", "blocker-1", "blocker-2"]
        .map(String::from)
        .into();
    let mut order: Vec<String> = Vec::new();
    let mut complete: BTreeSet<String> = BTreeSet::new();
    let mut peak = 0;
    bounded("the ten Jobs complete", 60, async {
        while complete.len() < 10 {
            let ev = stream
                .try_next()
                .await
                .expect("watch")
                .expect("stream open");
            let (j, gone) = match ev {
                WatchEvent::Added(j) | WatchEvent::Modified(j) => (j, false),
                WatchEvent::Deleted(j) => (j, true),
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(e) => panic!("watch error {e:?}"),
            };
            let n = name(&j);
            if !gone && !suspended(&j) && !finished(&j) {
                if running.insert(n.clone()) && !n.starts_with("blocker") {
                    order.push(n.clone());
                    assert_eq!(
                        node_selector(&j).get(POOL).map(String::as_str),
                        Some("spot"),
                        "{n} admitted with the flavor's node labels"
                    );
                }
            } else {
                running.remove(&n);
            }
            if !gone && has_condition(&j, "Complete") {
                complete.insert(n);
            }
            peak = peak.max(running.len());
            assert!(running.len() <= 3, "more than 3 running: {running:?}");
        }
    })
    .await;
    assert_eq!(order, expected, "admission order");
    assert_eq!(peak, 3);
    eventually("the queue drains", 20, || async {
        (counts(&local_queue(&client).await) == (0, 0, 0)).then_some(())
    })
    .await;
    let (kind, msg) = wait_event(&client, "job-2", "Started", "Admitted by").await;
    assert_eq!(
        (kind.as_str(), msg.as_str()),
        ("Normal", "Admitted by clusterQueue team-cq")
    );
    let (_, msg) = wait_event(&client, "job-2", "CreatedWorkload", "Created Workload").await;
    assert!(
        msg.starts_with("Created Workload: default/job-job-2-"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_job_unsuspended_while_not_admitted_is_suspended_again() {
    let (_s, client) = start(1).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    jobs.create(&pp, &job("holder", "team", None, "600"))
        .await
        .unwrap();
    eventually("holder admitted", 20, || async {
        let j = jobs.get("holder").await.ok()?;
        (!suspended(&j)).then_some(())
    })
    .await;
    let eager = jobs
        .create(&pp, &job("eager", "team", None, "0.2"))
        .await
        .unwrap();
    assert!(suspended(&eager));
    let patch = json!({"spec": {"suspend": false}});
    let patched = jobs
        .patch("eager", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(!suspended(&patched), "the client's write is stored");
    let (kind, _) = wait_event(&client, "eager", "Stopped", "Not admitted by cluster queue").await;
    assert_eq!(kind, "Normal");
    eventually("eager suspended again", 20, || async {
        let j = jobs.get("eager").await.ok()?;
        suspended(&j).then_some(())
    })
    .await;
    // The quota frees when the holder goes; then eager runs to completion.
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    jobs.delete("holder", &dp).await.unwrap();
    eventually("eager completes", 30, || async {
        let j = jobs.get("eager").await.ok()?;
        has_condition(&j, "Complete").then_some(())
    })
    .await;
}

#[tokio::test]
async fn unknown_queues_and_priority_classes_leave_the_job_suspended_with_a_warning() {
    let (_s, client) = start(2).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    jobs.create(&pp, &job("lost", "no-such-queue", None, "0.2"))
        .await
        .unwrap();
    jobs.create(&pp, &job("vip", "team", Some("platinum"), "0.2"))
        .await
        .unwrap();
    let (kind, msg) = wait_event(&client, "lost", "Inadmissible", "no-such-queue").await;
    assert_eq!(
        (kind.as_str(), msg.as_str()),
        ("Warning", "LocalQueue no-such-queue doesn't exist")
    );
    let (kind, msg) = wait_event(&client, "vip", "ErrWorkloadCompose", "platinum").await;
    assert_eq!(kind, "Warning");
    assert_eq!(
        msg,
        r#"workloadpriorityclasses.kueue.x-k8s.io "platinum" not found"#
    );
    // A Job on a real queue runs to completion meanwhile (the controller
    // has passed over the other two many times by then).
    jobs.create(&pp, &job("fine", "team", None, "0.2"))
        .await
        .unwrap();
    eventually("fine completes", 30, || async {
        let j = jobs.get("fine").await.ok()?;
        has_condition(&j, "Complete").then_some(())
    })
    .await;
    for n in ["lost", "vip"] {
        let j = jobs.get(n).await.unwrap();
        assert!(suspended(&j), "{n} stays suspended");
        assert!(j
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .is_none());
    }
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("fine-")),
        "only fine ran pods: {names:?}"
    );
    // The missing queue's Job counts nowhere; the unknown class has no workload.
    assert_eq!(counts(&local_queue(&client).await), (0, 0, 0));
}

#[tokio::test]
async fn eviction_suspends_clears_start_time_restores_the_template_and_readmits() {
    let (s, client) = start(1).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    jobs.create(&PostParams::default(), &job("victim", "team", None, "600"))
        .await
        .unwrap();
    let first_pod = eventually("victim's pod runs", 20, || async {
        let l = pods.list(&ListParams::default()).await.ok()?;
        l.items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .and_then(|p| p.metadata.name)
    })
    .await;
    let running = jobs.get("victim").await.unwrap();
    assert!(running
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .is_some());
    // The next pod runs briefly (a running pod keeps its own run time).
    let patch = json!({"metadata": {"annotations": {"sim.orchestrator.dev/run-seconds": "0.2"}}});
    jobs.patch("victim", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let rv = jobs.get("victim").await.unwrap().metadata.resource_version;
    let mut stream = jobs
        .watch(
            &WatchParams::default().fields("metadata.name=victim"),
            &rv.unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    // Not found and not Kueue's are refused.
    assert_eq!(s.kueue_evict("default", "nope").unwrap_err().code, 404);
    s.kueue_evict("default", "victim").expect("eviction asked");

    #[derive(Debug, PartialEq)]
    enum Step {
        Stopping,
        Stopped,
        Readmitted,
        Complete,
    }
    let mut steps: Vec<Step> = Vec::new();
    bounded("victim is evicted, readmitted and completes", 60, async {
        while steps.last() != Some(&Step::Complete) {
            let j = match stream.try_next().await.expect("watch").expect("open") {
                WatchEvent::Modified(j) => j,
                _ => continue,
            };
            let stopping = j
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(STOPPING_ANNOTATION));
            let start = j.status.as_ref().and_then(|s| s.start_time.as_ref());
            let step = if has_condition(&j, "Complete") {
                Step::Complete
            } else if suspended(&j) && stopping {
                Step::Stopping
            } else if suspended(&j) && start.is_none() && node_selector(&j).is_empty() {
                Step::Stopped
            } else if !suspended(&j) && node_selector(&j).contains_key(POOL) {
                Step::Readmitted
            } else {
                continue;
            };
            // (The request's own write comes first and is no step.)
            if steps.is_empty() && step != Step::Stopping {
                continue;
            }
            if steps.last() != Some(&step) {
                steps.push(step);
            }
        }
    })
    .await;
    assert_eq!(
        steps,
        [
            Step::Stopping,
            Step::Stopped,
            Step::Readmitted,
            Step::Complete
        ]
    );
    let (kind, msg) = wait_event(&client, "victim", "Stopped", "Evicted").await;
    assert_eq!(kind, "Normal", "{msg}");
    // The first pod was stopped by the Job controller and replaced.
    eventually("the evicted pod is gone", 20, || async {
        pods.get_opt(&first_pod)
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
    let done = jobs.get("victim").await.unwrap();
    assert_eq!(done.status.as_ref().and_then(|s| s.succeeded), Some(1));
}

#[tokio::test]
async fn kueue_objects_are_discovered_read_and_refused_writes() {
    let (_s, client) = start(2).await;
    for aggregated in [false, true] {
        let d = Discovery::new(client.clone()).filter(&["kueue.x-k8s.io"]);
        let d = if aggregated {
            d.run_aggregated().await
        } else {
            d.run().await
        }
        .expect("discovery");
        let group = d.get("kueue.x-k8s.io").expect("kueue group");
        let (ar, caps) = group.recommended_kind("LocalQueue").expect("LocalQueue");
        assert_eq!(
            (ar.version.as_str(), ar.plural.as_str()),
            ("v1beta1", "localqueues")
        );
        assert_eq!(caps.scope, Scope::Namespaced);
        assert!(caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::WATCH));
        assert!(!caps.supports_operation(verbs::CREATE), "read-only");
        for kind in ["ClusterQueue", "WorkloadPriorityClass", "ResourceFlavor"] {
            let (_, caps) = group.recommended_kind(kind).expect(kind);
            assert_eq!(caps.scope, Scope::Cluster, "{kind}");
        }
        let lqs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
        let lq = lqs.get("team").await.expect("get");
        assert_eq!(lq.data["spec"]["clusterQueue"], "team-cq");
        assert_eq!(counts(&lq), (0, 0, 0));
        let list = lqs.list(&ListParams::default()).await.expect("list");
        assert_eq!(list.items.len(), 1);
        // Writes are refused with a Status that says why.
        let mut copy = lq.clone();
        copy.metadata.name = Some("other".into());
        copy.metadata.resource_version = None;
        match lqs.create(&PostParams::default(), &copy).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 405, "{s:?}");
                assert!(s.message.contains("read-only"), "{}", s.message);
            }
            other => panic!("create should be refused: {other:?}"),
        }
        let patch = json!({"spec": {"clusterQueue": "x"}});
        let refused = lqs
            .patch("team", &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        assert!(matches!(refused, Err(kube::Error::Api(s)) if s.code == 405));
        let refused = lqs.delete("team", &DeleteParams::default()).await;
        assert!(matches!(refused, Err(kube::Error::Api(s)) if s.code == 405));

        let (ar, _) = group.recommended_kind("ClusterQueue").expect("cq");
        let cqs: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let cq = cqs.get("team-cq").await.expect("cluster queue");
        assert_eq!(
            cq.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("sim.orchestrator.dev/quota-jobs")),
            Some(&"2".to_string())
        );
        let (ar, _) = group
            .recommended_kind("WorkloadPriorityClass")
            .expect("wpc");
        let wpcs: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        assert_eq!(wpcs.get("high").await.unwrap().data["value"], 1000);
        let (ar, _) = group.recommended_kind("ResourceFlavor").expect("rf");
        let rfs: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        assert_eq!(
            rfs.get("spot").await.unwrap().data["spec"]["nodeLabels"][POOL],
            "spot"
        );
    }
    // A watch sees the counts change.
    let ar = kube::discovery::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("kueue.x-k8s.io", "v1beta1", "LocalQueue"),
        "localqueues",
    );
    let lqs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut w = lqs
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(&PostParams::default(), &job("one", "team", None, "600"))
        .await
        .unwrap();
    bounded("the watch shows one admitted workload", 20, async {
        loop {
            if let WatchEvent::Modified(o) = w.try_next().await.unwrap().unwrap() {
                if counts(&o) == (0, 1, 1) {
                    break;
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn without_the_emulation_kueue_is_not_served_and_queued_jobs_just_run() {
    let server = SimServer::start_local(SimConfig {
        default_run_seconds: 0.2,
        ..SimConfig::default()
    })
    .unwrap();
    let client = server.client().await.unwrap();
    let d = Discovery::new(client.clone()).run().await.unwrap();
    assert!(!d.has_group("kueue.x-k8s.io"));
    let ar = kube::discovery::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("kueue.x-k8s.io", "v1beta1", "LocalQueue"),
        "localqueues",
    );
    let lqs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    assert!(
        matches!(lqs.list(&ListParams::default()).await, Err(kube::Error::Api(s)) if s.code == 404)
    );
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let j = jobs
        .create(&PostParams::default(), &job("plain", "team", None, "0.2"))
        .await
        .unwrap();
    assert!(!suspended(&j));
    assert_eq!(
        server.kueue_evict("default", "plain").unwrap_err().code,
        400
    );
}

#[test]
fn kubectl_gets_local_queues_cluster_queues_and_refuses_to_delete_them() {
    use kubectl_support::Cluster;
    let c = Cluster::start_with(config(2));
    let out = c.ok(&["get", "localqueues"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "CLUSTERQUEUE",
            "PENDING WORKLOADS",
            "ADMITTED WORKLOADS"
        ],
        "{out}"
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row, ["team", "team-cq", "0", "0"], "{out}");
    let out = c.ok(&["get", "lq", "team", "-o", "jsonpath={.spec.clusterQueue}"]);
    assert_eq!(out, "team-cq");
    let out = c.ok(&["get", "clusterqueues"]);
    assert!(
        out.lines().nth(1).unwrap_or("").starts_with("team-cq"),
        "{out}"
    );
    let out = c.ok(&["get", "workloadpriorityclasses"]);
    assert!(out.contains("high") && out.contains("1000"), "{out}");
    let err = c.fails(&["delete", "localqueue", "team"]);
    assert!(err.contains("read-only"), "{err}");
    let v: Value = c.json(&["get", "resourceflavors"]);
    assert_eq!(v["items"][0]["spec"]["nodeLabels"][POOL], "spot", "{v}");
}

#[tokio::test]
async fn the_evict_annotation_evicts_as_kubectl_annotate_would() {
    let (_s, client) = start(1).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(&PostParams::default(), &job("noted", "team", None, "600"))
        .await
        .unwrap();
    eventually("noted admitted", 20, || async {
        let j = jobs.get("noted").await.ok()?;
        (!suspended(&j)).then_some(())
    })
    .await;
    let patch = json!({"metadata": {"annotations": {"sim.orchestrator.dev/kueue-evict": "true"}}});
    jobs.patch("noted", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let (_, msg) = wait_event(&client, "noted", "Stopped", "Evicted").await;
    assert!(msg.contains("on request"), "{msg}");
    // Requeued and, being alone in its queue, admitted again: the request
    // and stopping annotations are gone, the flavor is back.
    eventually("noted readmitted", 20, || async {
        let evs = events(&client, "noted").await;
        let n = evs.iter().filter(|(_, r, _)| r == "Started").count();
        (n == 2).then_some(())
    })
    .await;
    let j = eventually("noted running again", 20, || async {
        let j = jobs.get("noted").await.ok()?;
        (!suspended(&j)).then_some(j)
    })
    .await;
    let annotations = j.metadata.annotations.clone().unwrap_or_default();
    assert!(!annotations.contains_key("sim.orchestrator.dev/kueue-evict"));
    assert!(!annotations.contains_key(STOPPING_ANNOTATION));
    assert_eq!(
        node_selector(&j).get(POOL).map(String::as_str),
        Some("spot")
    );
}
