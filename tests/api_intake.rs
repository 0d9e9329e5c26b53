//! Issue 27 on the `/api/v1` routes: an intake a handful of connections
//! cannot stop, and tokens that act only within their scope.
//!
//! - Reads and cancels of names the watch store does not know are 404
//!   without a Kubernetes call, so 200 clients asking for random names
//!   cost the API server nothing and a task submitted meanwhile is 202.
//! - Reads that do reach the API server take half the gate's rate at most:
//!   a flood of them through the gate, or of one known Job's reads through
//!   the HTTP route, leaves a Job create its share (the GitHub delivery is
//!   202, where it was 503 before).
//! - Each token is rate-limited per minute (429 + `Retry-After`).
//! - A `pm-agent` token sees and cancels only `pm-agent` Jobs (others are
//!   404, as if absent); a `viewer` token reads everything and is refused
//!   (403) every create and cancel.
//! - An `Idempotency-Key` reused with another body is 422, also after a
//!   restart (the Job keeps the request's hash); the same body stays 200
//!   duplicate.
//! - A key given twice in a task document is 400 naming it.

mod api_support;
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_support::*;
use common::*;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use orchestrator::cluster::gate::{KubeError, KubeGate};
use orchestrator::metrics::Metrics;
use serde_json::{json, Value};

async fn app_with(run_seconds: f64, env: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("API_TOKENS", API_TOKENS_WITH_VIEWER)];
    vars.extend_from_slice(env);
    spawn_app_on(start_sim(run_seconds), &vars).await
}

/// `POST /api/v1/tasks` with `token`.
async fn submit_as(app: &TestApp, token: &str, body: &Value) -> Reply {
    call(app, "POST", "/api/v1/tasks")
        .token(token)
        .json(body)
        .send()
        .await
}

/// `method path` with `token`.
async fn ask(app: &TestApp, token: &str, method: &str, path: &str) -> Reply {
    call(app, method, path).token(token).send().await
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|j| j["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the CLI's list shows every one of `jobs` (the watch store
/// has them all).
async fn wait_listed(app: &TestApp, jobs: &[&str]) {
    wait_for("every Job in the store", WAIT, || async {
        let page = ask(app, CLI_TOKEN, "GET", "/api/v1/jobs?limit=500").await;
        let listed = names(&page.json);
        jobs.iter()
            .all(|j| listed.iter().any(|l| l == j))
            .then_some(())
    })
    .await;
}

fn cancelled_annotation(job: &Job) -> bool {
    job.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("orchestrator.dev/cancelled-at"))
}

#[tokio::test]
async fn a_pm_agent_token_neither_sees_nor_cancels_another_source_s_job() {
    let app = app_with(60.0, &[("MAX_CONCURRENT_JOBS", "1")]).await;
    let cli = submit_as(&app, CLI_TOKEN, &task("CLI work", "acme/api")).await;
    let cli = job_of(&cli);
    let gh = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(7)))
        .await;
    assert_eq!(gh.status, 202, "{}", gh.text);
    let gh = gh.job().expect("a GitHub Job");
    let pm = call(&app, "POST", "/api/v1/pm/tasks")
        .token(PM_TOKEN)
        .json(&json!({"id": "scope-1", "title": "PM work"}))
        .send()
        .await;
    pm.expect(202, "pm task");
    let pm = job_of(&pm);
    wait_listed(&app, &[&cli, &gh, &pm]).await;

    for other in [&cli, &gh] {
        for (method, path) in [
            ("GET", format!("/api/v1/jobs/{other}")),
            ("GET", format!("/api/v1/jobs/{other}/logs")),
            ("DELETE", format!("/api/v1/jobs/{other}")),
        ] {
            let r = ask(&app, PM_TOKEN, method, &path).await;
            assert_eq!(
                r.expect(404, &path)["error"],
                "not_found",
                "{method} {path}"
            );
        }
    }
    // Lists show only the PM Agent's Jobs, whatever the filter asks for.
    let own = ask(&app, PM_TOKEN, "GET", "/api/v1/jobs").await;
    assert_eq!(names(own.expect(200, "pm list")), [pm.as_str()]);
    let asked = ask(&app, PM_TOKEN, "GET", "/api/v1/jobs?source=cli").await;
    assert!(names(asked.expect(200, "pm list of cli")).is_empty());
    let events = ask(&app, PM_TOKEN, "GET", "/api/v1/events").await;
    let events = events.expect(200, "pm events").as_array().expect("a list");
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["source"] == "pm-agent"),
        "{events:?}"
    );

    // The other sources' Jobs are untouched; its own Job it may cancel.
    for other in [&cli, &gh] {
        let job = app.job(other).await.expect("still there");
        assert!(!cancelled_annotation(&job), "{other} was not cancelled");
        let state = ask(&app, CLI_TOKEN, "GET", &format!("/api/v1/jobs/{other}")).await;
        assert_ne!(state.expect(200, "cli reads")["state"], "cancelled");
    }
    let own = ask(&app, PM_TOKEN, "DELETE", &format!("/api/v1/jobs/{pm}")).await;
    assert_eq!(own.expect(200, "pm cancels its own")["state"], "cancelled");
}

