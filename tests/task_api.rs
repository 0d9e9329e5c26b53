//! Black-box tests of the generic task API (`POST /api/v1/tasks`) and the
//! operator API (`/api/v1/jobs…`, `/api/v1/events`) against the service on
//! the embedded cluster.

mod api_support;
mod common;

use std::collections::{BTreeMap, BTreeSet};

use api_support::*;
use common::*;
use serde_json::{json, Value};

/// A service with API tokens whose pods run `run_seconds`, admitting at most
/// `max_running` Jobs at once.
async fn app_with(run_seconds: f64, max_running: &str) -> TestApp {
    spawn_app_on(
        start_sim(run_seconds),
        &[
            ("API_TOKENS", API_TOKENS),
            ("MAX_CONCURRENT_JOBS", max_running),
        ],
    )
    .await
}

/// Submits a task and returns its Job name (asserting 202 queued).
async fn queue(app: &TestApp, title: &str, repo: &str) -> String {
    let r = submit_task(app, &task(title, repo), None).await;
    assert_eq!(r.expect(202, "submit")["status"], "queued", "{}", r.text);
    job_of(&r)
}

/// Queues a long task and waits until it runs, so that (with
/// `MAX_CONCURRENT_JOBS=1`) every later task stays queued.
async fn occupy(app: &TestApp) -> String {
    let name = queue(app, "occupies the only slot", "acme/slot").await;
    wait_state(app, &name, "running", WAIT).await;
    name
}

/// `GET /api/v1/jobs?<query>` as the CLI.
async fn list(app: &TestApp, query: &str) -> Value {
    call(app, "GET", &format!("/api/v1/jobs?{query}"))
        .token(CLI_TOKEN)
        .send()
        .await
        .expect(200, &format!("GET /api/v1/jobs?{query}"))
        .clone()
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|j| j["name"].as_str().expect("a name").to_string())
        .collect()
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[tokio::test]
async fn a_generic_task_is_answered_202_queued_and_becomes_a_suspended_job() {
    let app = app_with(60.0, "1").await;
    occupy(&app).await;
    let body = json!({
        "title": "Fix the flaky login test",
        "prompt": "Find out why test_login fails one run in ten and fix it.",
        "repository": "acme/web",
        "issue": 42,
        "kind": "fix",
        "priority": 7,
        "labels": {"team": "web"},
        "timeout_seconds": 900
    });
    let r = submit_task(&app, &body, None).await;
    let answer = r.expect(202, "submit");
    assert_eq!(answer["status"], "queued");
    let name = job_of(&r);
    let job = app
        .job(&name)
        .await
        .expect("the Job exists once 202 is answered");
    assert!(suspended(&job), "a queued Job is suspended");
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("orchestrator.dev/source").map(String::as_str),
        Some("cli")
    );
    assert_eq!(
        labels
            .get("orchestrator.dev/repository")
            .map(String::as_str),
        Some("acme.web")
    );
    assert_eq!(
        job.spec.as_ref().and_then(|s| s.active_deadline_seconds),
        Some(900),
        "the task's own timeout"
    );
    let view = wait_state(&app, &name, "queued", WAIT).await;
    assert_eq!(view["source"], "cli");
    assert_eq!(view["kind"], "fix");
    assert_eq!(view["priority"], 7);
    assert_eq!(view["task"]["title"], "Fix the flaky login test", "{view}");
}

#[tokio::test]
async fn the_same_idempotency_key_is_answered_as_a_duplicate_without_a_new_job() {
    let app = app_with(60.0, "1").await;
    let body = task("Upgrade serde", "acme/api");
    let first = submit_task(&app, &body, Some("retry-safe-1")).await;
    assert_eq!(first.expect(202, "first")["status"], "queued");
    let again = submit_task(&app, &body, Some("retry-safe-1")).await;
    assert_eq!(again.expect(200, "retry")["status"], "duplicate");
    assert_eq!(
        job_of(&again),
        job_of(&first),
        "the duplicate names the same Job"
    );
    let other = submit_task(&app, &body, Some("retry-safe-2")).await;
    assert_eq!(other.expect(202, "another key")["status"], "queued");
    assert_ne!(job_of(&other), job_of(&first));
    let without = submit_task(&app, &body, None).await;
    assert_eq!(without.expect(202, "no key")["status"], "queued");
    assert_eq!(app.jobs().await.len(), 3, "{:?}", app.job_names().await);
}

