//! Write-only fields: a Secret's `stringData`.
//!
//! Source: the `stringData` field documentation of core/v1 Secret ("a
//! write-only convenience method … All keys and values are merged into the
//! data field on write, overwriting any existing values. The stringData
//! field is never output when reading from the API") and its conversion
//! (`Convert_v1_Secret_To_core_Secret` in pkg/apis/core/v1/conversion.go),
//! which merges on every write: create, update, patch and apply.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

fn plain(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

#[tokio::test]
async fn secret_string_data_is_merged_into_data_on_every_write_and_never_returned() {
    let (client, _sim) = kube_api_sim::start().await.unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        // "a" in both: stringData wins.
        "data": {"a": "ZnJvbS1kYXRh", "b": "Yg=="},
        "stringData": {"a": "from-string-data", "c": "c-value"},
    }))
    .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(created.string_data.is_none(), "never returned: {created:?}");
    assert_eq!(plain(&created, "a").as_deref(), Some("from-string-data"));
    assert_eq!(plain(&created, "b").as_deref(), Some("b"));
    assert_eq!(plain(&created, "c").as_deref(), Some("c-value"));

    // Read back: stringData is not there (it would deserialize into
    // `string_data`), data holds the merged values.
    let read = secrets.get("s").await.unwrap();
    assert!(read.string_data.is_none(), "{read:?}");
    assert_eq!(plain(&read, "c").as_deref(), Some("c-value"));

    // A patch with stringData merges too.
    let patched = secrets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"b": "new-b"}})),
        )
        .await
        .unwrap();
    assert!(patched.string_data.is_none());
    assert_eq!(plain(&patched, "b").as_deref(), Some("new-b"));
    assert_eq!(plain(&patched, "a").as_deref(), Some("from-string-data"));

    // A replace with only stringData keeps its keys in data.
    let mut replace: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "stringData": {"only": "one"},
    }))
    .unwrap();
    replace.metadata.resource_version = patched.metadata.resource_version.clone();
    let replaced = secrets
        .replace("s", &PostParams::default(), &replace)
        .await
        .unwrap();
    assert!(replaced.string_data.is_none());
    assert_eq!(plain(&replaced, "only").as_deref(), Some("one"));
    assert_eq!(replaced.data.as_ref().map(|d| d.len()), Some(1));
}
