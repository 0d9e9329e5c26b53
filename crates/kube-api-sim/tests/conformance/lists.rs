//! List and watch consistency: resourceVersion + resourceVersionMatch,
//! paged lists as one snapshot, streaming lists (`sendInitialEvents`).
//!
//! Sources: the api-concepts page, "Resource versions" and "Streaming lists"
//! (kubernetes.io/docs/reference/using-api/api-concepts/); apimachinery's
//! `ValidateListOptions` (staging/src/k8s.io/apimachinery/pkg/apis/meta/
//! internalversion/validation/validation.go) for the 422 messages; the
//! apiserver's etcd3 store for the 410 message; kubernetes/kubernetes#139485
//! for the 500 a malformed resourceVersion gets.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::{json, Value};

use super::http::{get, Watch, WAIT};

async fn make_cm(cms: &Api<ConfigMap>, name: &str) -> String {
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    created.metadata.resource_version.expect("rv")
}

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or(""))
        .collect()
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn exact_lists_read_the_state_at_that_version_and_410_once_compacted() {
    let (client, sim) = kube_api_sim::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv_a = make_cm(&cms, "a").await;
    make_cm(&cms, "b").await;
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    // Real: "Exact: return data at the exact resource version provided".
    let (code, list) = get(
        &sim.url(),
        &format!("{CMS}?resourceVersion={rv_a}&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(names(&list), ["a"]);
    assert_eq!(list["metadata"]["resourceVersion"], rv_a.as_str());
    // NotOlderThan an old version is the newest state.
    let (_, list) = get(
        &sim.url(),
        &format!("{CMS}?resourceVersion={rv_a}&resourceVersionMatch=NotOlderThan"),
    )
    .await;
    assert_eq!(names(&list), ["b"]);
    // Once compacted: 410 Expired "The resourceVersion for the provided list is too old."
    sim.store().compact();
    let (code, status) = get(
        &sim.url(),
        &format!("{CMS}?resourceVersion={rv_a}&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!(code, 410, "{status}");
    assert_eq!(status["reason"], "Expired");
    assert_eq!(
        status["message"],
        "The resourceVersion for the provided list is too old."
    );
}

#[tokio::test]
async fn malformed_future_and_unmatched_versions_are_refused_as_a_real_server_does() {
    let (_client, sim) = kube_api_sim::start().await.unwrap();
    // kubernetes/kubernetes#139485: 500, no reason, the parse error.
    let (code, status) = get(&sim.url(), &format!("{CMS}?resourceVersion=abc")).await;
    assert_eq!(code, 500, "{status}");
    assert!(status.get("reason").is_none(), "{status}");
    assert_eq!(
        status["message"],
        "resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax"
    );
    // ValidateListOptions: 422 with the field cause.
    let (code, status) = get(
        &sim.url(),
        &format!("{CMS}?resourceVersionMatch=NotOlderThan"),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["kind"], "ListOptions");
    assert_eq!(status["details"]["group"], "meta.k8s.io");
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldValueForbidden", "field": "resourceVersionMatch",
               "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"})
    );
    // A version the server has not reached: after a short wait, 504 Timeout
    // "Too large resource version" (api-concepts, "Resource versions").
    let (code, status) = get(&sim.url(), &format!("{CMS}?resourceVersion=999999")).await;
    assert_eq!(code, 504, "{status}");
    assert_eq!(status["reason"], "Timeout");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
}

#[tokio::test]
async fn paged_lists_are_one_snapshot_at_the_first_page_s_version() {
    let (client, sim) = kube_api_sim::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for n in ["a", "b", "c"] {
        make_cm(&cms, n).await;
    }
    let (_, first) = get(&sim.url(), &format!("{CMS}?limit=2")).await;
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 1);
    let token = first["metadata"]["continue"].as_str().expect("continue");
    // Changes after the first page do not show on later pages.
    cms.delete("c", &DeleteParams::default()).await.unwrap();
    make_cm(&cms, "d").await;
    let (code, second) = get(&sim.url(), &format!("{CMS}?limit=2&continue={token}")).await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(names(&second), ["c"]);
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    assert!(second["metadata"].get("continue").is_none(), "{second}");
    // A resourceVersion next to a continue token: 400 (etcd3 store).
    let (code, status) = get(
        &sim.url(),
        &format!("{CMS}?limit=2&continue={token}&resourceVersion=5"),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    // The kube client's paged list (limit 1) sees the new state whole.
    let all = cms
        .list(&kube::api::ListParams::default().limit(1))
        .await
        .unwrap();
    let got: Vec<_> = all
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(got, ["a"], "one page of one item");
}

#[tokio::test]
async fn watch_lists_need_not_older_than_and_end_their_initial_events_with_a_bookmark() {
    let (client, sim) = kube_api_sim::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = make_cm(&cms, "a").await;
    make_cm(&cms, "b").await;
    // validateWatchOptions: sendInitialEvents needs resourceVersionMatch=NotOlderThan.
    let (code, status) = get(
        &sim.url(),
        &format!("{CMS}?watch=true&sendInitialEvents=true"),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    );
    // With a version: the current state as ADDED, then a BOOKMARK annotated
    // k8s.io/initial-events-end (api-concepts, "Streaming lists").
    let mut w = Watch::open(
        &sim.url(),
        &format!(
            "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion={rv}"
        ),
    )
    .await;
    let mut added = Vec::new();
    let bookmark = loop {
        let ev = w.next().await.expect("an event");
        match ev["type"].as_str() {
            Some("ADDED") => added.push(ev["object"]["metadata"]["name"].clone()),
            Some("BOOKMARK") => break ev,
            other => panic!("unexpected {other:?}: {ev}"),
        }
    };
    assert_eq!(added, [json!("a"), json!("b")]);
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // sendInitialEvents=false without a version: only what happens next.
    let mut later = Watch::open(
        &sim.url(),
        &format!("{CMS}?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan"),
    )
    .await;
    make_cm(&cms, "c").await;
    let ev = later.next().await.expect("an event");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "c");
    // kube's watcher in streaming-list mode ends its initial list (InitDone).
    let cfg = watcher::Config::default().streaming_lists();
    let mut stream = watcher(cms, cfg).boxed();
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(WAIT, stream.try_next())
            .await
            .expect("watcher event in time")
            .expect("watcher ok")
            .expect("stream open");
        match ev {
            watcher::Event::InitApply(cm) => seen.push(cm.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["a", "b", "c"]);
}