#[tokio::test]
async fn an_invalid_task_document_is_refused_422_listing_each_bad_field() {
    let app = app_with(60.0, "1").await;
    let body = json!({
        "prompt": 17,
        "repository": "not a repository",
        "kind": "Not Valid",
        "priority": 5000,
        "timeout_seconds": 5,
        "colour": "blue"
    });
    let r = submit_task(&app, &body, None).await;
    let b = r.expect(422, "invalid document");
    assert_eq!(b["status"], "error");
    let fields = r.bad_fields();
    for f in [
        "title",
        "prompt",
        "repository",
        "kind",
        "priority",
        "timeout_seconds",
        "colour",
    ] {
        assert!(
            fields.iter().any(|x| x == f),
            "422 names {f}: {fields:?} in {}",
            r.text
        );
    }
    for f in b["fields"].as_array().expect("fields") {
        assert!(
            f["message"].as_str().is_some_and(|m| !m.is_empty()),
            "each field has a message: {f}"
        );
    }
    // An issue number without a repository names the repository.
    let r = submit_task(
        &app,
        &json!({"title": "t", "prompt": "p", "issue": 3}),
        None,
    )
    .await;
    r.expect(422, "issue without repository");
    assert!(
        r.bad_fields().contains(&"repository".to_string()),
        "{}",
        r.text
    );
    assert!(app.jobs().await.is_empty(), "no Job for refused documents");
}

