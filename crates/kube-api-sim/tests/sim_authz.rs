//! Per-token allow-lists over HTTPS: a request outside its token's rules gets
//! kube-apiserver's 403 Forbidden `Status`; the self-review APIs answer from
//! the same rules, so the real `kubectl auth can-i` / `auth whoami` work.
//! (kubectl sends bearer tokens only over TLS, so these servers use TLS.)

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use kube_api_sim::authz::TokenGrant;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

mod kubectl_support;
use kubectl_support::kubectl_in;

const ADMIN: &str = "admin-token";
const LIMITED: &str = "limited-token";
const USER: &str = "system:serviceaccount:orchestrator:orchestrator";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(v(groups)),
        resources: Some(v(resources)),
        verbs: v(verbs),
        ..Default::default()
    }
}

fn sim() -> SimServer {
    SimServer::start_local(SimConfig {
        token: Some(ADMIN.into()),
        grants: vec![TokenGrant::with_rules(
            LIMITED,
            USER,
            vec![
                rule(&["batch"], &["jobs"], &["get", "list", "watch", "create"]),
                rule(&[""], &["pods/log"], &["get"]),
            ],
        )],
        tls: true,
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .expect("job")
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn calls_outside_the_allow_list_are_forbidden_like_kube_apiserver() {
    let sim = sim();
    let limited = sim.client_for_token(Some(LIMITED)).await.expect("client");
    let jobs: Api<Job> = Api::namespaced(limited.clone(), "default");
    jobs.create(&PostParams::default(), &job("allowed"))
        .await
        .expect("create is on the list");
    jobs.get("allowed").await.expect("get is on the list");

    let e = api_error(
        jobs.delete("allowed", &DeleteParams::default())
            .await
            .expect_err("delete is not on the list"),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        format!(
            r#"jobs.batch "allowed" is forbidden: User "{USER}" cannot delete resource "jobs" in API group "batch" in the namespace "default""#
        )
    );
    let cms: Api<ConfigMap> = Api::namespaced(limited.clone(), "default");
    let e = api_error(
        cms.list(&Default::default())
            .await
            .expect_err("no configmaps"),
    );
    assert_eq!(
        e.message,
        format!(
            r#"configmaps is forbidden: User "{USER}" cannot list resource "configmaps" in API group "" in the namespace "default""#
        )
    );
    let all: Api<Job> = Api::all(limited);
    all.list(&Default::default())
        .await
        .expect("rules apply cluster-wide without a namespace bound");

    // Nothing was deleted; the admin token may do it.
    let admin: Api<Job> = Api::namespaced(sim.client().await.expect("client"), "default");
    admin
        .delete("allowed", &DeleteParams::background())
        .await
        .expect("admin deletes");

    // A token nobody configured gets 401.
    let stranger: Api<Job> = Api::namespaced(
        sim.client_for_token(Some("nobody")).await.expect("client"),
        "default",
    );
    let e = api_error(stranger.list(&Default::default()).await.expect_err("401"));
    assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));
}

async fn review(sim: &SimServer, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut http = reqwest::Client::builder();
    if let Some(ca) = sim.ca_pem() {
        http =
            http.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"));
    }
    let mut req = http
        .build()
        .expect("client")
        .post(format!("{}{path}", sim.url()))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = tokio::time::timeout(Duration::from_secs(20), req.send())
        .await
        .expect("answer in time")
        .expect("request");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("JSON"))
}

const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

fn ssar(verb: &str, group: &str, resource: &str, sub: &str) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "group": group,
            "resource": resource, "subresource": sub}}})
}

#[tokio::test]
async fn access_reviews_answer_from_the_allow_list() {
    let sim = sim();
    let (code, v) = review(
        &sim,
        Some(LIMITED),
        SSAR,
        ssar("create", "batch", "jobs", ""),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"]["allowed"], true, "{v}");
    let (_, v) = review(
        &sim,
        Some(LIMITED),
        SSAR,
        ssar("patch", "batch", "jobs", ""),
    )
    .await;
    assert_eq!(v["status"]["allowed"], false, "{v}");
    let (_, v) = review(&sim, Some(LIMITED), SSAR, ssar("get", "", "pods", "log")).await;
    assert_eq!(v["status"]["allowed"], true, "{v}");
    let (_, v) = review(&sim, Some(ADMIN), SSAR, ssar("patch", "batch", "jobs", "")).await;
    assert_eq!(v["status"]["allowed"], true, "admin has no allow-list: {v}");
    let (code, v) = review(
        &sim,
        Some(LIMITED),
        SSAR,
        json!({"kind": "SelfSubjectAccessReview", "spec": {}}),
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (422, Some("Invalid")), "{v}");
    let (code, v) = review(&sim, Some("nobody"), SSAR, ssar("get", "", "pods", "")).await;
    assert_eq!(code, 401, "{v}");

    // No token configured at all: everything is allowed.
    let open = SimServer::start_local(SimConfig::default()).expect("simulator");
    let (_, v) = review(&open, None, SSAR, ssar("delete", "batch", "jobs", "")).await;
    assert_eq!(v["status"]["allowed"], true, "{v}");

    let (code, v) = review(
        &sim,
        Some(LIMITED),
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"]["userInfo"]["username"], USER, "{v}");
}

#[test]
fn kubectl_auth_can_i_and_whoami_and_forbidden_errors() {
    let sim = sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, sim.kubeconfig_for_token(Some(LIMITED))).expect("kubeconfig");
    let run = |args: &[&str]| kubectl_in(dir.path(), &kc, args);

    let (ok, out, err) = run(&["auth", "can-i", "create", "jobs"]);
    assert!(ok && out.trim() == "yes", "can-i create jobs: {out} {err}");
    let (ok, out, _) = run(&["auth", "can-i", "delete", "jobs.batch"]);
    assert!(!ok && out.trim() == "no", "can-i delete jobs: {out}");
    let (ok, out, _) = run(&["auth", "can-i", "get", "pods", "--subresource=log"]);
    assert!(ok && out.trim() == "yes", "can-i get pods/log: {out}");
    let (ok, out, err) = run(&["auth", "whoami", "-o", "json"]);
    assert!(ok, "whoami: {err}");
    let v: Value = serde_json::from_str(&out).expect("whoami JSON");
    assert_eq!(v["status"]["userInfo"]["username"], USER, "{out}");
    let (ok, out, err) = run(&["auth", "can-i", "--list"]);
    assert!(
        ok && out.contains("jobs.batch") && out.contains("pods/log"),
        "can-i --list: {out} {err}"
    );

    let (ok, _, err) = run(&["delete", "job", "x"]);
    assert!(!ok);
    assert!(
        err.contains(&format!(r#"Error from server (Forbidden): jobs.batch "x" is forbidden: User "{USER}" cannot delete resource "jobs" in API group "batch" in the namespace "default""#)),
        "{err}"
    );
}
