//! Reporting back to GitHub, black-box: the real service against the
//! Kubernetes API simulator and the fake GitHub REST API
//! (`crates/github-api-sim`), both on loopback. A labeled issue gets 👀 and
//! one status comment, edited as the Job goes; restarts, a second replica, a
//! lost annotation, rate limits, an API that is down, App authentication and
//! hostile agent output.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::exposition::Exposition;
use common::*;
use github_api_sim::{GithubSimConfig, GithubSimServer};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams};
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

const TOKEN: &str = "test-github-token";
const LIMIT: Duration = Duration::from_secs(60);
const KEY: &str = include_str!("fixtures/keys/github-app-test.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/keys/github-app-test.pub.pem");
const APP_ID: &str = "424242";

fn fake() -> GithubSimServer {
    fake_with(GithubSimConfig {
        tokens: vec![TOKEN.into()],
        ..Default::default()
    })
}

fn fake_with(config: GithubSimConfig) -> GithubSimServer {
    GithubSimServer::start_local(config).expect("the fake GitHub API starts")
}

/// A simulator whose agents run `run_seconds`, exit `exit`, and print
/// `output` last.
fn sim(run_seconds: f64, exit: i32, output: Vec<String>) -> Arc<SimServer> {
    init_logging();
    Arc::new(
        SimServer::start_local(SimConfig {
            default_run_seconds: run_seconds,
            default_exit_code: exit,
            final_output: output,
            ..SimConfig::default()
        })
        .expect("the simulator starts"),
    )
}

/// Claude Code's final JSON line with `text` as its result.
fn claude_result(text: &str) -> String {
    json!({"type": "result", "subtype": "success", "is_error": false, "duration_ms": 65_000,
           "num_turns": 7, "result": text, "total_cost_usd": 0.4321, "session_id": "s-1"})
    .to_string()
}

fn env(fake: &GithubSimServer) -> Vec<(String, String)> {
    vec![
        ("GITHUB_API_URL".into(), fake.url()),
        ("GITHUB_TOKEN".into(), TOKEN.into()),
        (
            "PUBLIC_URL".into(),
            "https://orchestrator.example.com".into(),
        ),
    ]
}

async fn start(sim: Arc<SimServer>, vars: &[(String, String)]) -> TestApp {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_on(sim, &vars).await
}

fn comments(fake: &GithubSimServer) -> Vec<Value> {
    fake.snapshot()["comments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until the issue's only status comment says `words`; returns it.
async fn comment_saying(fake: &GithubSimServer, words: &str) -> Value {
    wait_for(
        &format!("a status comment saying {words:?}"),
        LIMIT,
        || async {
            comments(fake)
                .into_iter()
                .find(|c| c["body"].as_str().is_some_and(|b| b.contains(words)))
        },
    )
    .await
}

fn requests(fake: &GithubSimServer, method: &str, path_part: &str) -> usize {
    fake.snapshot()["requests"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|q| {
                    q["method"] == method
                        && q["path"].as_str().is_some_and(|p| p.contains(path_part))
                })
                .count()
        })
        .unwrap_or(0)
}

async fn deliver_labeled(app: &TestApp, issue: u64) -> String {
    let answer = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(issue)))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    answer.job().expect("a job")
}

async fn metrics(app: &TestApp) -> Exposition {
    Exposition::parse(&app.get("/metrics").await.text).expect("a valid exposition")
}