#[tokio::test]
async fn the_task_and_operator_apis_refuse_a_missing_or_unknown_token_with_401() {
    let app = app_with(60.0, "1").await;
    let body = task("t", "acme/api");
    for (method, path) in [
        ("POST", "/api/v1/tasks"),
        ("POST", "/api/v1/pm/tasks"),
        ("GET", "/api/v1/pm/tasks/1"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/some-job"),
        ("DELETE", "/api/v1/jobs/some-job"),
        ("GET", "/api/v1/jobs/some-job/logs"),
        ("GET", "/api/v1/events"),
    ] {
        let none = call(&app, method, path).json(&body).send().await;
        none.expect(401, &format!("{method} {path} without a token"));
        let wrong = call(&app, method, path)
            .token("not-a-configured-token-at-all")
            .json(&body)
            .send()
            .await;
        wrong.expect(401, &format!("{method} {path} with an unknown token"));
        let basic = call(&app, method, path)
            .header("authorization", &format!("Basic {CLI_TOKEN}"))
            .json(&body)
            .send()
            .await;
        basic.expect(401, &format!("{method} {path} with a non-bearer scheme"));
    }
    assert!(app.jobs().await.is_empty());
}

#[tokio::test]
async fn the_jobs_list_filters_by_source_state_and_repository() {
    let app = app_with(60.0, "1").await;
    let running = queue(&app, "first", "acme/api").await;
    wait_state(&app, &running, "running", WAIT).await;
    let api2 = queue(&app, "second", "acme/api").await;
    let web = queue(&app, "third", "acme/web").await;
    let pm = call(&app, "POST", "/api/v1/pm/tasks")
        .token(PM_TOKEN)
        .json(&json!({"id": "77", "title": "PM work"}))
        .send()
        .await;
    pm.expect(202, "pm task");
    let pm = job_of(&pm);
    let all = [&running, &api2, &web, &pm].map(|s| s.to_string());
    wait_for("every Job in the list", WAIT, || async {
        (names(&list(&app, "").await).len() == 4).then_some(())
    })
    .await;
    assert_eq!(sorted(&names(&list(&app, "").await)), sorted(&all));
    assert_eq!(
        names(&list(&app, "state=running").await),
        [running.as_str()]
    );
    assert_eq!(
        sorted(&names(&list(&app, "state=queued").await)),
        sorted(&[api2.clone(), web.clone(), pm.clone()])
    );
    assert_eq!(names(&list(&app, "source=pm-agent").await), [pm.as_str()]);
    assert_eq!(
        sorted(&names(&list(&app, "source=cli").await)),
        sorted(&[running.clone(), api2.clone(), web.clone()])
    );
    assert_eq!(
        sorted(&names(&list(&app, "repository=acme/api").await)),
        sorted(&[running.clone(), api2.clone()])
    );
    assert_eq!(
        names(&list(&app, "repository=acme/api&state=queued&source=cli").await),
        [api2.as_str()]
    );
    assert!(names(&list(&app, "state=succeeded").await).is_empty());
    assert!(names(&list(&app, "source=grafana").await).is_empty());
    for bad in ["state=sleeping", "limit=0", "limit=501", "limit=x"] {
        call(&app, "GET", &format!("/api/v1/jobs?{bad}"))
            .token(CLI_TOKEN)
            .send()
            .await
            .expect(400, bad);
    }
}

#[tokio::test]
async fn the_jobs_list_pages_newest_first_with_limit_and_continue_without_duplicates() {
    let app = app_with(60.0, "1").await;
    // Creation times have one-second resolution, so the test makes three
    // generations (3, 2 and 2 Jobs), each begun in a later second than the
    // one before ended: newest first means generation 2, then 1, then 0,
    // whatever the order within one second.
    let mut generation: BTreeMap<String, usize> = BTreeMap::new();
    let mut created_at: BTreeMap<String, String> = BTreeMap::new();
    for (g, count) in [3, 2, 2].into_iter().enumerate() {
        if let Some(last) = created_at.values().max().cloned() {
            wait_for("the next second", WAIT, || async {
                (now_second() > last).then_some(())
            })
            .await;
        }
        for i in 0..count {
            let name = queue(&app, &format!("generation {g} task {i}"), "acme/api").await;
            let job = app.job(&name).await.expect("the queued Job exists");
            let at = job
                .metadata
                .creation_timestamp
                .expect("the API server sets creationTimestamp")
                .0
                .to_string();
            created_at.insert(name.clone(), at);
            generation.insert(name, g);
        }
    }
    let of = |g: usize| {
        let generation = &generation;
        created_at
            .iter()
            .filter(move |(n, _)| generation[*n] == g)
            .map(|(_, t)| t)
    };
    for g in 0..2 {
        assert!(
            of(g).max() < of(g + 1).min(),
            "generation {g} was created before generation {}: {created_at:?}",
            g + 1
        );
    }
    wait_for("all 7 Jobs listed", WAIT, || async {
        (names(&list(&app, "").await).len() == 7).then_some(())
    })
    .await;
    let mut seen: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "paging ends");
        let q = match &token {
            Some(t) => format!("limit=3&continue={}", urlencode(t)),
            None => "limit=3".to_string(),
        };
        let page = list(&app, &q).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3, "a page holds at most limit items");
        for j in items {
            let name = j["name"].as_str().expect("a name").to_string();
            let at = j["created_at"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no created_at: {j}"));
            assert_eq!(
                Some(at),
                created_at.get(&name).map(String::as_str),
                "{name}: created_at is the Job's creationTimestamp"
            );
            seen.push(name);
        }
        match page["next"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3, "7 Jobs in pages of 3");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no Job on two pages: {seen:?}");
    let made: Vec<String> = generation.keys().cloned().collect();
    assert_eq!(sorted(&seen), made, "every Job on some page");
    let order: Vec<usize> = seen.iter().map(|n| generation[n]).collect();
    assert_eq!(
        order,
        [2, 2, 1, 1, 0, 0, 0],
        "newest generation first: {seen:?} created at {created_at:?}"
    );
    call(&app, "GET", "/api/v1/jobs?continue=garbage")
        .token(CLI_TOKEN)
        .send()
        .await
        .expect(400, "a malformed continue token");
}

