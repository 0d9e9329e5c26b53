//! Black-box tests of the PM Agent source (`POST /api/v1/pm/tasks`,
//! `GET /api/v1/pm/tasks/{id}`): Task Master documents, markdown files as a
//! ConfigMap owned by the Job, dedup by task id, field-level 422s and token
//! scopes.

mod api_support;
mod common;

use api_support::*;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams};
use serde_json::{json, Value};

async fn app(run_seconds: f64) -> TestApp {
    spawn_app_on(
        start_sim(run_seconds),
        &[("API_TOKENS", API_TOKENS), ("MAX_CONCURRENT_JOBS", "1")],
    )
    .await
}

/// A Task Master task as the PM Agent sends it.
fn pm_task(id: &str) -> Value {
    json!({
        "id": id,
        "title": "Add rate limiting to the public API",
        "description": "Protect the API from bursts.",
        "details": "Use a token bucket per API key; answer 429 with Retry-After.",
        "test_strategy": "Unit tests for the bucket; an integration test sending 100 requests.",
        "priority": "high",
        "dependencies": [1, 2],
        "status": "pending",
        "subtasks": [
            {"id": 1, "title": "Bucket", "description": "Implement the token bucket"},
            {"id": 2, "title": "Middleware"}
        ],
        "service_name": "public-api",
        "agent_name": "implementer",
        "model": "claude-sonnet-4",
        "repository": {"url": "https://github.com/acme/api.git", "branch": "main", "github_user": "acme-bot"},
        "working_directory": "services/api",
        "markdown_files": [
            {"filename": "prd.md", "content": "# PRD\n\nRate limiting for the public API.\n", "file_type": "prd"},
            {"filename": "docs/architecture.md", "content": "# Architecture\n\nOne bucket per key.\n", "file_type": "architecture"}
        ],
        "agent_tools": ["git", "cargo"],
        "prompt_modification": "Keep the change small.",
        "prompt_mode": "append"
    })
}

async fn post_pm(app: &TestApp, token: Option<&str>, body: &Value) -> Reply {
    let mut c = call(app, "POST", "/api/v1/pm/tasks").json(body);
    if let Some(t) = token {
        c = c.token(t);
    }
    c.send().await
}

fn configmaps(app: &TestApp) -> Api<ConfigMap> {
    Api::namespaced(app.kube.clone(), "default")
}

async fn configmap(app: &TestApp, name: &str) -> Option<ConfigMap> {
    bounded("get configmap", WAIT, configmaps(app).get_opt(name))
        .await
        .expect("get configmap")
}

