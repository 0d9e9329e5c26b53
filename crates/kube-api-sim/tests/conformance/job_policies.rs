//! The Job controller's completion modes and policies.
//!
//! Sources: the Jobs concept page (kubernetes.io/docs/concepts/workloads/
//! controllers/job/): "Completion mode" (Indexed pods get the index in the
//! `batch.kubernetes.io/job-completion-index` annotation and label, the
//! hostname `$(job-name)-$(index)` and the `JOB_COMPLETION_INDEX` variable;
//! `status.completedIndexes`), "Pod failure policy", "Success policy",
//! "Backoff limit per index" (`status.failedIndexes`, reasons
//! `FailedIndexes` and `MaxFailedIndexesExceeded`), "Delayed creation of
//! replacement pods" (`podReplacementPolicy: Failed`, `status.terminating`),
//! "Handling Pod and container failures" (`OnFailure` restarts the
//! container in the same pod; restarts count towards `backoffLimit`);
//! pkg/controller/job (`matchPodFailurePolicy`'s messages, reason
//! `PodFailurePolicy`; `SuccessPolicy` "Matched rules at index N") and
//! pkg/apis/batch/validation (messages below).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::kubectl_support::Cluster;
use super::wait_for;

fn job(name: &str, annotations: Value, spec: Value) -> Job {
    let mut v = json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox:1.36"}]}}},
    });
    if let (Some(dst), Some(src)) = (v["spec"].as_object_mut(), spec.as_object()) {
        dst.extend(src.clone());
    }
    serde_json::from_value(v).expect("job")
}

