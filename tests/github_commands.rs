//! Slash commands on an issue (`/agent status|cancel|retry`), black-box:
//! the real service on the Kubernetes simulator, signed deliveries of
//! `issue_comment` payloads. Commands act only for trusted commenters; a
//! stranger's command changes nothing. A retry is one new Job whatever is
//! delivered twice.
//!
//! (The acknowledging reactions need a GitHub API; they are not tested here.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const VIEWER: &str = "viewer-token-0123456789abcdef";
const ENV: [(&str, &str); 1] = [("API_TOKENS", "viewer=viewer-token-0123456789abcdef")];

/// `issue_comment/created.json` on `issue`: comment `id` by an author of
/// `association` saying `body`.
fn comment(issue: u64, id: u64, body: &str, association: &str) -> Vec<u8> {
    bytes(&comment_by(issue, id, body, association))
}

/// GET `path` of the operator API with the viewer token.
async fn api(app: &TestApp, path: &str) -> Value {
    let resp = bounded(
        path,
        WAIT,
        app.http
            .get(format!("{}{path}", app.address))
            .bearer_auth(VIEWER)
            .send(),
    )
    .await
    .expect("GET the operator API");
    let answer = Answer::from_response(resp).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    answer.json
}

/// The state of Job `name` as the service's watch store has it.
async fn stored_state(app: &TestApp, name: &str) -> Option<String> {
    api(app, "/api/v1/jobs?limit=500").await["items"]
        .as_array()?
        .iter()
        .find(|j| j["name"] == name)
        .and_then(|j| j["state"].as_str())
        .map(str::to_string)
}

/// Waits until the watch store shows Job `name` in one of `states`.
async fn wait_stored(app: &TestApp, name: &str, states: &[&str]) {
    wait_for(
        &format!("job {name} stored as {states:?}"),
        WAIT,
        || async {
            stored_state(app, name)
                .await
                .filter(|s| states.contains(&s.as_str()))
        },
    )
    .await;
}

/// Queues an `implement` task on `issue`; its Job's name.
async fn queue_issue(app: &TestApp, issue: u64) -> String {
    let answer = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(issue)))
        .await;
    assert_eq!(
        (answer.status, answer.status_field()),
        (202, "queued"),
        "{}",
        answer.text
    );
    answer.job().expect("a job")
}

fn annotation(job: &k8s_openapi::api::batch::v1::Job, key: &str) -> Option<String> {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .cloned()
}

/// Asserts a command answer: 202, the command, the outcome; its Jobs.
fn command_answer(a: &Answer, command: &str, outcome: &str) -> Vec<String> {
    a.assert_json();
    assert_eq!(
        (
            a.status,
            a.status_field(),
            &a.json["command"],
            &a.json["outcome"]
        ),
        (202, "command", &Value::from(command), &Value::from(outcome)),
        "{}",
        a.text
    );
    a.json["jobs"]
        .as_array()
        .expect("a jobs list")
        .iter()
        .map(|j| j.as_str().expect("a job name").to_string())
        .collect()
}

