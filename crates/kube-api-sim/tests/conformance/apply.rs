//! Server-side apply: field ownership in `metadata.managedFields`.
//!
//! Sources: "Server-Side Apply" (kubernetes.io/docs/reference/using-api/
//! server-side-apply/): field management (`FieldsV1`, `operation: Apply`
//! for applies, `Update` for other writes), conflicts ("Apply failed with 1
//! conflict: conflict with …" — a 409 whose causes are
//! `FieldManagerConflict` at each field), `force=true` taking the fields
//! over, and "a field that was previously applied but is omitted from the
//! next apply is removed" unless another manager owns it; the apiserver's
//! `NewConflictError`/`printManager` wording (k8s.io/apiserver
//! fieldmanager); `ValidatePatchOptions` (`fieldManager: Required value: is
//! required for apply patch`).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use super::kubectl_support::Cluster;

fn config(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": data})
}

fn managers(cm: &ConfigMap) -> Vec<(String, String, Value)> {
    cm.metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.manager.unwrap_or_default(),
                e.operation.unwrap_or_default(),
                e.fields_v1.map(|f| f.0).unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn apply_owns_fields_removes_what_it_stops_applying_and_conflicts_with_other_managers() {
    let (client, sim) = kube_api_sim::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let alice = PatchParams::apply("alice");
    let cm = cms
        .patch(
            "cm",
            &alice,
            &Patch::Apply(config(json!({"a": "1", "b": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        managers(&cm),
        [(
            "alice".to_string(),
            "Apply".to_string(),
            json!({"f:data": {"f:a": {}, "f:b": {}}})
        )]
    );
    // Alice no longer applies b: it is removed.
    let cm = cms
        .patch("cm", &alice, &Patch::Apply(config(json!({"a": "1"}))))
        .await
        .unwrap();
    assert_eq!(cm.data.clone().unwrap().len(), 1, "{cm:?}");

    // Bob changes a field Alice owns: 409 naming it; nothing is changed.
    let bob = PatchParams::apply("bob");
    let Err(kube::Error::Api(status)) = cms
        .patch("cm", &bob, &Patch::Apply(config(json!({"a": "9"}))))
        .await
    else {
        panic!("a conflict was expected");
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .data.a"
    );
    let cause = &status.details.unwrap().causes[0];
    assert_eq!(
        (
            cause.reason.as_str(),
            cause.field.as_str(),
            cause.message.as_str()
        ),
        ("FieldManagerConflict", ".data.a", "conflict with \"alice\"")
    );
    assert_eq!(cms.get("cm").await.unwrap().data.unwrap()["a"], "1");

    // The same value is shared; force takes the field over.
    cms.patch(
        "cm",
        &bob,
        &Patch::Apply(config(json!({"a": "1", "c": "3"}))),
    )
    .await
    .unwrap();
    let cm = cms
        .patch(
            "cm",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(config(json!({"a": "9", "c": "3"}))),
        )
        .await
        .unwrap();
    assert_eq!(cm.data.clone().unwrap()["a"], "9");
    let owners: Vec<String> = managers(&cm).into_iter().map(|m| m.0).collect();
    assert_eq!(owners, ["bob"], "alice owned only a: {:?}", managers(&cm));

    // An update (merge patch) is an `Update` entry and takes what it changed.
    let cm = cms
        .patch(
            "cm",
            &PatchParams {
                field_manager: Some("carol".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"c": "4"}})),
        )
        .await
        .unwrap();
    let carol = managers(&cm).into_iter().find(|m| m.0 == "carol").unwrap();
    assert_eq!(
        (carol.1.as_str(), &carol.2),
        ("Update", &json!({"f:data": {"f:c": {}}}))
    );

    // Without a fieldManager an apply is refused (raw HTTP: kube refuses it
    // client-side).
    let resp = reqwest::Client::new()
        .patch(format!(
            "{}/api/v1/namespaces/default/configmaps/cm",
            sim.url()
        ))
        .header("content-type", "application/apply-patch+yaml")
        .body("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: \"1\"\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    // A YAML apply body to an existing object is accepted.
    let resp = reqwest::Client::new()
        .patch(format!(
            "{}/api/v1/namespaces/default/configmaps/cm?fieldManager=bob&force=true",
            sim.url()
        ))
        .header("content-type", "application/apply-patch+yaml")
        .body("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: \"7\"\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cm = cms.get("cm").await.unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data["a"], "7");
    assert_eq!(data.get("c").map(String::as_str), Some("4"), "carol owns c");
}

#[test]
fn kubectl_server_side_apply_reports_conflicts_and_forces() {
    let cluster = Cluster::start();
    let first = cluster.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n",
    );
    cluster.ok(&["create", "-f", &first]);
    let second = cluster.file(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: safe\n",
    );
    let err = cluster.fails(&["apply", "--server-side", "-f", &second]);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1 at "),
        "{err}"
    );
    assert!(err.contains(": .data.mode"), "{err}");
    cluster.ok(&["apply", "--server-side", "--force-conflicts", "-f", &second]);
    let mode = cluster.ok(&[
        "get",
        "configmap",
        "settings",
        "-o",
        "jsonpath={.data.mode}",
    ]);
    assert_eq!(mode, "safe");
    let owners = cluster.ok(&[
        "get",
        "configmap",
        "settings",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(owners, "kubectl", "the create's only field was taken over");
}
