//! "Never lose what we accepted": a PM task whose files or Job cannot be
//! created (simulator fault injection) is never answered "duplicate" while
//! incomplete, its Job never exists without its files' ConfigMap, and a
//! retry after the fault completes it; redeliveries of a task in flight are
//! duplicates, never rate-limited.

mod api_support;
mod common;

use api_support::*;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::{json, Value};

async fn app(env: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("API_TOKENS", API_TOKENS)];
    all.extend_from_slice(env);
    spawn_app_on(start_sim(0.3), &all).await
}

fn pm_task(id: &str) -> Value {
    json!({
        "id": id,
        "title": "Document the API",
        "description": "Write the API guide.",
        "markdown_files": [
            {"filename": "prd.md", "content": "# PRD\n\nThe guide.\n", "file_type": "prd"}
        ]
    })
}

async fn post_pm(app: &TestApp, id: &str) -> Reply {
    call(app, "POST", "/api/v1/pm/tasks")
        .token(PM_TOKEN)
        .json(&pm_task(id))
        .send()
        .await
}

async fn get_pm(app: &TestApp, id: &str) -> Reply {
    call(app, "GET", &format!("/api/v1/pm/tasks/{id}"))
        .token(PM_TOKEN)
        .send()
        .await
}

fn configmaps(app: &TestApp) -> Api<ConfigMap> {
    Api::namespaced(app.kube.clone(), "default")
}

/// Every managed Job of the test's namespace, by name.
async fn job_names(app: &TestApp) -> Vec<String> {
    app.job_names().await
}

/// The task's Job is complete: it exists, mounts `<job>-files`, and that
/// ConfigMap exists and is owned by the Job.
async fn assert_complete(app: &TestApp, job: &str) {
    let j = app.job(job).await.expect("the Job exists");
    let uid = j.metadata.uid.clone().expect("a uid");
    let volumes = j
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.volumes)
        .unwrap_or_default();
    let mounted = volumes
        .iter()
        .find_map(|v| v.config_map.as_ref().map(|c| c.name.clone()))
        .expect("the Job mounts a ConfigMap");
    assert_eq!(mounted, format!("{job}-files"));
    let cm = configmaps(app)
        .get_opt(&mounted)
        .await
        .expect("get ConfigMap")
        .expect("the files ConfigMap exists");
    let owners = cm.metadata.owner_references.unwrap_or_default();
    assert!(
        owners.iter().any(|o| o.kind == "Job" && o.uid == uid),
        "the ConfigMap is owned by the Job: {owners:?}"
    );
}

