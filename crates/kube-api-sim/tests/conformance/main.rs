//! A conformance-style suite: the simulator driven by the real `kubectl`
//! (as a subprocess, fresh `--cache-dir` per run) and by the `kube` client,
//! each case stating the answer a real kube-apiserver (1.32) gives and where
//! that answer is documented or was observed.

#[path = "../kubectl_support/mod.rs"]
mod kubectl_support;

mod apply;
mod discovery;
mod http;
mod job_policies;
mod jobs;
mod lifecycle;
mod lists;
mod protobuf;
mod terminating;
mod validation;
mod validation_kinds;
mod write_only;

/// Polls the Job (bounded, 20 s) until `done` holds for its status;
/// returns that status.
async fn wait_for(
    jobs: &kube::Api<k8s_openapi::api::batch::v1::Job>,
    name: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let j = jobs.get(name).await.expect("get job");
        let status = serde_json::to_value(&j.status).unwrap_or_default();
        if done(&status) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name}: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
}
