//! The Role in `k8s/role.yaml` against the service's actual calls: the
//! simulator serves HTTPS and gives the service a ServiceAccount-like token
//! whose allow-list is exactly the Role's rules (bound to the namespace, as
//! the RoleBinding does). The test drives every path that talks to
//! Kubernetes — leader election, the Job watch, a GitHub task through to
//! completion, a PM task with a files ConfigMap, logs, cancel — and then
//! requires that the simulator answered no request 403. A rule missing from
//! the Role therefore fails here, not in production.

mod api_support;
mod common;

use std::sync::Arc;

use api_support::*;
use common::*;
use kube_api_sim::authz::{rules_from_manifests, TokenGrant};
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

const SA_TOKEN: &str = "service-account-token-for-the-role-test";
const SA_USER: &str = "system:serviceaccount:orchestrator:orchestrator";

fn role_rules() -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/role.yaml");
    let text = std::fs::read_to_string(path).expect("k8s/role.yaml");
    rules_from_manifests(&text).expect("the Role's rules")
}

fn sim_with_role(rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>) -> Arc<SimServer> {
    sim_with_role_and(rules, None)
}

/// [`sim_with_role`], emulating Kueue when `kueue` is given.
fn sim_with_role_and(
    rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
    kueue: Option<kube_api_sim::kueue::KueueConfig>,
) -> Arc<SimServer> {
    init_logging();
    let grant = TokenGrant {
        namespace: Some("default".into()),
        ..TokenGrant::with_rules(SA_TOKEN, SA_USER, rules)
    };
    Arc::new(
        SimServer::start_local(SimConfig {
            token: Some("admin-token-of-the-test-itself".into()),
            grants: vec![grant],
            tls: true,
            default_run_seconds: 0.3,
            kueue,
            ..SimConfig::default()
        })
        .expect("the simulator starts"),
    )
}

/// The `/_sim/stats` request counts with status 403.
async fn forbidden_requests(sim: &SimServer) -> Vec<Value> {
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(sim.ca_pem().expect("TLS").as_bytes()).expect("CA"),
        )
        .build()
        .expect("client");
    let stats: Value = bounded("GET /_sim/stats", WAIT, async {
        http.get(format!("{}/_sim/stats", sim.url()))
            .bearer_auth("admin-token-of-the-test-itself")
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    })
    .await;
    stats["requests"]
        .as_array()
        .expect("request counts")
        .iter()
        .filter(|r| r["code"] == 403)
        .cloned()
        .collect()
}

/// Waits for Job `name` to reach `state`, failing early (with the denied
/// calls) as soon as the simulator has answered anything 403.
async fn wait_state_allowed(app: &TestApp, sim: &SimServer, name: &str, state: &str) {
    wait_for(&format!("job {name} to be {state}"), WAIT, || async {
        let forbidden = forbidden_requests(sim).await;
        assert!(
            forbidden.is_empty(),
            "calls outside the Role in k8s/role.yaml: {forbidden:?}"
        );
        (api_state(app, name).await == state).then_some(())
    })
    .await
}

fn pm_task() -> Value {
    json!({
        "id": "rbac-1",
        "title": "Check the Role",
        "description": "Exercise the files ConfigMap.",
        "details": "Nothing to do.",
        "repository": {"url": "https://github.com/acme/api.git", "branch": "main", "github_user": "acme-bot"},
        "markdown_files": [{"filename": "prd.md", "content": "# PRD\n", "file_type": "prd"}]
    })
}

#[tokio::test]
async fn the_role_in_k8s_allows_every_call_the_service_makes_over_tls() {
    let sim = sim_with_role(role_rules());
    let kubeconfig = sim.kubeconfig_for_token(Some(SA_TOKEN));
    assert!(kubeconfig.contains("certificate-authority-data"));
    let env = [("API_TOKENS", API_TOKENS), ("MAX_CONCURRENT_JOBS", "1")];
    let app = spawn_app_with_kubeconfig(sim.clone(), kubeconfig, &env).await;

    // A GitHub task, queued, admitted, run to completion; its logs.
    let answer = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(7)))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let name = answer.job().expect("a Job name");
    wait_state_allowed(&app, &sim, &name, "succeeded").await;
    let logs = call(&app, "GET", &format!("/api/v1/jobs/{name}/logs"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(logs.status, 200, "{}", logs.text);

    // A PM task with files (a ConfigMap owned by its Job), then cancelled.
    let r = call(&app, "POST", "/api/v1/pm/tasks")
        .token(PM_TOKEN)
        .json(&pm_task())
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let pm = r.json["job"].as_str().expect("a Job name").to_string();
    let r = call(&app, "DELETE", &format!("/api/v1/jobs/{pm}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_state_allowed(&app, &sim, &pm, "cancelled").await;

    let forbidden = forbidden_requests(&sim).await;
    assert!(
        forbidden.is_empty(),
        "calls outside the Role in k8s/role.yaml: {forbidden:?}"
    );
    app.stop()
        .await
        .expect("a clean stop (the Lease is released)");
    let forbidden = forbidden_requests(&sim).await;
    assert!(forbidden.is_empty(), "on shutdown: {forbidden:?}");
}

#[tokio::test]
async fn in_kueue_mode_the_role_allows_the_local_queue_check_and_the_cancel_that_deletes() {
    let kueue = kube_api_sim::kueue::KueueConfig::default()
        .cluster_queue("team-cq", 1, None)
        .local_queue("default", "agents", "team-cq");
    let sim = sim_with_role_and(role_rules(), Some(kueue));
    let kubeconfig = sim.kubeconfig_for_token(Some(SA_TOKEN));
    // (No KUEUE_PRIORITY_CLASSES: reading WorkloadPriorityClasses needs the
    // optional cluster-wide grant of k8s/components/kueue, which a Role
    // cannot give.)
    let env = [("API_TOKENS", API_TOKENS), ("SCHEDULER", "kueue")];
    // Ready: the preflight read the LocalQueue.
    let app = spawn_app_with_kubeconfig(sim.clone(), kubeconfig, &env).await;
    let answer = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(8)))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let name = answer.job().expect("a Job name");
    wait_state_allowed(&app, &sim, &name, "succeeded").await;

    // A PM task, cancelled: in Kueue mode its Job is deleted.
    let r = call(&app, "POST", "/api/v1/pm/tasks")
        .token(PM_TOKEN)
        .json(&pm_task())
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let pm = r.json["job"].as_str().expect("a Job name").to_string();
    let r = call(&app, "DELETE", &format!("/api/v1/jobs/{pm}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_for(&format!("job {pm} deleted"), WAIT, || async {
        let forbidden = forbidden_requests(&sim).await;
        assert!(
            forbidden.is_empty(),
            "calls outside the Role: {forbidden:?}"
        );
        (get_job(&app, &pm).await.status == 404).then_some(())
    })
    .await;
    app.stop()
        .await
        .expect("a clean stop (the Lease is released)");
    let forbidden = forbidden_requests(&sim).await;
    assert!(
        forbidden.is_empty(),
        "calls outside the Role in k8s/role.yaml: {forbidden:?}"
    );
}