#[tokio::test]
async fn a_viewer_token_reads_everything_but_may_neither_create_nor_cancel() {
    let app = app_with(60.0, &[("MAX_CONCURRENT_JOBS", "1")]).await;
    let r = submit_as(&app, CLI_TOKEN, &task("Operator work", "acme/api")).await;
    let name = job_of(&r);
    wait_listed(&app, &[&name]).await;

    let list = ask(&app, VIEWER_TOKEN, "GET", "/api/v1/jobs").await;
    assert_eq!(names(list.expect(200, "viewer list")), [name.as_str()]);
    let one = ask(&app, VIEWER_TOKEN, "GET", &format!("/api/v1/jobs/{name}")).await;
    assert_eq!(one.expect(200, "viewer get")["name"], name.as_str());
    ask(&app, VIEWER_TOKEN, "GET", "/api/v1/events")
        .await
        .expect(200, "viewer events");
    ask(&app, VIEWER_TOKEN, "GET", "/api/v1/leader")
        .await
        .expect(200, "viewer leader");

    let create = submit_as(&app, VIEWER_TOKEN, &task("Not allowed", "acme/api")).await;
    assert_eq!(create.expect(403, "viewer create")["error"], "forbidden");
    let pm = call(&app, "POST", "/api/v1/pm/tasks")
        .token(VIEWER_TOKEN)
        .json(&json!({"id": "viewer-1", "title": "Not allowed"}))
        .send()
        .await;
    pm.expect(403, "viewer PM create");
    let cancel = ask(
        &app,
        VIEWER_TOKEN,
        "DELETE",
        &format!("/api/v1/jobs/{name}"),
    )
    .await;
    assert_eq!(cancel.expect(403, "viewer cancel")["error"], "forbidden");

    let job = app.job(&name).await.expect("the Job");
    assert!(!cancelled_annotation(&job), "the Job was not cancelled");
    assert_eq!(app.jobs().await.len(), 1, "{:?}", app.job_names().await);
}

/// One answer of a flooding client: its status.
async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    match bounded("a flood answer", WAIT, req.send()).await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("a flood request failed: {e}"),
    }
}