#[tokio::test]
async fn a_pm_task_with_markdown_files_gets_a_job_with_the_files_configmap_mounted_read_only_and_owned_by_the_job(
) {
    let app = app(60.0).await;
    let r = post_pm(&app, Some(PM_TOKEN), &pm_task("101")).await;
    assert_eq!(r.expect(202, "pm task")["status"], "queued");
    let name = job_of(&r);
    let job = app
        .job(&name)
        .await
        .expect("the Job exists once 202 is answered");
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("orchestrator.dev/source").map(String::as_str),
        Some("pm-agent")
    );
    let pod = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.config_map.is_some())
        .expect("a ConfigMap volume");
    let source = volume.config_map.as_ref().expect("configMap source");
    let cm_name = source.name.clone();
    assert_eq!(cm_name, format!("{name}-files"));
    let mut paths: Vec<String> = source
        .items
        .iter()
        .flatten()
        .map(|i| i.path.clone())
        .collect();
    paths.sort();
    assert_eq!(paths, ["docs/architecture.md", "prd.md"]);
    let agent = pod
        .containers
        .iter()
        .find(|c| c.name == "agent")
        .expect("the agent container");
    let mount = agent
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .expect("the volume is mounted in the agent container");
    assert_eq!(mount.mount_path, "/task/files");
    assert_eq!(mount.read_only, Some(true), "mounted read-only");

    let cm = configmap(&app, &cm_name)
        .await
        .expect("the ConfigMap exists");
    let owners = cm.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].kind, "Job");
    assert_eq!(owners[0].api_version, "batch/v1");
    assert_eq!(owners[0].name, name);
    assert_eq!(
        Some(owners[0].uid.clone()),
        job.metadata.uid,
        "owned by this Job (uid)"
    );
    let data = cm.data.clone().unwrap_or_default();
    let by_path: Vec<(String, String)> = source
        .items
        .iter()
        .flatten()
        .map(|i| {
            (
                i.path.clone(),
                data.get(&i.key).cloned().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        by_path.contains(&(
            "prd.md".into(),
            "# PRD\n\nRate limiting for the public API.\n".into()
        )),
        "{by_path:?}"
    );
    assert!(
        by_path.contains(&(
            "docs/architecture.md".into(),
            "# Architecture\n\nOne bucket per key.\n".into()
        )),
        "{by_path:?}"
    );
    // The Job records who asked and what.
    let view = wait_state(&app, &name, "running", WAIT).await;
    assert_eq!(view["source"], "pm-agent");
    assert_eq!(view["repository"], "acme/api");
}

#[tokio::test]
async fn deleting_the_job_with_background_propagation_garbage_collects_its_files_configmap() {
    let app = app(60.0).await;
    let r = post_pm(&app, Some(PM_TOKEN), &pm_task("102")).await;
    r.expect(202, "pm task");
    let name = job_of(&r);
    let cm_name = format!("{name}-files");
    wait_for("the ConfigMap", WAIT, || async {
        configmap(&app, &cm_name).await
    })
    .await;
    bounded(
        "delete the job",
        WAIT,
        app.jobs_api().delete(&name, &DeleteParams::background()),
    )
    .await
    .expect("delete the Job");
    wait_for("the ConfigMap to be garbage-collected", WAIT, || async {
        configmap(&app, &cm_name).await.is_none().then_some(())
    })
    .await;
    wait_for("the Job to be gone", WAIT, || async {
        app.job(&name).await.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_same_pm_task_id_again_is_answered_200_duplicate_without_a_new_job() {
    let app = app(60.0).await;
    let first = post_pm(&app, Some(PM_TOKEN), &pm_task("103")).await;
    first.expect(202, "first");
    let mut changed = pm_task("103");
    changed["title"] = json!("The same task, edited");
    let again = post_pm(&app, Some(PM_TOKEN), &changed).await;
    assert_eq!(again.expect(200, "again")["status"], "duplicate");
    assert_eq!(job_of(&again), job_of(&first));
    // A numeric id is the same task as its string form.
    let mut numeric = pm_task("103");
    numeric["id"] = json!(103);
    let n = post_pm(&app, Some(PM_TOKEN), &numeric).await;
    assert_eq!(
        n.expect(200, "numeric id")["status"],
        "duplicate",
        "{}",
        n.text
    );
    assert_eq!(app.jobs().await.len(), 1, "{:?}", app.job_names().await);
    let cms = bounded(
        "list configmaps",
        WAIT,
        configmaps(&app).list(&Default::default()),
    )
    .await
    .expect("list configmaps");
    let files: Vec<_> = cms
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .filter(|n| n.ends_with("-files"))
        .collect();
    assert_eq!(files.len(), 1, "one ConfigMap: {files:?}");
}

#[tokio::test]
async fn an_invalid_pm_document_is_refused_422_naming_each_bad_field() {
    let app = app(60.0).await;
    let body = json!({
        "id": "12/../x",
        "priority": "whenever",
        "repository": {"url": "git@github.com:acme/api.git", "branch": "bad..branch"},
        "markdown_files": [
            {"filename": "../../etc/passwd", "content": "x"},
            {"content": "no name"}
        ],
        "subtasks": [{"description": "no title"}],
        "prompt_mode": "shout",
        "surprise": true
    });
    let r = post_pm(&app, Some(PM_TOKEN), &body).await;
    let b = r.expect(422, "invalid PM document");
    assert_eq!(b["status"], "error");
    let fields = r.bad_fields();
    for f in [
        "id",
        "title",
        "priority",
        "repository.url",
        "repository.branch",
        "markdown_files[0].filename",
        "markdown_files[1]",
        "subtasks[0].title",
        "prompt_mode",
        "surprise",
    ] {
        assert!(fields.iter().any(|x| x == f), "422 names {f}: {fields:?}");
    }
    let missing_id = post_pm(&app, Some(PM_TOKEN), &json!({"title": "no id"})).await;
    missing_id.expect(422, "no id");
    assert_eq!(missing_id.bad_fields(), ["id"], "{}", missing_id.text);
    // Well-formed JSON of the wrong shape: 422 (400 is for malformed JSON).
    let not_object = post_pm(&app, Some(PM_TOKEN), &json!(["a", "list"])).await;
    not_object.expect(422, "a non-object document");
    assert_eq!(not_object.bad_fields(), ["(body)"], "{}", not_object.text);
    assert!(app.jobs().await.is_empty(), "no Job for refused documents");
}

#[tokio::test]
async fn the_pm_endpoint_refuses_a_cli_token_with_403_and_no_or_an_unknown_token_with_401() {
    let app = app(60.0).await;
    let body = pm_task("104");
    let cli = post_pm(&app, Some(CLI_TOKEN), &body).await;
    assert_eq!(cli.expect(403, "cli token")["status"], "error");
    post_pm(&app, None, &body).await.expect(401, "no token");
    post_pm(&app, Some("pm-agent-token-but-not-the-right-one"), &body)
        .await
        .expect(401, "unknown token");
    assert!(app.jobs().await.is_empty());
}

#[tokio::test]
async fn get_pm_task_returns_the_state_of_its_job() {
    let app = app(0.3).await;
    let r = post_pm(&app, Some(PM_TOKEN), &pm_task("105")).await;
    r.expect(202, "pm task");
    let name = job_of(&r);
    let done = wait_for("PM task 105 to succeed", WAIT, || async {
        let g = call(&app, "GET", "/api/v1/pm/tasks/105")
            .token(PM_TOKEN)
            .send()
            .await;
        assert_eq!(g.status, 200, "{}", g.text);
        (g.json["state"] == "succeeded").then_some(g.json)
    })
    .await;
    assert_eq!(done["name"], name.as_str());
    assert_eq!(done["source"], "pm-agent");
    // The CLI may look too (read-only).
    let cli = call(&app, "GET", "/api/v1/pm/tasks/105")
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(cli.expect(200, "cli reads a pm task")["state"], "succeeded");
    let unknown = call(&app, "GET", "/api/v1/pm/tasks/999")
        .token(PM_TOKEN)
        .send()
        .await;
    unknown.expect(404, "unknown task id");
    call(&app, "GET", "/api/v1/pm/tasks/105")
        .send()
        .await
        .expect(401, "no token");
}

#[tokio::test]
async fn a_pm_task_without_files_gets_no_configmap() {
    let app = app(60.0).await;
    let r = post_pm(
        &app,
        Some(PM_TOKEN),
        &json!({"id": "106", "title": "No documents"}),
    )
    .await;
    r.expect(202, "pm task");
    let name = job_of(&r);
    let job = app.job(&name).await.expect("the Job");
    let pod = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template");
    assert!(
        !pod.volumes.iter().flatten().any(|v| v.config_map.is_some()),
        "no ConfigMap volume"
    );
    assert!(configmap(&app, &format!("{name}-files")).await.is_none());
}