/// The current time as the API server writes `creationTimestamp`
/// (whole seconds, RFC 3339), comparable as a string.
fn now_second() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_job_is_shown_with_state_timestamps_task_and_conditions_and_an_unknown_one_is_404() {
    let app = app_with(0.3, "10").await;
    let name = queue(&app, "show me", "acme/api").await;
    let view = wait_state(&app, &name, "succeeded", WAIT).await;
    assert_eq!(view["name"], name.as_str());
    for t in ["created_at", "started_at", "finished_at"] {
        assert!(
            view[t].as_str().is_some_and(|s| !s.is_empty()),
            "{t} in {view}"
        );
    }
    assert_eq!(view["task"]["title"], "show me", "{view}");
    assert!(
        view["conditions"].as_array().is_some_and(|cs| cs
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")),
        "the Complete condition: {view}"
    );
    let missing = get_job(&app, "no-such-job").await;
    missing.expect(404, "unknown job");
    assert_eq!(missing.json["status"], "error");
}

#[tokio::test]
async fn cancelling_a_queued_job_is_idempotent_and_the_job_is_never_admitted() {
    let app = app_with(60.0, "1").await;
    let recorder = Recorder::start(&app.sim);
    let busy = occupy(&app).await;
    let waiting = queue(&app, "waits", "acme/api").await;
    wait_state(&app, &waiting, "queued", WAIT).await;

    for attempt in ["first", "second"] {
        let r = call(&app, "DELETE", &format!("/api/v1/jobs/{waiting}"))
            .token(CLI_TOKEN)
            .send()
            .await;
        let v = r.expect(200, &format!("{attempt} cancel"));
        assert_eq!(v["state"], "cancelled", "{attempt} cancel: {v}");
    }
    wait_state(&app, &waiting, "cancelled", WAIT).await;
    let job = app.job(&waiting).await.expect("the cancelled Job is kept");
    assert!(suspended(&job), "a cancelled Job stays suspended");

    // Freeing the slot must not admit the cancelled Job.
    let r = call(&app, "DELETE", &format!("/api/v1/jobs/{busy}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(
        r.expect(200, "cancel the running job")["state"],
        "cancelled"
    );
    let next = queue(&app, "admitted once the slot is free", "acme/api").await;
    wait_state(&app, &next, "running", WAIT).await;
    assert_eq!(api_state(&app, &waiting).await, "cancelled");
    assert_eq!(
        recorder.suspend_history(&waiting).await,
        [true],
        "the cancelled Job was never unsuspended"
    );
    assert!(app.pods_of(&waiting).await.is_empty(), "no pod ever ran");
    assert!(
        !recorder.pods_per_job().await.contains_key(&waiting),
        "no pod was ever created for the cancelled Job"
    );

    let unknown = call(&app, "DELETE", "/api/v1/jobs/no-such-job")
        .token(CLI_TOKEN)
        .send()
        .await;
    unknown.expect(404, "cancel an unknown job");
}

#[tokio::test]
async fn a_cancelled_job_is_deleted_by_the_sweep_once_its_ttl_has_passed() {
    // A short sweep period instead of waiting for the default 30 s.
    let app = spawn_app_on(
        start_sim(60.0),
        &[
            ("API_TOKENS", API_TOKENS),
            ("MAX_CONCURRENT_JOBS", "1"),
            ("JOB_TTL_SECONDS", "1"),
            ("CANCELLED_JOB_SWEEP_SECONDS", "0.2"),
        ],
    )
    .await;
    let busy = occupy(&app).await;
    let waiting = queue(&app, "cancelled, then collected", "acme/api").await;
    wait_state(&app, &waiting, "queued", WAIT).await;
    let r = call(&app, "DELETE", &format!("/api/v1/jobs/{waiting}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(r.expect(200, "cancel")["state"], "cancelled");
    wait_for("the cancelled Job to be deleted", WAIT, || async {
        app.job(&waiting).await.is_none().then_some(())
    })
    .await;
    assert!(
        app.job(&busy).await.is_some(),
        "the sweep deletes only cancelled Jobs"
    );
    assert_eq!(api_state(&app, &busy).await, "running");
}

#[tokio::test]
async fn cancelling_a_finished_job_leaves_it_as_it_is() {
    let app = app_with(0.3, "10").await;
    let name = queue(&app, "quick", "acme/api").await;
    wait_state(&app, &name, "succeeded", WAIT).await;
    let r = call(&app, "DELETE", &format!("/api/v1/jobs/{name}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(r.expect(200, "cancel a finished job")["state"], "succeeded");
    assert_eq!(api_state(&app, &name).await, "succeeded");
}

#[tokio::test]
async fn the_logs_of_a_finished_job_contain_the_fake_kubelets_lines() {
    let app = app_with(0.3, "10").await;
    let name = queue(&app, "log something", "acme/api").await;
    wait_state(&app, &name, "succeeded", WAIT).await;
    let r = call(&app, "GET", &format!("/api/v1/jobs/{name}/logs"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    assert!(r.text.contains("[sim]"), "the kubelet's lines: {}", r.text);
    assert!(r.text.contains("exited with code 0"), "{}", r.text);
    // Following a finished pod's log ends on its own.
    let f = call(
        &app,
        "GET",
        &format!("/api/v1/jobs/{name}/logs?follow=true"),
    )
    .token(CLI_TOKEN)
    .send()
    .await;
    assert_eq!(f.status, 200, "{}", f.text);
    assert!(f.text.contains("[sim]"), "{}", f.text);
    call(&app, "GET", "/api/v1/jobs/no-such-job/logs")
        .token(CLI_TOKEN)
        .send()
        .await
        .expect(404, "logs of an unknown job");
}

#[tokio::test]
async fn the_logs_of_a_queued_job_are_404_saying_it_has_no_pod_yet() {
    let app = app_with(60.0, "1").await;
    occupy(&app).await;
    let name = queue(&app, "never admitted", "acme/api").await;
    wait_state(&app, &name, "queued", WAIT).await;
    let r = call(&app, "GET", &format!("/api/v1/jobs/{name}/logs"))
        .token(CLI_TOKEN)
        .send()
        .await;
    r.expect(404, "logs of a queued job");
    assert!(r.text.contains("no pod"), "{}", r.text);
}

#[tokio::test]
async fn the_events_log_shows_queued_duplicate_ignored_and_rejected_decisions_with_their_jobs() {
    let app = spawn_app_on(
        start_sim(30.0),
        &[
            ("API_TOKENS", API_TOKENS),
            ("MAX_CONCURRENT_JOBS", "1"),
            ("GRAFANA_BASIC_AUTH", "grafana:hunter22"),
            ("GRAFANA_ALERT_MATCHERS", "severity=critical"),
        ],
    )
    .await;
    let body = task("events", "acme/api");
    let queued = submit_task(&app, &body, Some("events-key")).await;
    queued.expect(202, "queued");
    let job = job_of(&queued);
    submit_task(&app, &body, Some("events-key"))
        .await
        .expect(200, "duplicate");
    submit_task(&app, &json!({"prompt": "no title"}), Some("bad-doc"))
        .await
        .expect(422, "invalid");
    let alert = grafana_body(
        "firing",
        vec![grafana_alert(
            "firing",
            "feedc0de",
            alert_labels("DiskFilling", "warning", "acme/api"),
            "2025-06-01T12:00:00Z",
        )],
    );
    let g = call(&app, "POST", "/webhook/grafana")
        .header("authorization", "Basic Z3JhZmFuYTpodW50ZXIyMg==")
        .json(&alert)
        .send()
        .await;
    assert_eq!(g.expect(202, "grafana")["alerts"][0]["decision"], "ignored");

    let events = call(&app, "GET", "/api/v1/events")
        .token(CLI_TOKEN)
        .send()
        .await;
    events.expect_json("events");
    assert_eq!(events.status, 200);
    let list = events.json.as_array().expect("an array of events").clone();
    let find = |decision: &str, delivery: &str| -> Value {
        list.iter()
            .find(|e| e["decision"] == decision && e["delivery"] == delivery)
            .cloned()
            .unwrap_or_else(|| panic!("a {decision} event for {delivery} in {list:#?}"))
    };
    let q = find("queued", "events-key");
    assert_eq!(q["source"], "cli");
    assert_eq!(q["job"], job.as_str());
    let d = find("duplicate", "events-key");
    assert_eq!(d["job"], job.as_str(), "the duplicate names its Job");
    let i = find("ignored", "feedc0de");
    assert_eq!(i["source"], "grafana");
    assert!(
        i["reason"].as_str().is_some_and(|r| r.contains("severity")),
        "ignored says why: {i}"
    );
    let r = find("rejected", "bad-doc");
    assert!(
        r["reason"].as_str().is_some_and(|r| r.contains("title")),
        "rejected says why: {r}"
    );
    assert!(r["job"].is_null(), "a rejected event led to no Job");
    // Newest first.
    let seqs: Vec<u64> = list.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let mut desc = seqs.clone();
    desc.sort_by(|a, b| b.cmp(a));
    assert_eq!(seqs, desc, "newest first");
    // Filters.
    let only = call(&app, "GET", "/api/v1/events?decision=duplicate")
        .token(CLI_TOKEN)
        .send()
        .await;
    let only = only.json.as_array().expect("array").clone();
    assert!(!only.is_empty() && only.iter().all(|e| e["decision"] == "duplicate"));
}

/// GitHub compares repository names without regard to case, so the
/// per-repository rate limit and the one-Job-per-issue key do too; the
/// repository is still shown as written.
#[tokio::test]
async fn repositories_differing_only_in_case_share_one_rate_limit_bucket_and_one_concurrency_key() {
    let app = spawn_app_on(
        start_sim(60.0),
        &[
            ("API_TOKENS", API_TOKENS),
            ("MAX_CONCURRENT_JOBS", "5"),
            ("RATE_LIMIT_PER_REPO_PER_MINUTE", "2"),
        ],
    )
    .await;
    let on = |repo: &str, title: &str| json!({"title": title, "prompt": "p", "repository": repo, "issue": 7});
    let first = submit_task(&app, &on("Octo/Repo", "first"), None).await;
    first.expect(202, "Octo/Repo#7");
    let first = job_of(&first);
    wait_state(&app, &first, "running", WAIT).await;
    let second = submit_task(&app, &on("octo/repo", "second"), None).await;
    second.expect(202, "octo/repo#7");
    let second = job_of(&second);
    let third = submit_task(&app, &on("OCTO/REPO", "third"), None).await;
    let b = third.expect(429, "the repository's bucket is spent, whatever the case");
    assert_eq!(b["error"], "rate_limited", "{}", third.text);

    // A later task elsewhere is admitted: the scheduler has looked at the
    // older `octo/repo#7` and held it back behind `Octo/Repo#7`.
    let later = queue(&app, "another repository", "acme/other").await;
    wait_state(&app, &later, "running", WAIT).await;
    let view = get_job(&app, &second).await;
    assert_eq!(
        view.expect(200, "the second Job")["state"],
        "queued",
        "one running Job per issue: {}",
        view.text
    );
    assert_eq!(view.json["repository"], "octo/repo", "shown as written");
    let key = |job: &k8s_openapi::api::batch::v1::Job| {
        job.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("orchestrator.dev/concurrency-key").cloned())
    };
    let (a, b) = (app.job(&first).await, app.job(&second).await);
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(key(&a).as_deref(), Some("octo.repo-7"));
    assert_eq!(key(&a), key(&b));
    assert_eq!(
        get_job(&app, &first).await.json["repository"],
        "Octo/Repo",
        "shown as written"
    );
}
