//! Objects with lifecycles: what a pod update may change.
//!
//! Source: `ValidatePodUpdate` and `ValidateContainerUpdates`
//! (pkg/apis/core/validation/validation.go in the Kubernetes repository):
//! only container images, `activeDeadlineSeconds` (set or lowered, never
//! removed), added tolerations and `terminationGracePeriodSeconds` (negative
//! to 1) may change; a different number of containers is `Forbidden` at
//! `spec.containers` ("pod updates may not add or remove containers");
//! anything else is a 422 whose cause is `Forbidden` at `spec`, "pod updates
//! may not change fields other than `spec.containers[*].image`,…", which
//! kubectl prints as `The Pod "p" is invalid: spec: Forbidden: …`.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use super::kubectl_support::Cluster;

const FORBIDDEN: &str = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

async fn rejected(pods: &Api<Pod>, patch: serde_json::Value) -> kube::core::Status {
    match pods
        .patch("p", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("{patch} should be refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_pod_update_may_change_images_but_not_the_rest_of_its_spec() {
    let (client, _sim) = kube_api_sim::start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "annotations": {"sim.orchestrator.dev/run-seconds": "60"}},
        "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 60,
            "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let allowed = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}],
        "activeDeadlineSeconds": 30,
        "tolerations": [{"key": "k", "operator": "Exists"}]}});
    let p = pods
        .patch("p", &PatchParams::default(), &Patch::Strategic(&allowed))
        .await
        .expect("images, a lower deadline and new tolerations may change");
    let spec = p.spec.unwrap();
    assert_eq!(spec.containers[0].image.as_deref(), Some("busybox:1.37"));
    assert_eq!(spec.active_deadline_seconds, Some(30));

    let status = rejected(
        &pods,
        json!({"spec": {"containers": [{"name": "c", "command": ["sh"]}]}}),
    )
    .await;
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .starts_with(&format!("Pod \"p\" is invalid: {FORBIDDEN}")),
        "{}",
        status.message
    );

    let status = rejected(&pods, json!({"spec": {"activeDeadlineSeconds": 40}})).await;
    assert_eq!(
        status.message,
        "Pod \"p\" is invalid: spec.activeDeadlineSeconds: Invalid value: 40: must be less than or equal to previous value"
    );
    let status = rejected(
        &pods,
        json!({"spec": {"containers": [{"name": "d", "image": "busybox"}]}}),
    )
    .await;
    assert_eq!(
        status.message,
        "Pod \"p\" is invalid: spec.containers: Forbidden: pod updates may not add or remove containers"
    );
    // Nothing of the refused updates was kept.
    let kept = pods.get("p").await.unwrap().spec.unwrap();
    assert_eq!(kept.containers.len(), 1);
    assert_eq!(kept.containers[0].command, None);
    assert_eq!(kept.active_deadline_seconds, Some(30));
}

#[test]
fn kubectl_apply_of_a_changed_pod_command_is_forbidden() {
    let cluster = Cluster::start();
    let manifest = |command: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    \
             sim.orchestrator.dev/run-seconds: \"60\"\nspec:\n  restartPolicy: Never\n  \
             containers:\n  - name: c\n    image: {command}\n    command: [\"{command}\"]\n"
        )
    };
    let first = cluster.file("p1.yaml", &manifest("busybox"));
    cluster.ok(&["apply", "-f", &first]);
    let second = cluster.file("p2.yaml", &manifest("alpine"));
    let err = cluster.fails(&["apply", "-f", &second]);
    assert!(
        err.contains(&format!("The Pod \"p\" is invalid: {FORBIDDEN}")),
        "{err}"
    );
    let image = cluster.ok(&[
        "get",
        "pod",
        "p",
        "-o",
        "jsonpath={.spec.containers[0].image}",
    ]);
    assert_eq!(image, "busybox");
}

/// A pod's requests default to its limits and its QoS class follows its
/// resources. Sources: `SetDefaults_Pod` (pkg/apis/core/v1/defaults.go) and
/// `ComputePodQOS` (pkg/apis/core/helper/qos), as the Kubernetes task
/// "Configure Quality of Service for Pods" shows them: limits only for cpu
/// and memory give requests equal to them and `qosClass: Guaranteed`; a
/// request below its limit gives `Burstable`; no resources `BestEffort`.
#[tokio::test]
async fn pod_requests_default_to_limits_and_the_qos_class_follows_the_resources() {
    let (client, _sim) = kube_api_sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod = |name: &str, containers: serde_json::Value| -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name}, "spec": {"containers": containers}}))
        .expect("a pod")
    };
    let c = |name: &str, resources: serde_json::Value| json!({"name": name, "image": "nginx", "resources": resources});
    let cases = [
        (
            "guaranteed",
            json!([c(
                "a",
                json!({"limits": {"cpu": "700m", "memory": "200Mi"}})
            )]),
            "Guaranteed",
        ),
        (
            "burstable",
            json!([c(
                "a",
                json!({"requests": {"memory": "100Mi"}, "limits": {"memory": "200Mi"}})
            )]),
            "Burstable",
        ),
        (
            "one-limited",
            json!([
                c("a", json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
                c("b", json!({}))
            ]),
            "Burstable",
        ),
        ("best-effort", json!([c("a", json!({}))]), "BestEffort"),
    ];
    for (name, containers, qos) in cases {
        let created = pods
            .create(&PostParams::default(), &pod(name, containers))
            .await
            .expect("created");
        let status = created.status.expect("a status");
        assert_eq!(status.qos_class.as_deref(), Some(qos), "{name}");
        if name == "guaranteed" {
            let r = created.spec.expect("a spec").containers[0]
                .resources
                .clone()
                .expect("resources");
            assert_eq!(r.requests, r.limits, "requests default to limits");
        }
    }
    // The defaulted requests are not a change when the manifest comes back.
    let p = pods.get("guaranteed").await.expect("the pod");
    let mut original = p.clone();
    if let Some(r) = original
        .spec
        .as_mut()
        .and_then(|s| s.containers[0].resources.as_mut())
    {
        r.requests = None;
    }
    pods.replace("guaranteed", &PostParams::default(), &original)
        .await
        .expect("replacing with the manifest as written is no change");
}
