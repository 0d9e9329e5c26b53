//! Recovery of missed deliveries, black-box: the real service as a GitHub
//! App against the fake GitHub REST API (`crates/github-api-sim`, App JWTs
//! checked with the test public key) and the Kubernetes API simulator, on
//! loopback. The fake holds the App's delivery log; with a delivery target
//! set, a redelivery it is asked for really POSTs the payload, signed, to
//! the service, which makes the Job.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::exposition::Exposition;
use common::*;
use github_api_sim::{GithubSimConfig, GithubSimServer};
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);
const KEY: &str = include_str!("fixtures/keys/github-app-test.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/keys/github-app-test.pub.pem");
const APP_ID: &str = "424242";
const CLI_TOKEN: &str = "cli-token-for-recovery-0123456789";

fn fake() -> GithubSimServer {
    GithubSimServer::start_local(GithubSimConfig {
        app_id: Some(APP_ID.parse().expect("a number")),
        app_public_key_pem: Some(PUBLIC_KEY.into()),
        ..Default::default()
    })
    .expect("the fake GitHub API starts")
}

fn sim() -> Arc<SimServer> {
    init_logging();
    Arc::new(
        SimServer::start_local(SimConfig {
            default_run_seconds: 0.5,
            ..SimConfig::default()
        })
        .expect("the simulator starts"),
    )
}

async fn start(sim: Arc<SimServer>, fake: &GithubSimServer) -> TestApp {
    let url = fake.url();
    let tokens = format!("cli={CLI_TOKEN}");
    spawn_app_on(
        sim,
        &[
            ("GITHUB_API_URL", url.as_str()),
            ("GITHUB_APP_ID", APP_ID),
            ("GITHUB_APP_PRIVATE_KEY", KEY),
            ("DELIVERY_RECOVERY_INTERVAL_SECONDS", "1"),
            ("API_TOKENS", tokens.as_str()),
        ],
    )
    .await
}

/// The App's delivery list answers 503 until the test has seeded it (so no
/// cycle sees half of the seeds).
fn hold_listing(fake: &GithubSimServer) {
    fake.set_faults(
        json!({"rules": [{"method": "GET", "path": "^/app/hook/deliveries$", "status": 503}]}),
    )
    .expect("faults set");
}