#[tokio::test]
async fn random_names_from_200_clients_are_404_without_kubernetes_calls_and_a_task_is_still_202() {
    // The per-token limit off: this is about what reads cost, not the limit.
    let app = app_with(
        60.0,
        &[
            ("MAX_CONCURRENT_JOBS", "1"),
            ("API_RATE_LIMIT_PER_TOKEN_PER_MINUTE", "0"),
        ],
    )
    .await;
    // The only slot is taken, so the task created below stays queued and
    // nothing reads a Job from the API server for its admission.
    let first = submit_as(&app, CLI_TOKEN, &task("occupies the slot", "acme/slot")).await;
    let first = job_of(&first);
    wait_state(&app, &first, "running", WAIT).await;
    let gets_before = answered(&sim_stats(&app.sim).await, "get", "jobs", None);

    const CLIENTS: usize = 200;
    const REQUESTS: usize = 20;
    let mut flood = Vec::with_capacity(CLIENTS);
    for c in 0..CLIENTS {
        let (http, base) = (app.http.clone(), app.address.clone());
        flood.push(tokio::spawn(async move {
            let mut statuses = Vec::with_capacity(REQUESTS);
            for i in 0..REQUESTS {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let req = match (c + i) % 3 {
                    0 => http.get(format!("{base}/api/v1/pm/tasks/{id}")),
                    1 => http.delete(format!("{base}/api/v1/jobs/cli-task-{id}")),
                    _ => http.get(format!("{base}/api/v1/jobs/gh-implement-{id}")),
                };
                statuses.push(status_of(req.bearer_auth(PM_TOKEN)).await);
            }
            statuses
        }));
    }
    let created = submit_as(&app, CLI_TOKEN, &task("made during the flood", "acme/api")).await;
    assert_eq!(
        created.expect(202, "a task during the flood")["status"],
        "queued"
    );
    let mut answered_404 = 0;
    for f in flood {
        let statuses = bounded("a flooding client", WAIT, f).await.expect("joined");
        assert!(statuses.iter().all(|s| *s == 404), "{statuses:?}");
        answered_404 += statuses.len();
    }
    assert_eq!(answered_404, CLIENTS * REQUESTS);
    let gets_after = answered(&sim_stats(&app.sim).await, "get", "jobs", None);
    assert_eq!(
        gets_after, gets_before,
        "random names cost no Job GET on the API server"
    );
    // The task made during the flood is a whole queued Job.
    let job = app.job(&job_of(&created)).await.expect("its Job exists");
    assert!(suspended(&job));
}

#[tokio::test]
async fn reads_of_a_known_job_from_200_clients_leave_a_github_delivery_202() {
    // Four Kubernetes calls a second for everything: each read of a known
    // Job is one GET, and 200 clients want far more than that.
    let app = app_with(
        60.0,
        &[
            ("MAX_CONCURRENT_JOBS", "1"),
            ("KUBE_API_QPS", "4"),
            ("KUBE_API_BURST", "4"),
        ],
    )
    .await;
    let known = submit_as(&app, CLI_TOKEN, &task("read by everyone", "acme/api")).await;
    let known = job_of(&known);
    wait_listed(&app, &[&known]).await;
    let stop = Arc::new(AtomicBool::new(false));
    const CLIENTS: usize = 200;
    // Each client's loop is bounded; they stop once the delivery is answered.
    const MAX_READS: usize = 20;
    let mut flood = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let (http, stop) = (app.http.clone(), stop.clone());
        let url = format!("{}/api/v1/jobs/{known}", app.address);
        flood.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while statuses.len() < MAX_READS && !stop.load(Ordering::SeqCst) {
                statuses.push(status_of(http.get(&url).bearer_auth(VIEWER_TOKEN)).await);
            }
            statuses
        }));
    }
    wait_for("the reads to reach the API server", WAIT, || async {
        let stats = sim_stats(&app.sim).await;
        (in_flight(&stats, "get", "jobs") > 0 || answered(&stats, "get", "jobs", Some(200)) > 1)
            .then_some(())
    })
    .await;
    // The delivery is made in a task of its own, as GitHub's would be.
    let delivery = {
        let (http, base) = (app.http.clone(), app.address.clone());
        let body = bytes(&issue_labeled_agent(27));
        let signature = sign(TEST_SECRET, &body);
        tokio::spawn(async move {
            let r = http
                .post(format!("{base}/webhook/github"))
                .header("content-type", "application/json")
                .header("x-github-event", "issues")
                .header("x-github-delivery", delivery_id())
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await
                .expect("the delivery is answered");
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        })
    };
    let (status, text) = bounded("the delivery", WAIT, delivery)
        .await
        .expect("joined");
    stop.store(true, Ordering::SeqCst);
    assert_eq!(status, 202, "a GitHub delivery during a read flood: {text}");
    for f in flood {
        let statuses = bounded("a reading client", WAIT, f).await.expect("joined");
        // A read is served, or answered 503 at its deadline: never anything
        // else.
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 503),
            "{statuses:?}"
        );
    }
}

