//! The server-side `Table` and `PartialObjectMetadata` answers over real
//! HTTP: what `kubectl get` (and metadata-only clients) receive.

use std::time::Duration;

use serde_json::{json, Value};

use super::{SimConfig, SimServer};

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

async fn get_json(url: &str, accept: &str) -> Value {
    let req = reqwest::Client::new()
        .get(url)
        .header("accept", accept)
        .timeout(Duration::from_secs(10));
    let resp = req.send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    resp.json().await.expect("JSON body")
}

#[tokio::test]
async fn server_side_tables_carry_partial_object_metadata_or_the_full_object() {
    let server = SimServer::start_local(SimConfig::default()).expect("simulator starts");
    let cms = format!("{}/api/v1/namespaces/default/configmaps", server.url());
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "labels": {"k": "v"}}, "data": {"x": "1"}});
    let created = reqwest::Client::new()
        .post(&cms)
        .json(&cm)
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);

    let t = get_json(&cms, TABLE).await;
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(cols, ["Name", "Data", "Age"]);
    assert!(
        t["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty()),
        "{t}"
    );
    let row = &t["rows"][0];
    assert_eq!(
        (row["cells"][0].clone(), row["cells"][1].clone()),
        (json!("c1"), json!(1))
    );
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["labels"]["k"], "v");
    assert!(row["object"].get("data").is_none());

    let full = get_json(&format!("{cms}?includeObject=Object"), TABLE).await;
    assert_eq!(full["rows"][0]["object"]["data"]["x"], "1");
    let one = get_json(&format!("{cms}/c1"), TABLE).await;
    assert_eq!(
        (one["kind"].clone(), one["rows"].as_array().map(Vec::len)),
        (json!("Table"), Some(1))
    );
    let plain = get_json(&cms, "application/json").await;
    assert_eq!(
        (
            plain["kind"].as_str(),
            plain["items"][0]["data"]["x"].as_str()
        ),
        (Some("ConfigMapList"), Some("1"))
    );
    let meta = get_json(
        &cms,
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await;
    assert_eq!(meta["kind"], "PartialObjectMetadataList");
    assert_eq!(meta["items"][0]["metadata"]["name"], "c1");
}

#[tokio::test]
async fn a_table_watch_sends_column_definitions_with_the_first_event_only() {
    use futures::StreamExt;
    let server = SimServer::start_local(SimConfig::default()).expect("simulator starts");
    let cms = format!("{}/api/v1/namespaces/default/configmaps", server.url());
    let client = reqwest::Client::new();
    let watch = client
        .get(format!("{cms}?watch=true&timeoutSeconds=5"))
        .header("accept", TABLE)
        .send();
    let resp = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .expect("watch answers")
        .expect("watch");
    assert_eq!(resp.headers()["content-type"], "application/json");
    for name in ["w1", "w2"] {
        let cm = json!({"metadata": {"name": name}, "data": {}});
        client.post(&cms).json(&cm).send().await.expect("create");
    }
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let read = async {
        while text.lines().count() < 2 {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("two events");
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect();
    for (ev, name) in events.iter().zip(["w1", "w2"]) {
        assert_eq!(
            (ev["type"].as_str(), ev["object"]["kind"].as_str()),
            (Some("ADDED"), Some("Table"))
        );
        assert_eq!(ev["object"]["rows"][0]["cells"][0], name);
    }
    assert!(events[0]["object"]["columnDefinitions"]
        .as_array()
        .is_some_and(|c| c.len() == 3));
    assert!(events[1]["object"]["columnDefinitions"].is_null());
}
