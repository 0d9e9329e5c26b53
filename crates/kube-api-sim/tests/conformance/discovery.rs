//! Discovery and tools: trailing-slash discovery paths, `/openapi/v2`, and
//! the real OpenAPI v3 schemas behind `kubectl explain`.
//!
//! Sources: a real kube-apiserver serves `/version/`, `/api/v1/` and
//! `/apis/batch/v1/` like their slash-less forms (go-restful routes; observed
//! with `kubectl get --raw`); `kubectl explain` reads `/openapi/v3`
//! (kubectl's explain reference page) and prints the field documentation of
//! the official OpenAPI document (api/openapi-spec in the Kubernetes
//! repository).

use super::http::get;
use super::kubectl_support::Cluster;

#[tokio::test]
async fn discovery_paths_answer_with_a_trailing_slash_too() {
    let (_client, sim) = kube_api_sim::start().await.unwrap();
    let (code, v) = get(&sim.url(), "/version/").await;
    assert_eq!((code, v["major"].as_str()), (200, Some("1")));
    let (code, v) = get(&sim.url(), "/api/v1/").await;
    assert_eq!((code, v["kind"].as_str()), (200, Some("APIResourceList")));
    let (code, v) = get(&sim.url(), "/apis/batch/v1/").await;
    assert_eq!((code, v["groupVersion"].as_str()), (200, Some("batch/v1")));
    let (code, v) = get(&sim.url(), "/apis/").await;
    assert_eq!((code, v["kind"].as_str()), (200, Some("APIGroupList")));
    // The Swagger 2.0 document with the real definitions.
    let (code, v) = get(&sim.url(), "/openapi/v2").await;
    assert_eq!(code, 200);
    assert_eq!(v["swagger"], "2.0");
    assert_eq!(
        v["definitions"]["io.k8s.api.batch.v1.Job"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Job"
    );
}

#[test]
fn kubectl_explain_prints_the_real_field_documentation() {
    let c = Cluster::start();
    let out = c.ok(&["explain", "job.spec"]);
    assert!(out.contains("GROUP:      batch"), "{out}");
    assert!(out.contains("FIELD: spec <JobSpec>"), "{out}");
    assert!(out.contains("backoffLimit\t<integer>"), "{out}");
    assert!(
        out.contains("Specifies the number of retries before marking this job failed"),
        "{out}"
    );
    let out = c.ok(&["explain", "pods.spec.containers.image"]);
    assert!(out.contains("Container image name"), "{out}");
    let out = c.ok(&["explain", "lease.spec.renewTime"]);
    assert!(out.contains("<string>"), "{out}");
}

#[tokio::test]
async fn aggregated_discovery_is_served_to_clients_that_ask_for_it() {
    // The v2 document and media type kubectl 1.32 asks for first
    // (KEP-3352 aggregated discovery; apidiscovery.k8s.io/v2 reference).
    let (_client, sim) = kube_api_sim::start().await.unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/apis", sim.url()))
        .header(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    let batch = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "batch")
        .expect("batch group");
    let jobs = &batch["versions"][0]["resources"][0];
    assert_eq!(jobs["resource"], "jobs");
    assert_eq!(jobs["scope"], "Namespaced");
    assert_eq!(jobs["subresources"][0]["subresource"], "status");
    // Plain JSON clients still get the legacy APIGroupList.
    let (_, legacy) = get(&sim.url(), "/apis").await;
    assert_eq!(legacy["kind"], "APIGroupList");
}