async fn sim(fast: bool) -> (Client, kube_api_sim::SimServer) {
    let config = kube_api_sim::SimConfig {
        job_backoff_base: Duration::from_millis(if fast { 10 } else { 10_000 }),
        crash_loop_backoff_base: Duration::from_millis(20),
        default_run_seconds: 0.1,
        ..Default::default()
    };
    kube_api_sim::start_with(config).await.expect("simulator")
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

fn ended(status: &Value) -> bool {
    condition(status, "Complete").is_some() || condition(status, "Failed").is_some()
}

async fn pods_of(client: &Client, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .expect("list pods")
        .items
}

#[tokio::test]
async fn indexed_pods_carry_their_index_and_the_job_lists_completed_indexes() {
    let (client, _sim) = sim(true).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let spec = json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c",
            "image": "busybox:1.36", "args": ["--shard=$(JOB_COMPLETION_INDEX)"]}]}}});
    jobs.create(&PostParams::default(), &job("idx", json!({}), spec))
        .await
        .unwrap();
    let status = wait_for(&jobs, "idx", ended).await;
    assert!(condition(&status, "Complete").is_some(), "{status}");
    assert_eq!(status["completedIndexes"], "0-2");
    assert_eq!(status["succeeded"], 3);
    let all = pods_of(&client, "idx").await;
    // The variable reaches the process: `$(JOB_COMPLETION_INDEX)` expands.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for p in &all {
        let name = p.metadata.name.clone().unwrap();
        let index =
            &p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"];
        let log = pods.logs(&name, &Default::default()).await.unwrap();
        assert!(
            log.contains(&format!("args: [\"--shard={index}\"]")),
            "{log}"
        );
    }
    let mut seen: Vec<(String, String, String)> = all
        .into_iter()
        .map(|p| {
            let meta = p.metadata;
            let index =
                meta.annotations.unwrap()["batch.kubernetes.io/job-completion-index"].clone();
            assert_eq!(
                meta.labels.unwrap()["batch.kubernetes.io/job-completion-index"],
                index
            );
            assert!(meta.name.unwrap().starts_with(&format!("idx-{index}-")));
            let spec = p.spec.unwrap();
            let env = spec.containers[0].env.clone().unwrap();
            assert_eq!(env[0].name, "JOB_COMPLETION_INDEX");
            let field = env[0]
                .value_from
                .clone()
                .unwrap()
                .field_ref
                .unwrap()
                .field_path;
            (index, spec.hostname.unwrap(), field)
        })
        .collect();
    seen.sort();
    let path = "metadata.annotations['batch.kubernetes.io/job-completion-index']".to_string();
    assert_eq!(
        seen,
        (0..3)
            .map(|i| (i.to_string(), format!("idx-{i}"), path.clone()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn pod_failure_policy_fails_the_job_ignores_disruptions_and_counts_the_rest() {
    let (client, _sim) = sim(true).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let policy = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]});
    let spec = json!({"backoffLimit": 5, "podFailurePolicy": policy});
    jobs.create(
        &PostParams::default(),
        &job(
            "fatal",
            json!({"sim.orchestrator.dev/exit-code": "42"}),
            spec.clone(),
        ),
    )
    .await
    .unwrap();
    let status = wait_for(&jobs, "fatal", ended).await;
    let failed = condition(&status, "Failed").expect("Failed");
    assert_eq!(failed["reason"], "PodFailurePolicy");
    let pod = pods_of(&client, "fatal").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    assert_eq!(
        failed["message"].as_str().unwrap(),
        format!("Container c for pod default/{pod} failed with exit code 42 matching FailJob rule at index 0")
    );
    assert_eq!(status["failed"], 1, "one pod, no retry");

    // Disrupted pods are ignored: never counted, always replaced.
    let annotations = json!({"sim.orchestrator.dev/exit-code": "1",
        "sim.orchestrator.dev/pod-condition": "DisruptionTarget"});
    let mut ignored = spec.clone();
    ignored["backoffLimit"] = json!(0);
    jobs.create(
        &PostParams::default(),
        &job("disrupted", annotations, ignored),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pods = pods_of(&client, "disrupted").await;
        let failed = pods
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
            .count();
        if failed >= 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{pods:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let status = serde_json::to_value(jobs.get("disrupted").await.unwrap().status).unwrap();
    assert!(!ended(&status), "{status}");
    assert_eq!(status.get("failed"), None, "{status}");

    // No rule matches exit code 1 without the condition: counted.
    let mut counted = spec;
    counted["backoffLimit"] = json!(0);
    jobs.create(
        &PostParams::default(),
        &job(
            "counted",
            json!({"sim.orchestrator.dev/exit-code": "1"}),
            counted,
        ),
    )
    .await
    .unwrap();
    let status = wait_for(&jobs, "counted", ended).await;
    assert_eq!(
        condition(&status, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
}

#[tokio::test]
async fn on_failure_restarts_the_container_in_the_same_pod_until_the_backoff_limit() {
    let (client, _sim) = sim(true).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let spec = json!({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure",
        "containers": [{"name": "c", "image": "busybox:1.36"}]}}});
    jobs.create(
        &PostParams::default(),
        &job(
            "crashy",
            // The pod lingers while it stops, so the test can look at it.
            json!({"sim.orchestrator.dev/exit-code": "3",
                "sim.orchestrator.dev/termination-seconds": "5"}),
            spec,
        ),
    )
    .await
    .unwrap();
    let status = wait_for(&jobs, "crashy", ended).await;
    assert_eq!(
        condition(&status, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    let pods = pods_of(&client, "crashy").await;
    assert_eq!(pods.len(), 1, "one pod, restarted in place");
    let cs = &pods[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(cs.restart_count, 2);
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 3);
}

#[tokio::test]
async fn a_success_policy_ends_an_indexed_job_early() {
    let (client, _sim) = sim(true).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let annotations = json!({"sim.orchestrator.dev/run-seconds": "600",
        "sim.orchestrator.dev/run-seconds-by-index": "0=0.1"});
    let spec = json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "successPolicy": {"rules": [{"succeededIndexes": "0"}]}});
    jobs.create(&PostParams::default(), &job("leader", annotations, spec))
        .await
        .unwrap();
    let status = wait_for(&jobs, "leader", ended).await;
    for kind in ["SuccessCriteriaMet", "Complete"] {
        let c = condition(&status, kind).expect(kind);
        assert_eq!(
            (c["reason"].as_str(), c["message"].as_str()),
            (Some("SuccessPolicy"), Some("Matched rules at index 0"))
        );
    }
    assert_eq!(status["completedIndexes"], "0");
    assert_eq!(status["succeeded"], 1);
    assert_eq!(
        status.get("failed"),
        None,
        "the stopped pods are not failures"
    );
}

#[tokio::test]
async fn backoff_limit_per_index_fails_only_that_index() {
    let (client, _sim) = sim(true).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let annotations = json!({"sim.orchestrator.dev/exit-code-by-index": "1=3"});
    let spec = json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "backoffLimitPerIndex": 1});
    jobs.create(
        &PostParams::default(),
        &job("shards", annotations.clone(), spec),
    )
    .await
    .unwrap();
    let status = wait_for(&jobs, "shards", ended).await;
    let failed = condition(&status, "Failed").expect("Failed");
    assert_eq!(
        (failed["reason"].as_str(), failed["message"].as_str()),
        (Some("FailedIndexes"), Some("Job has failed indexes"))
    );
    assert_eq!(status["completedIndexes"], "0,2");
    assert_eq!(status["failedIndexes"], "1");
    assert_eq!(status["failed"], 2, "index 1 ran twice");
    let retry = pods_of(&client, "shards")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.annotations)
        .find(|a| {
            a.get("batch.kubernetes.io/job-index-failure-count")
                .map(String::as_str)
                == Some("1")
        });
    assert!(retry.is_some(), "the retry knows its index failed once");

    // maxFailedIndexes 0: the first failed index fails the Job; FailIndex
    // gives an index up without retrying it.
    let spec = json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "backoffLimitPerIndex": 5, "maxFailedIndexes": 0,
        "podFailurePolicy": {"rules": [{"action": "FailIndex",
            "onExitCodes": {"operator": "In", "values": [3]}}]}});
    jobs.create(&PostParams::default(), &job("strict", annotations, spec))
        .await
        .unwrap();
    let status = wait_for(&jobs, "strict", ended).await;
    let failed = condition(&status, "Failed").expect("Failed");
    assert_eq!(
        (failed["reason"].as_str(), failed["message"].as_str()),
        (
            Some("MaxFailedIndexesExceeded"),
            Some("Job has exceeded the specified maximal number of failed indexes")
        )
    );
    assert_eq!(status["failedIndexes"], "1");
}

