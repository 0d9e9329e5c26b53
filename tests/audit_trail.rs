//! What a repeated trigger does (a rule's `on_repeat`) and the audit trail
//! (Kubernetes Events on the Jobs), black-box: the real service on the
//! Kubernetes simulator, signed deliveries, and kubectl against the
//! simulator.
//!
//! * `ignore` (the label rule's default): a second `agent` label while the
//!   issue's Job is live creates nothing and answers 200 naming that Job.
//! * `supersede` (the review rule's default): a second `agent-review` label
//!   while the review runs creates the new Job, cancels the running one
//!   (annotated `superseded-by`) and the new one runs.
//! * `queue` (the comment rule's default): an `/agent` comment on an issue
//!   with a live Job is queued, as before.
//! * `kubectl describe job` shows a cancelled Job's story (Accepted,
//!   Admitted, Cancelled by the command's login) and the retry's (Accepted,
//!   Retried naming the old Job).

mod common;

#[path = "../crates/kube-api-sim/tests/kubectl_support/mod.rs"]
mod kubectl_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::Value;

const VIEWER: &str = "viewer-token-0123456789abcdef";
const ENV: [(&str, &str); 1] = [("API_TOKENS", "viewer=viewer-token-0123456789abcdef")];

/// Long enough that a Job is still running when the test acts on it.
const LONG_RUN: f64 = 120.0;