fn sim_job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "suspend": true,
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "agent", "image": "busybox:1.36"}]
            }}
        }
    }))
    .expect("a Job")
}

#[tokio::test]
async fn reads_flooding_the_gate_leave_a_job_create_its_share_of_the_rate() {
    let sim = start_sim(60.0);
    let client = sim.client().await.expect("a client");
    let metrics = Metrics::new();
    // Four calls a second: 200 readers want far more than that.
    let gate = KubeGate::new(client.clone(), 4, 4, metrics);
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let stop = Arc::new(AtomicBool::new(false));
    const READERS: usize = 200;
    // Each reader's loop is bounded; they stop once the create is done.
    const MAX_READS: usize = 50;
    let mut readers = Vec::with_capacity(READERS);
    for r in 0..READERS {
        let (gate, jobs, stop) = (gate.for_reads(), jobs.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while reads < MAX_READS && !stop.load(Ordering::SeqCst) {
                let deadline = Instant::now() + Duration::from_secs(2);
                let name = format!("absent-{r}-{reads}");
                let got = gate.call(deadline, "get", || jobs.get_opt(&name)).await;
                match got {
                    Ok(None) | Err(KubeError::Unavailable(_)) => {}
                    other => panic!("a read answered {other:?}"),
                }
                reads += 1;
            }
        }));
    }
    // The readers are waiting at the gate before the create comes.
    wait_for("the readers to reach the API server", WAIT, || async {
        (in_flight(&sim_stats(&sim).await, "get", "jobs")
            + answered(&sim_stats(&sim).await, "get", "jobs", None)
            > 0)
        .then_some(())
    })
    .await;
    // The create has the budget a task create has (15 s); without a share
    // for it, 200 readers at 4 calls a second would take it all.
    // A task of its own, as a create is in the service (not the test's
    // main future, which the runtime polls first).
    let create = {
        let (gate, jobs) = (gate.clone(), jobs.clone());
        tokio::spawn(async move {
            let pp = PostParams::default();
            let job = sim_job("made-during-a-read-flood");
            gate.call(Instant::now() + Duration::from_secs(15), "create", || {
                jobs.create(&pp, &job)
            })
            .await
            .map(|_| ())
        })
    };
    let created = bounded("the create", WAIT, create).await.expect("joined");
    stop.store(true, Ordering::SeqCst);
    assert!(created.is_ok(), "the create went through: {created:?}");
    for r in readers {
        bounded("a reader", WAIT, r).await.expect("a reader ends");
    }
    let stored = bounded(
        "get the Job",
        WAIT,
        jobs.get_opt("made-during-a-read-flood"),
    )
    .await
    .expect("get");
    assert!(stored.is_some(), "the Job exists");
}