/// Records a delivery of an `issues` `labeled` (`agent`) event on `issue`.
fn seed(fake: &GithubSimServer, guid: &str, issue: u64, status: u16, redelivery: bool) {
    fake.seed_delivery(json!({
        "event": "issues", "guid": guid, "status_code": status, "redelivery": redelivery,
        "payload": issue_labeled_agent(issue), "repository_id": 1296269,
    }))
    .expect("a delivery seeded");
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

fn redelivery_requests(fake: &GithubSimServer) -> usize {
    requests(fake, "POST", "/attempts")
}

async fn metrics(app: &TestApp) -> Exposition {
    Exposition::parse(&app.get("/metrics").await.text).expect("a valid exposition")
}

async fn recovery(app: &TestApp, outcome: &str) -> f64 {
    metrics(app)
        .await
        .value(
            "orchestrator_delivery_recovery_total",
            &[("outcome", outcome)],
        )
        .unwrap_or(0.0)
}

async fn cycles(app: &TestApp) -> f64 {
    metrics(app)
        .await
        .value("orchestrator_delivery_recovery_cycle_seconds_count", &[])
        .unwrap_or(0.0)
}

/// Waits until `app` has run `n` more recovery cycles than now.
async fn more_cycles(app: &TestApp, n: f64) {
    let from = cycles(app).await;
    wait_for("more recovery cycles", LIMIT, || async {
        (cycles(app).await >= from + n).then_some(())
    })
    .await;
}

/// `GET /api/v1/events?decision=D&source=github`.
async fn events(app: &TestApp, decision: &str) -> Vec<Value> {
    let r = app
        .http
        .get(format!(
            "{}/api/v1/events?source=github&decision={decision}",
            app.address
        ))
        .bearer_auth(CLI_TOKEN)
        .send()
        .await
        .expect("the events answer");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("JSON events")
}

fn deliveries_of(events: &[Value]) -> Vec<String> {
    let mut d: Vec<String> = events
        .iter()
        .filter_map(|e| e["delivery"].as_str().map(str::to_string))
        .collect();
    d.sort();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_redelivers_what_never_reached_it_once_and_a_follower_asks_for_nothing() {
    let fake = fake();
    hold_listing(&fake);
    let a = start(sim(), &fake).await;
    fake.set_delivery_target(Some(&format!("{}/webhook/github", a.address)), &a.secret)
        .expect("target set");
    // 10 deliveries: 7 answered 200, 3 failed (500, no answer, 500), and
    // the third redelivered since with a 200.
    let ok: Vec<String> = (0..7).map(|_| delivery_id()).collect();
    for (i, guid) in ok.iter().enumerate() {
        seed(&fake, guid, 100 + i as u64, 200, false);
    }
    let (lost_500, lost_0, healed) = (delivery_id(), delivery_id(), delivery_id());
    seed(&fake, &lost_500, 201, 500, false);
    seed(&fake, &lost_0, 202, 0, false);
    seed(&fake, &healed, 203, 500, false);
    seed(&fake, &healed, 203, 200, true);
    fake.clear_faults();

    let mut expected = vec![lost_500.clone(), lost_0.clone()];
    expected.sort();
    let queued = wait_for("the two missed deliveries became Jobs", LIMIT, || async {
        let q = deliveries_of(&events(&a, "queued").await);
        (q == expected).then_some(q)
    })
    .await;
    assert_eq!(queued, expected);
    assert_eq!(
        redelivery_requests(&fake),
        2,
        "exactly the two missed guids"
    );
    assert_eq!(a.jobs().await.len(), 2);
    let recovered = events(&a, "recovered").await;
    assert_eq!(deliveries_of(&recovered), expected, "{recovered:?}");
    assert!(recovered.iter().all(|e| e["event"] == "issues"));
    assert_eq!(recovery(&a, "requested").await, 2.0);
    assert_eq!(recovery(&a, "failed").await, 0.0);
    assert!(recovery(&a, "seen").await >= 10.0);

    // The CLI lists them with the new decision.
    let out = bounded(
        "orchestrator events --decision recovered",
        LIMIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args([
                "events",
                "--decision",
                "recovered",
                "-o",
                "json",
                "--server",
                &a.address,
            ])
            .env_remove("ORCHESTRATOR_URL")
            .env("ORCHESTRATOR_TOKEN", CLI_TOKEN)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the CLI runs");
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(deliveries_of(&listed), expected);

    // The next cycles ask for nothing more.
    more_cycles(&a, 2.0).await;
    assert_eq!(redelivery_requests(&fake), 2);

    // A second replica: not the leader, it never lists nor asks.
    wait_for("the first replica leads", LIMIT, || async {
        a.handles.leader.is_leader().then_some(())
    })
    .await;
    let b = start(a.sim.clone(), &fake).await;
    let lost_later = delivery_id();
    seed(&fake, &lost_later, 204, 502, false);
    wait_for("the leader redelivered the new one", LIMIT, || async {
        (redelivery_requests(&fake) == 3).then_some(())
    })
    .await;
    more_cycles(&a, 2.0).await;
    assert!(!b.handles.leader.is_leader());
    assert_eq!(cycles(&b).await, 0.0, "a follower runs no cycle");
    assert_eq!(recovery(&b, "requested").await, 0.0);
    assert_eq!(redelivery_requests(&fake), 3);
    assert!(events(&b, "recovered").await.is_empty());
    b.stop().await.expect("a clean stop");
    a.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_that_fails_too_is_not_asked_for_again() {
    let fake = fake();
    hold_listing(&fake);
    let app = start(sim(), &fake).await;
    // Signed with the wrong secret: the service answers 401.
    fake.set_delivery_target(
        Some(&format!("{}/webhook/github", app.address)),
        "not-the-webhook-secret",
    )
    .expect("target set");
    let lost = delivery_id();
    seed(&fake, &lost, 301, 0, false);
    // Processed here already (GitHub gave up waiting for the answer): the
    // Job keyed by the delivery is in the store.
    let answered_late = delivery_id();
    let r = app
        .deliver("issues", &answered_late, bytes(&issue_labeled_agent(302)))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let job = r.job().expect("a job");
    wait_for("the Job in the store", LIMIT, || async {
        let r = app
            .http
            .get(format!("{}/api/v1/jobs/{job}", app.address))
            .bearer_auth(CLI_TOKEN)
            .send()
            .await
            .ok()?;
        (r.status().as_u16() == 200).then_some(())
    })
    .await;
    seed(&fake, &answered_late, 302, 0, false);
    fake.clear_faults();

    wait_for("one redelivery asked for", LIMIT, || async {
        (redelivery_requests(&fake) == 1).then_some(())
    })
    .await;
    // The redelivery reached the service and was refused (401): still no
    // 2xx for the guid, but it was asked for once already.
    wait_for("the failed redelivery recorded", LIMIT, || async {
        let failed = fake.snapshot()["deliveries"]
            .as_array()?
            .iter()
            .filter(|d| d["guid"] == lost.as_str() && d["redelivery"] == true)
            .any(|d| d["status_code"] == 401);
        failed.then_some(())
    })
    .await;
    more_cycles(&app, 3.0).await;
    assert_eq!(redelivery_requests(&fake), 1, "never twice for one guid");
    assert_eq!(
        deliveries_of(&events(&app, "recovered").await),
        vec![lost.clone()]
    );
    assert_eq!(app.jobs().await.len(), 1, "only the one made directly");
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_pages_with_the_cursor_until_the_window() {
    let fake = fake();
    let guids: Vec<String> = (0..250).map(|_| delivery_id()).collect();
    let old = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    for (i, guid) in guids.iter().enumerate() {
        // The first 30 seeded (the oldest ids) are two hours old.
        let mut d = json!({"event": "issues", "guid": guid, "status_code": 200});
        if i < 30 {
            d["delivered_at"] = json!(old);
        }
        fake.seed_delivery(d).expect("seeded");
    }
    let cfg = orchestrator::config::github::GithubApiConfig::from_lookup(&|k: &str| match k {
        "GITHUB_API_URL" => Some(fake.url()),
        "GITHUB_APP_ID" => Some(APP_ID.to_string()),
        "GITHUB_APP_PRIVATE_KEY" => Some(KEY.to_string()),
        _ => None,
    })
    .expect("a configuration");
    let github = orchestrator::github::Github::new(&cfg, Default::default())
        .expect("a client")
        .expect("an App");
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let listing = github
        .app_hook_deliveries(since, 100)
        .await
        .expect("listed");
    assert_eq!(listing.deliveries.len(), 220);
    assert_eq!(
        listing.pages, 3,
        "100 + 100 + the page that reached the window"
    );
    assert!(!listing.truncated);
    let newest_first: Vec<&str> = listing.deliveries.iter().map(|d| d.guid.as_str()).collect();
    let expected: Vec<&str> = guids[30..].iter().rev().map(String::as_str).collect();
    assert_eq!(newest_first, expected);
    let bounded = github.app_hook_deliveries(since, 2).await.expect("listed");
    assert_eq!((bounded.deliveries.len(), bounded.pages), (200, 2));
    assert!(bounded.truncated);
    assert_eq!(requests(&fake, "GET", "/app/hook/deliveries"), 5);
}
