//! The one-line test helper: a simulator on port 0 and a ready `kube::Client`.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

#[tokio::test]
async fn start_hands_back_a_client_that_talks_to_a_fresh_simulator() {
    let (client, sim) = kube_api_sim::start().await.expect("simulator starts");
    assert_eq!(sim.addr().ip().to_string(), "127.0.0.1");
    assert_ne!(sim.addr().port(), 0);
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    assert!(cms
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .is_empty());
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "greeting"}, "data": {"hello": "world"}
    }))
    .expect("configmap");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let got = cms.get("greeting").await.expect("get");
    assert_eq!(got.data.expect("data")["hello"], "world");
    assert!(got.metadata.resource_version.is_some());
}
