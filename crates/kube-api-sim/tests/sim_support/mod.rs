//! Helpers shared by the simulator fault tests: start a simulator, drive its
//! `/_sim/` admin endpoint, build fixtures, bound every wait.
#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube_api_sim::faults::FaultSpec;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

/// Upper bound for any single wait in these tests (generous: the whole
/// workspace suite shares two cores with them).
pub const WAIT: Duration = Duration::from_secs(60);

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
pub async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

pub fn start(faults: FaultSpec) -> SimServer {
    SimServer::start_local(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

/// A client without kube's built-in retry of 429/503/504, so that a test sees
/// each injected answer as the API server sent it.
pub async fn client_without_retry(server: &SimServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).expect("kubeconfig");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("client")
}

/// One admin call; returns the status and the JSON body.
pub async fn admin(
    method: reqwest::Method,
    server: &SimServer,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", server.url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = bounded(path, req.send()).await.expect("admin request");
    let code = resp.status().as_u16();
    (
        code,
        bounded(path, resp.json()).await.expect("admin JSON body"),
    )
}

pub async fn set_faults(server: &SimServer, spec: Value) {
    let (code, body) = admin(reqwest::Method::PUT, server, "/_sim/faults", Some(spec)).await;
    assert_eq!(code, 200, "PUT /_sim/faults: {body}");
}

pub async fn stats(server: &SimServer) -> Value {
    admin(reqwest::Method::GET, server, "/_sim/stats", None)
        .await
        .1
}

pub async fn compact(server: &SimServer) {
    let (code, body) = admin(reqwest::Method::POST, server, "/_sim/compact", None).await;
    assert_eq!(code, 200, "POST /_sim/compact: {body}");
}

/// The count `/_sim/stats` reports for one verb, resource and status.
pub fn count(stats: &Value, verb: &str, resource: &str, code: u64) -> u64 {
    stats["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["verb"] == verb && r["resource"] == resource && r["code"] == code)
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

/// A suspended Job: the controller gives it a condition and nothing else.
pub fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))
    .expect("job fixture")
}

pub fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("configmap fixture")
}

/// The code and reason of the `Status` a request failed with.
pub fn api_error(r: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn jobs_url(server: &SimServer) -> String {
    format!("{}/apis/batch/v1/namespaces/default/jobs", server.url())
}

/// Reads a streaming body to its end (bounded), returning its JSON lines.
pub async fn read_lines(resp: reqwest::Response) -> Vec<Value> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = bounded("the watch stream to end", stream.next()).await {
        buf.extend_from_slice(&chunk.expect("watch chunk"));
    }
    buf.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("watch event is JSON"))
        .collect()
}
