//! The Job controller as batch/v1 describes it.
//!
//! Sources: the Jobs concept page (kubernetes.io/docs/concepts/workloads/
//! controllers/job/: "Parallel Jobs with a fixed completion count",
//! "Job termination and cleanup": at `activeDeadlineSeconds` the running pods
//! are terminated and the Job fails with reason `DeadlineExceeded`), the
//! JobStatus reference (`failed`: "the number of pods which reached phase
//! Failed", terminated pods included) and batch's field label conversion
//! (`status.successful` selects on `status.succeeded`); the "Pod backoff
//! failure policy" section (failed pods are replaced after an exponential
//! back-off delay, 10 s, 20 s, 40 s … capped at six minutes).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

use super::kubectl_support::Cluster;
use super::wait_for;

fn job(name: &str, run_seconds: &str, spec: serde_json::Value) -> Job {
    let mut v = json!({
        "metadata": {"name": name, "annotations": {"sim.orchestrator.dev/run-seconds": run_seconds}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}},
    });
    if let (Some(dst), Some(src)) = (v["spec"].as_object_mut(), spec.as_object()) {
        dst.extend(src.clone());
    }
    serde_json::from_value(v).expect("job")
}

fn has(status: &serde_json::Value, kind: &str, reason: &str) -> bool {
    status["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True" && c["reason"] == reason)
    })
}

#[tokio::test]
async fn parallelism_runs_that_many_pods_until_completions_succeed() {
    let (client, _sim) = kube_api_sim::start().await.unwrap();
    let jobs: Api<Job> = Api::default_namespaced(client);
    jobs.create(
        &PostParams::default(),
        &job(
            "fan-out",
            "0.6",
            json!({"parallelism": 3, "completions": 5}),
        ),
    )
    .await
    .unwrap();
    wait_for(&jobs, "fan-out", |s| s["active"] == 3).await;
    let done = wait_for(&jobs, "fan-out", |s| {
        has(s, "Complete", "CompletionsReached")
    })
    .await;
    assert_eq!(done["succeeded"], 5, "{done}");
    assert!(done.get("active").is_none(), "{done}");
}

#[tokio::test]
async fn the_pod_killed_at_the_deadline_counts_as_failed() {
    let (client, _sim) = kube_api_sim::start().await.unwrap();
    let jobs: Api<Job> = Api::default_namespaced(client);
    jobs.create(
        &PostParams::default(),
        &job("slow", "60", json!({"activeDeadlineSeconds": 1})),
    )
    .await
    .unwrap();
    let failed = wait_for(&jobs, "slow", |s| has(s, "Failed", "DeadlineExceeded")).await;
    assert_eq!(failed["failed"], 1, "{failed}");
}

#[test]
fn field_selector_status_successful_selects_finished_jobs() {
    let c = Cluster::start();
    c.create_job("done", "0.1", false, "x");
    c.create_job("waiting", "0.1", true, "x");
    c.wait_for("Complete", &["done"]);
    let out = c.ok(&[
        "get",
        "jobs",
        "--field-selector",
        "status.successful=1",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "job.batch/done");
    let out = c.ok(&[
        "get",
        "jobs",
        "--field-selector",
        "status.successful=0",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "job.batch/waiting");
}

#[tokio::test]
async fn a_failed_pod_is_replaced_only_after_the_back_off() {
    // A back-off far longer than the test: after the first failure the Job
    // has no active pod and no replacement yet.
    let sim = kube_api_sim::SimServer::start_local(kube_api_sim::SimConfig {
        job_backoff_base: Duration::from_secs(3600),
        ..Default::default()
    })
    .unwrap();
    let client = sim.client().await.unwrap();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let mut j = job("flaky", "0.05", json!({"backoffLimit": 3}));
    j.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("sim.orchestrator.dev/exit-code".into(), "1".into());
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let st = wait_for(&jobs, "flaky", |s| s["failed"] == 1).await;
    assert!(
        st.get("active").is_none(),
        "no replacement during the back-off: {st}"
    );
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::default_namespaced(client);
    let list = pods
        .list(&kube::api::ListParams::default().labels("job-name=flaky"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
}