/// The state of Job `name` as the service's watch store has it.
async fn stored_state(app: &TestApp, name: &str) -> Option<String> {
    let resp = bounded(
        "GET /api/v1/jobs",
        WAIT,
        app.http
            .get(format!("{}/api/v1/jobs?limit=500", app.address))
            .bearer_auth(VIEWER)
            .send(),
    )
    .await
    .expect("GET the operator API");
    let answer = Answer::from_response(resp).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["items"]
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

fn annotation(job: &k8s_openapi::api::batch::v1::Job, key: &str) -> Option<String> {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .cloned()
}

/// `pull_request/labeled.json` labeled `agent-review` on PR `number`.
fn pr_review(number: u64) -> Vec<u8> {
    let mut v = fixture("pull_request/labeled.json");
    set(&mut v, "/label/name", "agent-review".into());
    set(&mut v, "/pull_request/number", number.into());
    bytes(&v)
}

/// An `issue_comment` by the issue's owner on `issue`: comment `id` saying `body`.
fn comment(issue: u64, id: u64, body: &str) -> Vec<u8> {
    bytes(&comment_by(issue, id, body, "OWNER"))
}

fn queued(a: &Answer) -> String {
    assert_eq!((a.status, a.status_field()), (202, "queued"), "{}", a.text);
    a.job().expect("a job")
}

#[tokio::test]
async fn a_label_added_again_while_the_issue_runs_is_ignored_naming_the_running_job() {
    let app = spawn_app_on(start_sim(LONG_RUN), &ENV).await;
    let delivery = delivery_id();
    let first = queued(
        &app.deliver("issues", &delivery, bytes(&issue_labeled_agent(61)))
            .await,
    );
    wait_stored(&app, &first, &["queued", "running"]).await;
    let again = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(61)))
        .await;
    again.assert_json();
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.status_field(), "ignored", "{}", again.text);
    assert_eq!(again.json["reason"], "a run is active", "{}", again.text);
    assert_eq!(
        again.job().as_deref(),
        Some(first.as_str()),
        "{}",
        again.text
    );
    assert_eq!(
        app.job_names().await,
        vec![first.clone()],
        "nothing created"
    );
    // The running Job's story says so.
    let events: Api<Event> = Api::namespaced(app.kube.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={first}"));
    let ignored = wait_for("the RepeatIgnored event", WAIT, || async {
        let list = events.list(&lp).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("RepeatIgnored"))
    })
    .await;
    assert!(
        ignored
            .message
            .as_deref()
            .is_some_and(|m| m.contains("ignored") && m.contains("delivery")),
        "{ignored:?}"
    );
    // A redelivery of the first delivery is still a duplicate, not "ignored".
    let redelivered = app
        .deliver("issues", &delivery, bytes(&issue_labeled_agent(61)))
        .await;
    assert_eq!(
        (redelivered.status_field(), redelivered.job()),
        ("duplicate", Some(first.clone())),
        "{}",
        redelivered.text
    );

    // queue (the comment rule): a comment on the same live issue is queued.
    let c = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(61, 6101, "/agent also fix the docs"),
        )
        .await;
    let second = queued(&c);
    assert_ne!(second, first);
    let mut names = app.job_names().await;
    names.sort();
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(names, want);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_review_asked_for_again_supersedes_the_running_review_and_runs_itself() {
    let app = spawn_app_on(start_sim(LONG_RUN), &ENV).await;
    let old_delivery = delivery_id();
    let old = queued(
        &app.deliver("pull_request", &old_delivery, pr_review(62))
            .await,
    );
    wait_stored(&app, &old, &["running"]).await;

    let a = app
        .deliver("pull_request", &delivery_id(), pr_review(62))
        .await;
    let new = queued(&a);
    assert_ne!(new, old);
    assert_eq!(
        a.json["superseded"],
        Value::from(vec![old.clone()]),
        "{}",
        a.text
    );
    // The old run is cancelled and says by which Job; the new one runs.
    let old_job = app.job(&old).await.expect("the old job is kept");
    assert!(
        annotation(&old_job, "orchestrator.dev/cancelled-at").is_some(),
        "cancelled: {:?}",
        old_job.metadata.annotations
    );
    assert_eq!(
        annotation(&old_job, "orchestrator.dev/superseded-by").as_deref(),
        Some(new.as_str())
    );
    assert!(suspended(&old_job), "a cancelled job is suspended");
    wait_stored(&app, &old, &["cancelled"]).await;
    wait_stored(&app, &new, &["running"]).await;
    // GitHub redelivering the superseded trigger changes nothing: its Job
    // is a duplicate, and the newer run is not cancelled by it.
    let again = app
        .deliver("pull_request", &old_delivery, pr_review(62))
        .await;
    assert_eq!(
        (again.status_field(), again.job()),
        ("duplicate", Some(old.clone())),
        "{}",
        again.text
    );
    let new_job = app.job(&new).await.expect("the new job");
    assert!(
        annotation(&new_job, "orchestrator.dev/cancelled-at").is_none(),
        "the newer run stays"
    );
    // Its Superseded Event names the new Job.
    let events: Api<Event> = Api::namespaced(app.kube.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={old}"));
    let superseded = wait_for("the Superseded event", WAIT, || async {
        let list = events.list(&lp).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Superseded"))
    })
    .await;
    assert!(
        superseded
            .message
            .as_deref()
            .is_some_and(|m| m.contains(&new)),
        "{superseded:?}"
    );
    app.stop().await.expect("a clean stop");
}

/// Runs `kubectl describe job <name>` against the simulator until its
/// output holds every one of `want` (Events are recorded in the
/// background); the output.
async fn describe_until(kubeconfig: &Path, dir: &Path, name: &str, want: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (kc, d, n) = (
            kubeconfig.to_path_buf(),
            dir.to_path_buf(),
            name.to_string(),
        );
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            kubectl_support::kubectl_in(&d, &kc, &["describe", "job", &n])
        })
        .await
        .expect("kubectl ran");
        assert!(ok, "kubectl describe job {name}: {err}");
        if want.iter().all(|w| out.contains(w)) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl describe job {name} never showed {want:?}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn kubectl_describe_job_tells_the_story_of_a_cancelled_job_and_of_its_retry() {
    let sim = start_sim(LONG_RUN);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("sim.kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig()).expect("kubeconfig written");
    let app = spawn_app_on(sim, &ENV).await;

    let first = queued(
        &app.deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(63)))
            .await,
    );
    wait_stored(&app, &first, &["running"]).await;
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(63, 6301, "/agent cancel"),
        )
        .await;
    assert_eq!(
        (a.status, &a.json["outcome"]),
        (202, &Value::from("done")),
        "{}",
        a.text
    );
    wait_stored(&app, &first, &["cancelled"]).await;
    let a = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            comment(63, 6302, "/agent retry"),
        )
        .await;
    assert_eq!(
        (a.status, &a.json["outcome"]),
        (202, &Value::from("done")),
        "{}",
        a.text
    );
    let retry = a.json["jobs"][0]
        .as_str()
        .expect("the retry's job")
        .to_string();
    assert_ne!(retry, first);

    let story = describe_until(
        &kubeconfig,
        dir.path(),
        &first,
        &["Accepted", "Admitted", "Cancelled"],
    )
    .await;
    // Who: the delivery and the sender, and the command's author.
    let login = fixture("issue_comment/created.json")["comment"]["user"]["login"]
        .as_str()
        .expect("the commenter's login")
        .to_string();
    assert!(story.contains("accepted from github"), "{story}");
    assert!(
        story.contains(&format!("\"{login}\"")),
        "the cancel names its author: {story}"
    );
    assert!(story.contains("/agent cancel"), "{story}");

    let retried = describe_until(&kubeconfig, dir.path(), &retry, &["Accepted", "Retried"]).await;
    assert!(
        retried.contains(&format!("retry of job {first}")),
        "{retried}"
    );

    // The Events are the service's, on the Job by its uid.
    let events: Api<Event> = Api::namespaced(app.kube.clone(), "default");
    let uid = app
        .job(&first)
        .await
        .and_then(|j| j.metadata.uid)
        .expect("the job's uid");
    let lp = ListParams::default().fields(&format!("involvedObject.uid={uid}"));
    // The simulator's Job controller records its own (SuccessfulCreate…).
    let mine: Vec<Event> = events
        .list(&lp)
        .await
        .expect("events listed")
        .items
        .into_iter()
        .filter(|e| e.reporting_component.as_deref() == Some("orchestrator"))
        .collect();
    let reasons: Vec<&str> = mine.iter().filter_map(|e| e.reason.as_deref()).collect();
    for r in ["Accepted", "Admitted", "Cancelled"] {
        assert!(reasons.contains(&r), "{r} in {reasons:?}");
    }
    for e in &mine {
        let io = &e.involved_object;
        assert_eq!(
            (
                io.kind.as_deref(),
                io.api_version.as_deref(),
                io.name.as_deref()
            ),
            (Some("Job"), Some("batch/v1"), Some(first.as_str()))
        );
        assert_eq!(
            e.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("orchestrator")
        );
        assert_eq!(e.reporting_component.as_deref(), Some("orchestrator"));
        assert_eq!(e.count, Some(1));
        assert!(e.first_timestamp.is_some() && e.last_timestamp.is_some());
        assert!(e.message.as_deref().is_some_and(|m| m.len() <= 1024));
    }
    let cancelled = mine
        .iter()
        .find(|e| e.reason.as_deref() == Some("Cancelled"))
        .expect("the Cancelled event");
    assert_eq!(cancelled.type_.as_deref(), Some("Warning"));
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_cancel_through_the_api_is_recorded_with_the_tokens_short_hash_never_the_token() {
    const CLI: &str = "cli-token-0123456789abcdef";
    let env = [(
        "API_TOKENS",
        "cli=cli-token-0123456789abcdef,viewer=viewer-token-0123456789abcdef",
    )];
    let app = spawn_app_on(start_sim(LONG_RUN), &env).await;
    let job = queued(
        &app.deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(64)))
            .await,
    );
    wait_stored(&app, &job, &["queued", "running"]).await;
    let resp = bounded(
        "DELETE /api/v1/jobs/{name}",
        WAIT,
        app.http
            .delete(format!("{}/api/v1/jobs/{job}", app.address))
            .bearer_auth(CLI)
            .send(),
    )
    .await
    .expect("DELETE the job");
    let answer = Answer::from_response(resp).await;
    assert_eq!(
        (answer.status, &answer.json["state"]),
        (200, &Value::from("cancelled")),
        "{}",
        answer.text
    );
    let hash = {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(CLI.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()[..8].to_string()
    };
    let events: Api<Event> = Api::namespaced(app.kube.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={job}"));
    let cancelled = wait_for("the Cancelled event", WAIT, || async {
        let list = events.list(&lp).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Cancelled"))
    })
    .await;
    let message = cancelled.message.unwrap_or_default();
    assert!(
        message.contains(&format!("cli-token:{hash}")) && message.contains("through the API"),
        "{message}"
    );
    assert!(!message.contains(CLI), "the token itself: {message}");
    app.stop().await.expect("a clean stop");
}
