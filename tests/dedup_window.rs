//! Exactly once over the redelivery window: the dedup record (ConfigMap
//! shards in the API server, `DEDUP_RETENTION_SECONDS`) answers a
//! redelivery whose Job Kubernetes already deleted (`ttlSecondsAfterFinished`,
//! here `JOB_TTL_SECONDS=1`; the simulator's Job controller deletes it)
//! `200 duplicate` naming the old Job with `"gone": true` — on the replica
//! that accepted it, after a restart of every replica, and for a repeated
//! comment under a new delivery id, and for a repeated Grafana alert (one
//! that fires again, with a new `startsAt`, is a new task); past the
//! retention the task runs anew.

mod api_support;
mod common;

use api_support::*;
use base64::Engine;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use orchestrator::cluster::dedup::SHARD_LABEL;
use serde_json::{json, Value};

/// Waits until Job `job` has run and Kubernetes' TTL deleted it.
async fn wait_deleted(app: &TestApp, job: &str) {
    wait_for("the finished Job to be deleted (TTL)", WAIT, || async {
        app.job(job).await.is_none().then_some(())
    })
    .await;
}

/// Waits until this replica wrote a dedup shard.
async fn wait_written(app: &TestApp) {
    wait_for("a dedup shard write", WAIT, || async {
        (app.handles.metrics.dedup().writes("ok") > 0).then_some(())
    })
    .await;
}

fn shards(app: &TestApp) -> Api<ConfigMap> {
    Api::namespaced(app.kube.clone(), "default")
}

async fn shard_names(app: &TestApp) -> Vec<String> {
    bounded(
        "list dedup shards",
        WAIT,
        shards(app).list(&ListParams::default().labels(SHARD_LABEL)),
    )
    .await
    .expect("list dedup shards")
    .items
    .into_iter()
    .filter_map(|c| c.metadata.name)
    .collect()
}

fn assert_gone(a: &Answer, job: &str, when: &str) {
    a.assert_json();
    assert_eq!(
        (a.status, a.status_field()),
        (200, "duplicate"),
        "{when}: {}",
        a.text
    );
    assert_eq!(a.job().as_deref(), Some(job), "{when}: names the old Job");
    assert_eq!(a.json["gone"], true, "{when}: says it is gone: {}", a.text);
}

const ENV: &[(&str, &str)] = &[("JOB_TTL_SECONDS", "1")];