#[tokio::test]
async fn each_token_is_limited_per_minute_with_429_and_retry_after() {
    let app = app_with(60.0, &[("API_RATE_LIMIT_PER_TOKEN_PER_MINUTE", "5")]).await;
    // Bounded: at most 20 requests, the sixth in quick succession is over.
    let mut passed = 0;
    let mut limited = None;
    for _ in 0..20 {
        let r = ask(&app, CLI_TOKEN, "GET", "/api/v1/jobs").await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        r.expect(200, "within the limit");
        passed += 1;
    }
    let limited = limited.expect("a 429 once the bucket is empty");
    assert!(passed >= 5, "the burst of 5 passes first ({passed})");
    let body = limited.expect(429, "over the limit");
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"], "rate_limited");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("token")),
        "{}",
        limited.text
    );
    let after: u64 = limited
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(after >= 1, "{after}");
    for secret in [CLI_TOKEN, PM_TOKEN] {
        assert!(!limited.text.contains(secret), "no token in the answer");
    }
    // Another token has its own bucket.
    ask(&app, VIEWER_TOKEN, "GET", "/api/v1/jobs")
        .await
        .expect(200, "another token");
    // Creates are limited by the same bucket.
    let create = submit_as(&app, CLI_TOKEN, &task("over the limit", "acme/api")).await;
    create.expect(429, "a create over the limit");
    assert!(app.jobs().await.is_empty());
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_422_and_the_same_body_stays_duplicate() {
    let sim = start_sim(60.0);
    let env = [
        ("API_TOKENS", API_TOKENS_WITH_VIEWER),
        ("MAX_CONCURRENT_JOBS", "1"),
    ];
    let app = spawn_app_on(sim.clone(), &env).await;
    let body = task("Upgrade serde", "acme/api");
    let first = submit_task(&app, &body, Some("pay-once-1")).await;
    assert_eq!(first.expect(202, "first")["status"], "queued");
    let name = job_of(&first);
    let same = submit_task(&app, &body, Some("pay-once-1")).await;
    assert_eq!(same.expect(200, "same body")["status"], "duplicate");
    assert_eq!(job_of(&same), name);
    // The same document with its keys in another order and other spacing.
    let reordered = br#"{ "repository": "acme/api",
        "prompt": "Do Upgrade serde", "title": "Upgrade serde" }"#;
    let r = call(&app, "POST", "/api/v1/tasks")
        .token(CLI_TOKEN)
        .header("content-type", "application/json")
        .header("idempotency-key", "pay-once-1")
        .body(reordered.to_vec())
        .send()
        .await;
    assert_eq!(r.expect(200, "same document")["status"], "duplicate");

    let mut other = body.clone();
    other["prompt"] = json!("Do something else entirely");
    let reused = submit_task(&app, &other, Some("pay-once-1")).await;
    let err = reused.expect(422, "another body under the same key");
    assert_eq!(err["error"], "idempotency_key_reused", "{}", reused.text);
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("different request")),
        "{}",
        reused.text
    );
    let job = app.job(&name).await.expect("the Job");
    let hash = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("orchestrator.dev/request-sha256"))
        .cloned();
    assert!(
        hash.is_some_and(|h| h.len() == 64),
        "the Job keeps the request's hash"
    );
    assert_eq!(app.jobs().await.len(), 1);

    // After a restart (no dedup cache) the Job's annotation decides.
    app.stop().await.expect("the service stops");
    let app = spawn_app_on(sim, &env).await;
    let reused = submit_task(&app, &other, Some("pay-once-1")).await;
    assert_eq!(
        reused.expect(422, "after a restart")["error"],
        "idempotency_key_reused"
    );
    let same = submit_task(&app, &body, Some("pay-once-1")).await;
    assert_eq!(
        same.expect(200, "same body after a restart")["status"],
        "duplicate"
    );
    assert_eq!(app.jobs().await.len(), 1, "{:?}", app.job_names().await);
}

#[tokio::test]
async fn a_key_given_twice_in_a_task_document_is_400_naming_it() {
    let app = app_with(60.0, &[]).await;
    for (path, token, text, key) in [
        (
            "/api/v1/tasks",
            CLI_TOKEN,
            r#"{"title":"first","prompt":"p","title":"second"}"#,
            "title",
        ),
        (
            "/api/v1/tasks",
            CLI_TOKEN,
            r#"{"title":"t","prompt":"p","labels":{"team":"a","team":"b"}}"#,
            "team",
        ),
        (
            "/api/v1/pm/tasks",
            PM_TOKEN,
            r#"{"id":"dup-1","title":"t","id":"dup-2"}"#,
            "id",
        ),
        (
            "/api/v1/pm/tasks",
            PM_TOKEN,
            r#"{"id":"dup-3","title":"t","repository":{"url":"https://github.com/a/b","url":"https://github.com/c/d"}}"#,
            "url",
        ),
    ] {
        let r = call(&app, "POST", path)
            .token(token)
            .header("content-type", "application/json")
            .body(text.as_bytes().to_vec())
            .send()
            .await;
        let body = r.expect(400, text);
        assert_eq!(body["error"], "bad_request", "{text}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("duplicate key") && message.contains(&format!("{key:?}")),
            "{text}: {message}"
        );
    }
    assert!(app.jobs().await.is_empty(), "no Job for a refused document");
}