async fn command_count(app: &TestApp, command: &str, outcome: &str) -> u64 {
    let text = app.get("/metrics").await.text;
    let want = format!(
        "orchestrator_github_commands_total{{command=\"{command}\",outcome=\"{outcome}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}

#[tokio::test]
async fn a_member_s_cancel_cancels_the_running_job_and_a_stranger_s_changes_nothing() {
    // Pods run far longer than the test.
    let app = spawn_app_on(start_sim(120.0), &ENV).await;
    let job = queue_issue(&app, 7).await;
    wait_for("the job to run", WAIT, || async {
        app.job(&job).await.filter(|j| !suspended(j))
    })
    .await;
    wait_stored(&app, &job, &["running"]).await;

    // A stranger: ignored as untrusted, counted, nothing changes.
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(7, 1001, "/agent cancel", "NONE"),
        )
        .await;
    assert_eq!(
        (a.status, a.status_field(), a.json["reason"].as_str()),
        (202, "ignored", Some("untrusted")),
        "{}",
        a.text
    );
    assert_eq!(command_count(&app, "cancel", "untrusted").await, 1);
    let j = app.job(&job).await.expect("the job");
    assert!(!suspended(&j), "still running");
    assert_eq!(annotation(&j, "orchestrator.dev/cancelled-at"), None);
    assert_eq!(stored_state(&app, &job).await.as_deref(), Some("running"));

    // Status from a member: done, about the issue's Job.
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(7, 1002, "/agent status", "MEMBER"),
        )
        .await;
    assert_eq!(command_answer(&a, "status", "done"), [job.as_str()]);
    // On an issue without Jobs there is nothing to do.
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(99, 1003, "/agent STATUS", "MEMBER"),
        )
        .await;
    assert!(command_answer(&a, "status", "nothing_to_do").is_empty());

    // Cancel from a member: the API server's copy is suspended and marked.
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(7, 1004, " /agent cancel\nplease", "MEMBER"),
        )
        .await;
    assert_eq!(command_answer(&a, "cancel", "done"), [job.as_str()]);
    let j = app.job(&job).await.expect("the job");
    assert!(suspended(&j), "suspended");
    assert!(annotation(&j, "orchestrator.dev/cancelled-at").is_some());
    wait_stored(&app, &job, &["cancelled"]).await;
    // Nothing left to cancel.
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(7, 1005, "/agent cancel", "OWNER"),
        )
        .await;
    assert!(command_answer(&a, "cancel", "nothing_to_do").is_empty());
    assert_eq!(command_count(&app, "cancel", "done").await, 1);
    assert_eq!(command_count(&app, "cancel", "nothing_to_do").await, 1);
    assert_eq!(command_count(&app, "status", "done").await, 1);
    assert_eq!(app.jobs().await.len(), 1, "no Job made by commands");

    // The event log has each command.
    let events = api(&app, "/api/v1/events?decision=command").await;
    let reasons: Vec<&str> = events
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for r in [
        "status: done",
        "status: nothing_to_do",
        "cancel: done",
        "cancel: nothing_to_do",
    ] {
        assert!(reasons.contains(&r), "{r} in {reasons:?}");
    }
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_retry_after_the_job_finished_makes_exactly_one_new_job() {
    // Long enough that the retry is still running when asked again.
    let app = spawn_app_on(start_sim(3.0), &ENV).await;
    let first = queue_issue(&app, 8).await;
    let retry = comment(8, 2001, "/agent retry", "MEMBER");

    // While the Job runs, a retry has nothing to do.
    wait_stored(&app, &first, &["queued", "running"]).await;
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(8, 2000, "/agent retry", "MEMBER"),
        )
        .await;
    assert_eq!(
        command_answer(&a, "retry", "nothing_to_do"),
        [first.as_str()]
    );

    app.wait_complete(&first, Duration::from_secs(60)).await;
    wait_stored(&app, &first, &["succeeded"]).await;
    let delivery = delivery_id();
    let a = app.deliver("issue_comment", &delivery, retry.clone()).await;
    let jobs = command_answer(&a, "retry", "done");
    assert_eq!(jobs.len(), 1, "{}", a.text);
    let second = jobs[0].clone();
    assert_ne!(second, first, "a new Job name");
    let j = app.job(&second).await.expect("the retry's Job");
    let original = app.job(&first).await.expect("the original Job");
    let key = annotation(&j, "orchestrator.dev/dedup-key").expect("a dedup key");
    let base = annotation(&original, "orchestrator.dev/dedup-key").expect("a dedup key");
    assert_eq!(key, format!("{base}#retry-1"));

    // The same delivery again: the same Job.
    let a = app.deliver("issue_comment", &delivery, retry.clone()).await;
    assert_eq!(command_answer(&a, "retry", "done"), [second.as_str()]);
    // Another retry comment while the retry is queued or running: nothing.
    wait_stored(&app, &second, &["queued", "running"]).await;
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(8, 2002, "/agent retry", "MEMBER"),
        )
        .await;
    assert_eq!(
        command_answer(&a, "retry", "nothing_to_do"),
        [second.as_str()]
    );
    // The first command redelivered once its Job is stored: still that Job.
    let a = app.deliver("issue_comment", &delivery, retry).await;
    assert_eq!(command_answer(&a, "retry", "done"), [second.as_str()]);

    let mut names = app.job_names().await;
    names.sort();
    let mut want = vec![first.clone(), second.clone()];
    want.sort();
    assert_eq!(names, want, "exactly one new Job");
    app.wait_complete(&second, Duration::from_secs(60)).await;
    assert_eq!(app.jobs().await.len(), 2, "still exactly one new Job");
    assert_eq!(command_count(&app, "retry", "nothing_to_do").await, 2);
    app.stop().await.expect("a clean stop");
}