#[tokio::test]
async fn a_redelivery_after_the_job_was_deleted_is_a_duplicate_even_after_a_restart() {
    let sim = start_sim(0.3);
    let app = spawn_app_on(sim.clone(), ENV).await;
    let delivery = delivery_id();
    let body = bytes(&issue_labeled_agent(41));
    let first = app.deliver("issues", &delivery, body.clone()).await;
    assert_eq!(
        (first.status, first.status_field()),
        (202, "queued"),
        "{}",
        first.text
    );
    let job = first.job().expect("the answer names the Job");
    // While the Job exists: the usual duplicate, no "gone".
    let live = app.deliver("issues", &delivery, body.clone()).await;
    assert_eq!((live.status, live.status_field()), (200, "duplicate"));
    assert!(live.json.get("gone").is_none(), "{}", live.text);
    wait_deleted(&app, &job).await;
    let again = app.deliver("issues", &delivery, body.clone()).await;
    assert_gone(&again, &job, "same replica");
    assert!(app.job_names().await.is_empty(), "no second Job");
    wait_written(&app).await;
    assert_eq!(shard_names(&app).await.len(), 1, "one shard");
    app.stop().await.expect("a clean stop");

    // Every replica restarted: nothing in memory, the Job long gone.
    let app = spawn_app_on(sim, ENV).await;
    let after = app.deliver("issues", &delivery, body).await;
    assert_gone(&after, &job, "after a restart");
    assert!(app.job_names().await.is_empty(), "no second Job");
    assert_eq!(app.pods_of(&job).await.len(), 0);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_repeated_comment_after_its_job_was_deleted_is_a_duplicate_on_another_replica() {
    let sim = start_sim(0.3);
    let a = spawn_app_on(sim.clone(), ENV).await;
    let b = spawn_app_on(sim, ENV).await;
    let comment = comment_agent("issue_comment/created.json");
    let first = a
        .deliver("issue_comment", &delivery_id(), bytes(&comment))
        .await;
    assert_eq!(
        (first.status, first.status_field()),
        (202, "queued"),
        "{}",
        first.text
    );
    let job = first.job().expect("job");
    wait_deleted(&a, &job).await;
    wait_written(&a).await;
    // The other replica reads the shard within its refresh period.
    wait_for("the other replica to read the record", WAIT, || async {
        (b.handles.metrics.dedup().keys() > 0).then_some(())
    })
    .await;
    // The same comment under a new delivery id (a second hook), to the
    // other replica.
    let again = b
        .deliver("issue_comment", &delivery_id(), bytes(&comment))
        .await;
    assert_gone(&again, &job, "other replica");
    assert!(a.job_names().await.is_empty(), "no second Job");
    a.stop().await.expect("a clean stop");
    b.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn past_the_retention_the_shard_is_deleted_and_the_task_runs_again() {
    let sim = start_sim(0.3);
    let env = &[
        ("JOB_TTL_SECONDS", "1"),
        ("DEDUP_RETENTION_SECONDS", "2"),
        ("DEDUP_CACHE_TTL_SECONDS", "1"),
    ];
    let app = spawn_app_on(sim, env).await;
    let delivery = delivery_id();
    let body = bytes(&issue_labeled_agent(43));
    let first = app.deliver("issues", &delivery, body.clone()).await;
    assert_eq!(first.status_field(), "queued", "{}", first.text);
    let job = first.job().expect("job");
    wait_written(&app).await;
    wait_deleted(&app, &job).await;
    // The Lease holder deletes the shard once it is past the retention,
    // and every replica forgets its keys.
    wait_for("the expired shard to be deleted", WAIT, || async {
        shard_names(&app).await.is_empty().then_some(())
    })
    .await;
    let again = app.deliver("issues", &delivery, body).await;
    assert_eq!(
        (again.status, again.status_field()),
        (202, "queued"),
        "a new run past the retention: {}",
        again.text
    );
    assert_eq!(again.job().as_deref(), Some(job.as_str()), "same name");
    app.stop().await.expect("a clean stop");
}

const GRAFANA_USER_PASS: &str = "grafana:correct-horse-battery";

async fn notify(app: &TestApp, body: &Value) -> Reply {
    let basic = base64::engine::general_purpose::STANDARD.encode(GRAFANA_USER_PASS);
    call(app, "POST", "/webhook/grafana")
        .header("authorization", &format!("Basic {basic}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).expect("serialize"))
        .send()
        .await
}

fn alert(starts_at: &str) -> Value {
    grafana_body(
        "firing",
        vec![grafana_alert(
            "firing",
            "d3d0bb1e5ca1ab1e",
            alert_labels("HighErrorRate", "critical", "acme/checkout"),
            starts_at,
        )],
    )
}

#[tokio::test]
async fn a_repeated_alert_after_its_job_was_deleted_is_a_duplicate_and_a_new_firing_is_new() {
    let env = &[
        ("JOB_TTL_SECONDS", "1"),
        ("API_TOKENS", API_TOKENS),
        ("GRAFANA_BASIC_AUTH", GRAFANA_USER_PASS),
    ];
    let app = spawn_app_on(start_sim(0.3), env).await;
    let first = notify(&app, &alert("2025-06-01T12:00:00Z")).await;
    let body = first.expect(202, "firing");
    assert_eq!(body["alerts"][0]["decision"], "queued", "{}", first.text);
    let job = body["alerts"][0]["job"]
        .as_str()
        .expect("the alert's Job")
        .to_string();
    wait_deleted(&app, &job).await;
    let again = notify(&app, &alert("2025-06-01T12:00:00Z")).await;
    let a = &again.expect(202, "repeated")["alerts"][0];
    assert_eq!(
        (&a["decision"], &a["job"], &a["gone"]),
        (&json!("duplicate"), &json!(job), &json!(true)),
        "{}",
        again.text
    );
    assert!(app.job_names().await.is_empty(), "no second Job");
    // The alert fires again later: a new investigation.
    let refired = notify(&app, &alert("2025-06-01T14:00:00Z")).await;
    let r = &refired.expect(202, "fired again")["alerts"][0];
    assert_eq!(r["decision"], "queued", "{}", refired.text);
    assert_ne!(r["job"], json!(job));
    app.stop().await.expect("a clean stop");
}