#[tokio::test]
async fn pod_replacement_policy_failed_waits_for_terminating_pods() {
    let (client, _sim) = sim(true).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let annotations = json!({"sim.orchestrator.dev/run-seconds": "600",
        "sim.orchestrator.dev/termination-seconds": "1"});
    let spec = json!({"podReplacementPolicy": "Failed"});
    jobs.create(&PostParams::default(), &job("patient", annotations, spec))
        .await
        .unwrap();
    wait_for(&jobs, "patient", |s| s["ready"] == 1).await;
    let first = pods_of(&client, "patient").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.delete(&first, &DeleteParams::default()).await.unwrap();
    let status = wait_for(&jobs, "patient", |s| s["terminating"] == 1).await;
    assert_eq!(status.get("active"), None, "{status}");
    assert_eq!(
        pods_of(&client, "patient").await.len(),
        1,
        "no replacement yet"
    );
    // Once it has failed it counts, and only then is it replaced.
    let status = wait_for(&jobs, "patient", |s| s["active"] == 1).await;
    assert_eq!(
        (status["failed"].as_u64(), status["terminating"].as_u64()),
        (Some(1), Some(0))
    );
}

/// Validation (pkg/apis/batch/validation/validation.go `validateJobSpec`),
/// through kubectl as a user sees it.
#[test]
fn kubectl_gets_the_real_validation_messages() {
    let cluster = Cluster::start();
    let cases = [
        (
            "podFailurePolicy: {rules: [{action: FailJob, onExitCodes: {operator: In, values: [1]}}]}",
            "OnFailure",
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ),
        (
            "completionMode: Indexed",
            "Never",
            "spec.completions: Required value: when completion mode is Indexed",
        ),
        (
            "backoffLimitPerIndex: 1",
            "Never",
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
        ),
        (
            "completions: 2\n  completionMode: Indexed\n  podFailurePolicy: {rules: [{action: FailIndex, onExitCodes: {operator: In, values: [1]}}]}",
            "Never",
            "spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
        ),
        (
            "podReplacementPolicy: TerminatingOrFailed\n  podFailurePolicy: {rules: [{action: Ignore, onExitCodes: {operator: In, values: [1]}}]}",
            "Never",
            "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"",
        ),
    ];
    for (i, (extra, restart, message)) in cases.iter().enumerate() {
        let manifest = format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: bad-{i}\nspec:\n  {extra}\n  \
             template:\n    spec:\n      restartPolicy: {restart}\n      containers:\n      \
             - name: c\n        image: busybox:1.36\n"
        );
        let f = cluster.file(&format!("bad-{i}.yaml"), &manifest);
        let err = cluster.fails(&["create", "-f", &f]);
        assert!(
            err.contains(&format!("The Job \"bad-{i}\" is invalid: {message}")),
            "{extra}:\n{err}"
        );
    }
}