async fn report_mark(app: &TestApp, job: &str) -> Option<Value> {
    let j: Job = app.job(job).await?;
    let a = j
        .metadata
        .annotations?
        .get("orchestrator.dev/report")?
        .clone();
    serde_json::from_str(&a).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labeled_issue_gets_eyes_and_one_comment_edited_until_it_succeeded() {
    let fake = fake();
    let sim = sim(1.0, 0, vec![claude_result("Opened PR #12 with the fix.")]);
    let app = start(sim, &env(&fake)).await;
    let job = deliver_labeled(&app, 1).await;

    let done = comment_saying(&fake, "— succeeded").await;
    let body = done["body"].as_str().unwrap_or_default();
    assert!(
        body.starts_with(&format!("<!-- orchestrator:task={job} -->")),
        "{body}"
    );
    assert!(body.contains("ran "), "a duration: {body}");
    assert!(body.contains("Opened PR #12 with the fix."), "{body}");
    assert!(
        body.contains("cost $0.43") && body.contains("7 turns"),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "https://orchestrator.example.com/api/v1/jobs/{job}/logs"
        )),
        "{body}"
    );
    let all = comments(&fake);
    assert_eq!(all.len(), 1, "one comment: {all:?}");
    assert_eq!(all[0]["issue"], 1);
    assert_eq!(requests(&fake, "POST", "/issues/1/comments"), 1);
    // A fresh Job carries an empty mark: no search for its comment.
    assert_eq!(
        requests(&fake, "GET", "/issues/1/comments"),
        0,
        "no comment list"
    );
    assert!(
        requests(&fake, "PATCH", "/issues/comments/") >= 1,
        "edited in place"
    );
    let reactions = fake.snapshot()["reactions"].clone();
    let eyes: Vec<&Value> = reactions
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["content"] == "eyes" && r["subject"] == "issue")
        .collect();
    assert_eq!(eyes.len(), 1, "👀 on the issue: {reactions}");
    let mark = wait_for("the report mark on the Job", LIMIT, || async {
        report_mark(&app, &job)
            .await
            .filter(|m| m["state"] == "succeeded")
    })
    .await;
    assert_eq!(mark["comment"], all[0]["id"], "{mark}");
    let m = metrics(&app).await;
    assert!(
        m.value(
            "orchestrator_reports_total",
            &[("target", "github"), ("outcome", "reported")]
        )
        .unwrap_or(0.0)
            >= 2.0
    );
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_cancelled_jobs_are_reported_so() {
    let fake = fake();
    let app = start(sim(0.5, 1, Vec::new()), &env(&fake)).await;
    let failed = deliver_labeled(&app, 2).await;
    let c = comment_saying(&fake, "— failed").await;
    assert!(c["body"].as_str().unwrap_or_default().contains(&failed));
    app.stop().await.expect("a clean stop");

    let fake = fake_with(GithubSimConfig {
        tokens: vec![TOKEN.into()],
        ..Default::default()
    });
    let mut vars = env(&fake);
    vars.push(("API_TOKENS".into(), "cli=test-cli-token-0123456789".into()));
    let app = start(sim(300.0, 0, Vec::new()), &vars).await;
    let job = deliver_labeled(&app, 3).await;
    comment_saying(&fake, "— running").await;
    let resp = app
        .http
        .delete(format!("{}/api/v1/jobs/{job}", app.address))
        .bearer_auth("test-cli-token-0123456789")
        .send()
        .await
        .expect("the cancel answers");
    assert!(resp.status().is_success(), "{}", resp.status());
    comment_saying(&fake, "— cancelled").await;
    assert_eq!(comments(&fake).len(), 1);
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_and_a_lost_annotation_still_edit_the_same_comment() {
    let fake = fake();
    let sim = sim(4.0, 0, Vec::new());
    let vars = env(&fake);
    let first = start(sim.clone(), &vars).await;
    let job = deliver_labeled(&first, 4).await;
    comment_saying(&fake, "— running").await;
    wait_for("the mark of the running report", LIMIT, || async {
        report_mark(&first, &job)
            .await
            .filter(|m| m["state"] == "running")
    })
    .await;
    first.stop().await.expect("a clean stop");
    // The annotation is lost: only the marker can find the comment now.
    let jobs: kube::Api<Job> =
        kube::Api::namespaced(sim.client().await.expect("a client"), "default");
    jobs.patch(
        &job,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"orchestrator.dev/report": null}}})),
    )
    .await
    .expect("the annotation is removed");

    let second = start(sim.clone(), &vars).await;
    comment_saying(&fake, "— succeeded").await;
    let all = comments(&fake);
    assert_eq!(all.len(), 1, "still one comment: {all:?}");
    assert!(
        requests(&fake, "GET", "/issues/4/comments") >= 1,
        "found by its marker"
    );
    second.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_make_one_comment() {
    let fake = fake();
    let sim = sim(1.0, 0, Vec::new());
    let vars = env(&fake);
    let a = start(sim.clone(), &vars).await;
    let b = start(sim.clone(), &vars).await;
    // Each replica answers some deliveries; only the Lease holder reports.
    let one = deliver_labeled(&a, 5).await;
    let two = deliver_labeled(&b, 6).await;
    for job in [&one, &two] {
        wait_for("both reports done", LIMIT, || async {
            comments(&fake).into_iter().find(|c| {
                c["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(job.as_str()) && b.contains("— succeeded"))
            })
        })
        .await;
    }
    let all = comments(&fake);
    assert_eq!(all.len(), 2, "one comment per task: {all:?}");
    assert_eq!(requests(&fake, "POST", "/comments"), 2);
    a.stop().await.expect("a clean stop");
    b.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_rate_limit_is_waited_out_and_the_report_lands() {
    let fake = fake();
    fake.set_faults(github_api_sim::faults::secondary_rate_limit(
        Some("/issues/7/comments"),
        Some(1),
        2,
    ))
    .expect("faults set");
    let app = start(sim(0.5, 0, Vec::new()), &env(&fake)).await;
    deliver_labeled(&app, 7).await;
    comment_saying(&fake, "— succeeded").await;
    assert_eq!(comments(&fake).len(), 1);
    let m = metrics(&app).await;
    assert!(
        m.matching(
            "orchestrator_github_requests_total",
            &[("outcome", "rate_limited")]
        )
        .iter()
        .map(|s| s.value)
        .sum::<f64>()
            >= 1.0,
        "the limit was met"
    );
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_github_down_for_good_the_job_completes_and_the_report_is_given_up() {
    let fake = fake();
    fake.set_faults(github_api_sim::faults::api_down())
        .expect("faults set");
    let mut vars = env(&fake);
    vars.push(("REPORT_GIVE_UP_SECONDS".into(), "3".into()));
    let app = start(sim(0.5, 0, Vec::new()), &vars).await;
    let job = deliver_labeled(&app, 8).await;
    app.wait_complete(&job, LIMIT).await;
    wait_for("the report given up", LIMIT, || async {
        let m = metrics(&app).await;
        m.value(
            "orchestrator_reports_total",
            &[("target", "github"), ("outcome", "given_up")],
        )
        .filter(|v| *v >= 1.0)
    })
    .await;
    assert!(comments(&fake).is_empty());
    app.stop().await.expect("a clean stop");
}

fn app_fake(ttl: Duration) -> GithubSimServer {
    fake_with(GithubSimConfig {
        app_id: Some(APP_ID.parse().expect("a number")),
        app_public_key_pem: Some(PUBLIC_KEY.into()),
        installation_token_ttl: ttl,
        ..Default::default()
    })
}

fn app_env(fake: &GithubSimServer) -> Vec<(String, String)> {
    vec![
        ("GITHUB_API_URL".into(), fake.url()),
        ("GITHUB_APP_ID".into(), APP_ID.into()),
        ("GITHUB_APP_PRIVATE_KEY".into(), KEY.into()),
    ]
}

fn token_count(fake: &GithubSimServer) -> u64 {
    fake.snapshot()["counts"]["installation_tokens"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_an_app_one_installation_token_serves_many_reports_and_is_renewed_when_it_expires() {
    // Tokens live 62 s; they are renewed a minute before they expire.
    let fake = app_fake(Duration::from_secs(62));
    let app = start(sim(0.5, 0, Vec::new()), &app_env(&fake)).await;
    for issue in [10, 11, 12] {
        deliver_labeled(&app, issue).await;
    }
    wait_for("three reports succeeded", LIMIT, || async {
        let n = comments(&fake)
            .iter()
            .filter(|c| {
                c["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("— succeeded"))
            })
            .count();
        (n == 3).then_some(())
    })
    .await;
    assert_eq!(
        token_count(&fake),
        1,
        "one installation token for every report"
    );
    assert!(
        fake.snapshot()["counts"]["jwt_requests"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "the JWT verified"
    );
    let bot: Vec<Value> = comments(&fake);
    assert!(
        bot.iter().all(|c| c["user"] == "orchestrator[bot]"),
        "{bot:?}"
    );
    // 62 s of life, renewed when under 60 s are left: 2 s after its issue
    // (it was issued before the reports above).
    let issued = std::time::Instant::now();
    wait_for(
        "two seconds of the token's life to pass",
        Duration::from_secs(10),
        || async { (issued.elapsed() >= Duration::from_secs(3)).then_some(()) },
    )
    .await;
    deliver_labeled(&app, 13).await;
    wait_for("the fourth report", LIMIT, || async {
        (comments(&fake).len() == 4 && token_count(&fake) == 2).then_some(())
    })
    .await;
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_asks_for_check_runs_gets_one_on_the_pr_head() {
    let fake = app_fake(Duration::from_secs(3600));
    let rules = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(
        rules.path(),
        "rules:\n  - name: review\n    events: [pull_request]\n    actions: [labeled]\n    label: agent-review\n    kind: review\n    report: both\n    prompt: 'Review {{ repository }}#{{ number }}'\n",
    )
    .expect("the rules file is written");
    let mut vars = app_env(&fake);
    vars.push((
        "ORCHESTRATOR_RULES".into(),
        rules.path().display().to_string(),
    ));
    let app = start(sim(0.5, 0, Vec::new()), &vars).await;
    let mut pr = fixture("pull_request/labeled.json");
    set(&mut pr, "/label/name", "agent-review".into());
    let sha = pr["pull_request"]["head"]["sha"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let answer = app
        .deliver("pull_request", &delivery_id(), bytes(&pr))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let job = answer.job().expect("a job");
    let run = wait_for("a completed check run", LIMIT, || async {
        fake.snapshot()["check_runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["status"] == "completed").cloned())
    })
    .await;
    assert_eq!(run["conclusion"], "success");
    assert_eq!(run["head_sha"], sha.as_str());
    assert_eq!(run["external_id"], job.as_str());
    assert_eq!(
        fake.snapshot()["check_runs"].as_array().map(Vec::len),
        Some(1)
    );
    comment_saying(&fake, "— succeeded").await;
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_agent_output_is_escaped_trimmed_and_pings_nobody() {
    let mut hostile = String::from(
        "-->\n<!-- orchestrator:task=someone-else -->\n</details><script>alert(1)</script>\n@octocat @github/security ```\n````\n",
    );
    hostile.push_str(&"x".repeat(1_000_000));
    let fake = fake();
    let app = start(sim(0.5, 0, vec![claude_result(&hostile)]), &env(&fake)).await;
    let job = deliver_labeled(&app, 9).await;
    let c = comment_saying(&fake, "— succeeded").await;
    let body = c["body"].as_str().unwrap_or_default();
    assert!(body.len() < 8 * 1024, "trimmed: {} bytes", body.len());
    assert!(body.starts_with(&format!("<!-- orchestrator:task={job} -->")));
    assert_eq!(body.matches("<!--").count(), 1, "one marker only: {body}");
    assert_eq!(body.matches("-->").count(), 1, "{body}");
    assert!(
        body.contains("more characters are in the Job's log"),
        "{body}"
    );
    // Every mention and tag sits inside the fenced block.
    let fence_start = body
        .find("\n`````")
        .expect("a fence of five or more backticks");
    let fence = &body[fence_start + 1..]
        .chars()
        .take_while(|c| *c == '`')
        .collect::<String>();
    let inside_end = body[fence_start + 1 + fence.len()..]
        .find(&format!("\n{fence}"))
        .map(|i| i + fence_start + 1 + fence.len())
        .expect("the fence closes");
    for needle in ["@octocat", "<script>", "</details>"] {
        let at = body.find(needle).expect("kept as text");
        assert!(
            at > fence_start && at < inside_end,
            "{needle} is fenced: {body}"
        );
    }
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_buys_a_new_installation_token_and_the_report_lands() {
    let fake = app_fake(Duration::from_secs(3600));
    // GitHub refuses the token once (revoked, say).
    fake.set_faults(
        json!({"rules": [{"method": "POST", "path": "/issues/14/comments$", "status": 401,
        "body": {"message": "Bad credentials"}, "times": 1}]}),
    )
    .expect("faults set");
    let app = start(sim(0.5, 0, Vec::new()), &app_env(&fake)).await;
    deliver_labeled(&app, 14).await;
    comment_saying(&fake, "— succeeded").await;
    assert_eq!(comments(&fake).len(), 1);
    assert_eq!(token_count(&fake), 2, "a second token after the 401");
    app.stop().await.expect("a clean stop");
}

/// A comment payload (see `comment_by`) sent by a login unknown to the rules.
fn command(issue: u64, id: u64, body: &str, association: &str) -> Vec<u8> {
    let mut v = comment_by(issue, id, body, association);
    set(&mut v, "/sender/login", "someone".into());
    bytes(&v)
}

/// A comment made on the fake GitHub (as people make them); its id.
async fn people_comment(fake: &GithubSimServer, issue: u64, body: &str) -> u64 {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/repos/Codertocat/Hello-World/issues/{issue}/comments",
            fake.url()
        ))
        .header("authorization", format!("token {TOKEN}"))
        .json(&json!({"body": body}))
        .send()
        .await
        .expect("the fake answers");
    let v: Value = resp.json().await.expect("JSON");
    v["id"].as_u64().expect("a comment id")
}

fn reactions_on_comment(fake: &GithubSimServer, id: u64) -> Vec<String> {
    fake.snapshot()["reactions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["subject"] == "comment" && r["number_or_comment_id"] == id)
        .filter_map(|r| r["content"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_agent_cancel_cancels_and_the_comment_says_so_while_a_strangers_does_nothing() {
    let fake = fake();
    let app = start(sim(300.0, 0, Vec::new()), &env(&fake)).await;
    let job = deliver_labeled(&app, 15).await;
    comment_saying(&fake, "— running").await;

    let (by_stranger, by_member) = (
        people_comment(&fake, 15, "/agent cancel").await,
        people_comment(&fake, 15, "/agent cancel").await,
    );
    let stranger = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            command(15, by_stranger, "/agent cancel", "NONE"),
        )
        .await;
    assert_eq!(stranger.json["reason"], "untrusted", "{}", stranger.text);
    let member = app
        .deliver(
            "issue_comment",
            &delivery_id(),
            command(15, by_member, "/agent cancel", "MEMBER"),
        )
        .await;
    assert_eq!(member.json["outcome"], "done", "{}", member.text);

    let c = comment_saying(&fake, "— cancelled").await;
    assert!(c["body"]
        .as_str()
        .unwrap_or_default()
        .starts_with("<!-- orchestrator:task="));
    assert!(c["body"].as_str().unwrap_or_default().contains(&job));
    wait_for("👍 on the member's command", LIMIT, || async {
        (reactions_on_comment(&fake, by_member) == ["+1"]).then_some(())
    })
    .await;
    assert!(
        reactions_on_comment(&fake, by_stranger).is_empty(),
        "no answer to a stranger"
    );
    assert_eq!(
        comments(&fake).len(),
        3,
        "the status comment and the two commands"
    );
    let j = app.job(&job).await.expect("the Job");
    assert!(suspended(&j), "the API server's copy is suspended");
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_retry_makes_one_new_job_that_reports_in_a_comment_of_its_own() {
    let fake = fake();
    let app = start(sim(0.5, 0, Vec::new()), &env(&fake)).await;
    let first = deliver_labeled(&app, 16).await;
    comment_saying(&fake, "— succeeded").await;
    let asked = people_comment(&fake, 16, "/agent retry").await;
    let retry = command(16, asked, "/agent retry", "MEMBER");
    let answer = app
        .deliver("issue_comment", "retry-delivery-1", retry.clone())
        .await;
    assert_eq!(answer.json["outcome"], "done", "{}", answer.text);
    let again = app
        .deliver("issue_comment", "retry-delivery-1", retry)
        .await;
    assert!(again.status < 300, "{}", again.text);
    wait_for("two succeeded reports", LIMIT, || async {
        let done = comments(&fake)
            .iter()
            .filter(|c| {
                c["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("— succeeded"))
            })
            .count();
        (done == 2).then_some(())
    })
    .await;
    let names = app.job_names().await;
    assert_eq!(names.len(), 2, "one new Job: {names:?}");
    assert!(names.contains(&first));
    // The retry's 👀 goes on the command that asked for it.
    wait_for("👀 and 👍 on the command", LIMIT, || async {
        let mut r = reactions_on_comment(&fake, asked);
        r.sort();
        (r == ["+1", "eyes"]).then_some(())
    })
    .await;
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_shows_in_the_comment_and_a_refusing_rule_creates_nothing() {
    let fake = fake();
    let rules = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(
        rules.path(),
        "rules:\n  - name: strict\n    events: [issues]\n    actions: [labeled]\n    label: agent-strict\n    kind: implement\n    on_budget: refuse\n    prompt: 'Implement {{ repository }}#{{ number }}'\n",
    )
    .expect("the rules file is written");
    let mut vars = env(&fake);
    vars.extend([
        // 0.6 s of agent time a day; each pod runs 1 s.
        (
            "BUDGET_MINUTES_PER_REPOSITORY_PER_DAY".into(),
            "0.01".into(),
        ),
        ("SCHEDULER_RESYNC_SECONDS".into(), "0.2".into()),
        ("JOB_TTL_SECONDS".into(), "86400".into()),
        (
            "ORCHESTRATOR_RULES".into(),
            rules.path().display().to_string(),
        ),
    ]);
    let app = start(sim(1.0, 0, Vec::new()), &vars).await;
    deliver_labeled(&app, 20).await;
    comment_saying(&fake, "— succeeded").await;
    wait_for("the budget to be spent", LIMIT, || async {
        let m = metrics(&app).await;
        m.value("orchestrator_budget_exhausted", &[("scope", "repository")])
            .filter(|v| *v >= 1.0)
    })
    .await;
    let waiting = deliver_labeled(&app, 21).await;
    let c = comment_saying(&fake, "daily budget of").await;
    let body = c["body"].as_str().unwrap_or_default();
    assert!(
        body.contains(&waiting) && body.contains("— queued"),
        "{body}"
    );
    assert!(
        body.contains(" until ") && body.contains("00:00 UTC"),
        "{body}"
    );

    let mut strict = issue_labeled_agent(22);
    set(&mut strict, "/label/name", "agent-strict".into());
    let refused = app.deliver("issues", &delivery_id(), bytes(&strict)).await;
    assert_eq!(refused.status, 202, "{}", refused.text);
    assert_eq!(refused.json["status"], "ignored", "{}", refused.text);
    let reason = refused.json["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("daily budget of codertocat/hello-world spent"),
        "{reason}"
    );
    assert_eq!(
        app.job_names().await.len(),
        2,
        "nothing created for the refused task"
    );
    app.stop().await.expect("a clean stop");
}