#[actix_rt::test]
async fn a_pm_task_whose_files_cannot_be_stored_is_never_a_duplicate_and_never_a_job() {
    let app = app(&[]).await;
    // The attack run's exact fault: every ConfigMap create fails with 500.
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "create", "resource": "configmaps", "rate": 1.0, "status": 500}]}),
    )
    .await;
    let r = post_pm(&app, "lost-1").await;
    assert_eq!(r.status, 503, "{}", r.text);
    r.expect_json("503");
    assert!(
        job_names(&app).await.is_empty(),
        "a Job exists without its files"
    );
    // A retry while the fault lasts (answered at once with a 403 this time)
    // is not a duplicate of something that does not exist.
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "create", "resource": "configmaps", "rate": 1.0, "status": 403}]}),
    )
    .await;
    let r = post_pm(&app, "lost-1").await;
    assert_eq!(r.status, 503, "retry during the fault: {}", r.text);
    assert!(job_names(&app).await.is_empty());
    let g = get_pm(&app, "lost-1").await;
    assert_eq!(g.status, 404, "{}", g.text);

    clear_faults(&app.sim).await;
    let r = post_pm(&app, "lost-1").await;
    assert_eq!(
        r.expect(202, "after the fault")["status"],
        "queued",
        "{}",
        r.text
    );
    let job = job_of(&r);
    assert_complete(&app, &job).await;
    let g = get_pm(&app, "lost-1").await;
    assert_eq!(g.expect(200, "GET")["name"], job.as_str());
    let again = post_pm(&app, "lost-1").await;
    assert_eq!(again.expect(200, "again")["status"], "duplicate");
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn a_refused_job_create_takes_its_files_back_and_a_retry_makes_both() {
    let app = app(&[]).await;
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "create", "resource": "jobs", "rate": 1.0, "status": 403}]}),
    )
    .await;
    let r = post_pm(&app, "refused-1").await;
    assert_eq!(r.status, 503, "{}", r.text);
    r.expect_json("refused");
    assert!(job_names(&app).await.is_empty());
    let cms = configmaps(&app)
        .list(&Default::default())
        .await
        .expect("list ConfigMaps");
    assert!(
        cms.items
            .iter()
            .all(|c| !c.metadata.name.as_deref().unwrap_or("").ends_with("-files")),
        "the files of the refused Job were left behind"
    );
    clear_faults(&app.sim).await;
    let r = post_pm(&app, "refused-1").await;
    assert_eq!(r.expect(202, "retry")["status"], "queued");
    assert_complete(&app, &job_of(&r)).await;
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn a_job_whose_files_are_not_yet_owned_is_completed_before_it_is_a_duplicate() {
    let app = app(&[]).await;
    // The Job and its files are created, but the owner reference cannot be
    // set: the request fails, the task is runnable, and the retry finishes it.
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "patch", "resource": "configmaps", "rate": 1.0, "status": 403}]}),
    )
    .await;
    let r = post_pm(&app, "half-1").await;
    assert_eq!(r.status, 503, "{}", r.text);
    let names = job_names(&app).await;
    assert_eq!(names.len(), 1, "{names:?}");
    let cm = configmaps(&app)
        .get_opt(&format!("{}-files", names[0]))
        .await
        .expect("get")
        .expect("the Job's files exist before the Job");
    assert!(cm.metadata.owner_references.unwrap_or_default().is_empty());
    let r = post_pm(&app, "half-1").await;
    assert_eq!(
        r.status, 503,
        "not a duplicate while incomplete: {}",
        r.text
    );
    clear_faults(&app.sim).await;
    let r = post_pm(&app, "half-1").await;
    assert_eq!(r.expect(200, "retry")["status"], "duplicate", "{}", r.text);
    assert_eq!(job_of(&r), names[0]);
    assert_complete(&app, &names[0]).await;
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn redeliveries_of_a_task_in_flight_are_duplicates_never_rate_limited() {
    let app = app(&[
        ("RATE_LIMIT_PER_REPO_PER_MINUTE", "3"),
        ("RATE_LIMIT_PER_SENDER_PER_MINUTE", "3"),
    ])
    .await;
    set_faults(&app.sim, json!({"latency_ms": 400})).await;
    let body = task("one task, many deliveries", "acme/widgets");
    let sends = (0..40).map(|_| submit_task(&app, &body, Some("the-one-key")));
    let replies = futures::future::join_all(sends).await;
    let mut counts = std::collections::BTreeMap::<(u16, String), usize>::new();
    for r in &replies {
        let status = r.json["status"].as_str().unwrap_or("?").to_string();
        *counts.entry((r.status, status)).or_default() += 1;
    }
    assert_eq!(
        counts,
        [
            ((200, "duplicate".to_string()), 39),
            ((202, "queued".to_string()), 1)
        ]
        .into_iter()
        .collect(),
        "answers"
    );
    let jobs: std::collections::BTreeSet<String> = replies.iter().map(job_of).collect();
    assert_eq!(jobs.len(), 1, "every answer names the one Job: {jobs:?}");
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn api_server_refusals_answer_our_code_and_request_id_never_its_text() {
    let app = app(&[]).await;
    // RBAC denial: the operator fixes the Role and the service recovers
    // without a restart, so the sender is told to come back later.
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "create", "resource": "jobs", "rate": 1.0, "status": 403}]}),
    )
    .await;
    let r = submit_task(&app, &task("forbidden", "acme/widgets"), None).await;
    assert_eq!(
        r.status, 503,
        "a permission the operator must grant: {}",
        r.text
    );
    assert_eq!(r.json["error"], "unavailable", "{}", r.text);
    assert_eq!(r.retry_after.as_deref(), Some("30"), "{}", r.text);
    let id = r.json["request_id"]
        .as_str()
        .expect("a request id")
        .to_string();
    assert!(!id.is_empty());
    let lower = r.text.to_lowercase();
    for leak in [
        "forbidden",
        "system:",
        "serviceaccount",
        "jobs.batch",
        "injected",
    ] {
        assert!(
            !lower.contains(leak),
            "API-server text {leak:?} reached the client: {}",
            r.text
        );
    }
    // The API server calls our Job invalid: our problem, not temporary and
    // not the client's (never a client 422), with a fixed text.
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "create", "resource": "jobs", "rate": 1.0, "status": 422}]}),
    )
    .await;
    let r = submit_task(&app, &task("invalid on the server", "acme/widgets"), None).await;
    assert_eq!(
        r.status, 500,
        "a server-side 422 is not a client 422: {}",
        r.text
    );
    assert_eq!(r.json["error"], "server_error", "{}", r.text);
    assert!(!r.text.contains("injected"), "{}", r.text);
    clear_faults(&app.sim).await;
    app.stop().await.expect("clean stop");
}
