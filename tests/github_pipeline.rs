//! The GitHub pipeline end to end: real HTTP on loopback, the real service,
//! the embedded Kubernetes simulator. Every fixture payload is answered
//! correctly as-is, and each routed variant becomes exactly one hardened,
//! suspended Job that is then admitted and completes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Container;
use serde_json::{json, Value};

const IMAGE: &str = "registry.example.com/agents/claude-code:test";

fn config() -> Vec<(&'static str, &'static str)> {
    vec![
        ("JOB_IMAGE", IMAGE),
        ("JOB_CPU_REQUEST", "250m"),
        ("JOB_CPU_LIMIT", "500m"),
        ("JOB_MEMORY_REQUEST", "256Mi"),
        ("JOB_MEMORY_LIMIT", "512Mi"),
        ("JOB_TIMEOUT_SECONDS", "600"),
        ("JOB_TTL_SECONDS", "900"),
    ]
}

/// The answer GitHub's fixture for `event` must get, unedited.
fn expected_as_is(event: &str) -> (u16, Value) {
    match event {
        "ping" => (200, json!({"status": "pong"})),
        "issues" | "issue_comment" | "pull_request" | "pull_request_review_comment" => (
            202,
            json!({"status": "ignored", "reason": "no rule matched"}),
        ),
        other => (
            202,
            json!({"status": "ignored", "reason": format!("event '{other}' is not routed")}),
        ),
    }
}

#[tokio::test]
async fn every_fixture_payload_as_is_is_answered_pong_or_ignored_with_the_right_reason_and_makes_no_job(
) {
    let app = spawn_app(&config()).await;
    let fixtures = all_fixtures();
    assert!(fixtures.len() >= 25, "the fixtures are present");
    for (event, path, body) in fixtures {
        let answer = app.deliver(&event, &delivery_id(), body).await;
        answer.assert_json();
        let (status, expected) = expected_as_is(&event);
        assert_eq!(answer.status, status, "{path}: {}", answer.text);
        assert_eq!(answer.json, expected, "{path}");
    }
    assert!(app.jobs().await.is_empty(), "no fixture as-is makes a Job");
    app.stop().await.expect("a clean stop");
}

/// The events log says what each ignored delivery was about — read from
/// the body when the log is read for a comment ignored without decoding it,
/// from routing's decode for a label no rule routes — and nothing for a
/// body that is not a JSON object.
#[tokio::test]
async fn the_events_log_says_what_each_ignored_delivery_was_about() {
    const TOKEN: &str = "viewer-token-0123456789abcdef";
    let mut env = config();
    env.push(("API_TOKENS", "viewer=viewer-token-0123456789abcdef"));
    let app = spawn_app(&env).await;
    let comment = fixture("issue_comment/created.json");
    let mut labeled = fixture("issues/labeled.json");
    set(&mut labeled, "/label/name", "not-routed".into());
    let cases = [
        ("issue_comment", bytes(&comment), &comment),
        ("issues", bytes(&labeled), &labeled),
    ];
    let mut deliveries = Vec::new();
    for (event, body, _) in &cases {
        let id = delivery_id();
        let answer = app.deliver(event, &id, body.clone()).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        assert_eq!(answer.json["status"], "ignored", "{}", answer.text);
        deliveries.push(id);
    }
    let not_json = delivery_id();
    let answer = app.deliver("push", &not_json, b"[1, 2".to_vec()).await;
    assert_eq!(answer.status, 202, "an event no rule names is not parsed");
    let events: Value = app
        .http
        .get(format!("{}/api/v1/events", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /api/v1/events")
        .json()
        .await
        .expect("JSON");
    let by_delivery = |id: &str| {
        events
            .as_array()
            .expect("a list")
            .iter()
            .find(|e| e["delivery"] == id)
            .unwrap_or_else(|| panic!("{id} in {events}"))
            .clone()
    };
    for ((_, _, payload), id) in cases.iter().zip(&deliveries) {
        let e = by_delivery(id);
        assert_eq!(e["decision"], "ignored", "{e}");
        assert_eq!(e["repository"], payload["repository"]["full_name"], "{e}");
        assert_eq!(e["number"], payload["issue"]["number"], "{e}");
        assert_eq!(e["sender"], payload["sender"]["login"], "{e}");
        assert_eq!(e["action"], payload["action"], "{e}");
    }
    let e = by_delivery(&not_json);
    for field in ["repository", "number", "sender", "action"] {
        assert!(
            e.get(field).is_none(),
            "{field} of a body that is no object: {e}"
        );
    }
    app.stop().await.expect("a clean stop");
}

struct Expect {
    fixture: &'static str,
    event: &'static str,
    kind: &'static str,
    issue: Option<u64>,
    pr: Option<u64>,
    /// Text of the payload the prompt must carry (as data).
    prompt_contains: &'static str,
}

fn routed_variants() -> Vec<(Expect, Value)> {
    let mut issue = fixture("issues/labeled.json");
    set(&mut issue, "/label/name", "agent".into());
    let mut pr = fixture("pull_request/labeled.json");
    set(&mut pr, "/label/name", "agent-review".into());
    vec![
        (
            Expect {
                fixture: "issues/labeled.json",
                event: "issues",
                kind: "implement",
                issue: Some(1),
                pr: None,
                prompt_contains: "Spelling error in the README file",
            },
            issue,
        ),
        (
            Expect {
                fixture: "issue_comment/created.json",
                event: "issue_comment",
                kind: "comment",
                issue: Some(1),
                pr: None,
                prompt_contains: "You are totally right!",
            },
            comment_agent("issue_comment/created.json"),
        ),
        (
            Expect {
                fixture: "pull_request/labeled.json",
                event: "pull_request",
                kind: "review",
                issue: None,
                pr: Some(2),
                prompt_contains: "Update the README with new information",
            },
            pr,
        ),
        (
            Expect {
                fixture: "pull_request_review_comment/created.json",
                event: "pull_request_review_comment",
                kind: "comment",
                issue: None,
                pr: Some(2),
                prompt_contains: "Maybe you should use more emoji",
            },
            comment_agent("pull_request_review_comment/created.json"),
        ),
    ]
}

fn env_map(c: &Container) -> BTreeMap<String, Option<String>> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

fn assert_job_spec(job: &Job, e: &Expect, delivery: &str) {
    let what = e.fixture;
    let meta = &job.metadata;
    let labels = meta.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("orchestrator"),
        "{what}: managed-by label"
    );
    assert_eq!(
        labels.get("orchestrator.dev/source").map(String::as_str),
        Some("github"),
        "{what}"
    );
    assert_eq!(
        labels.get("orchestrator.dev/kind").map(String::as_str),
        Some(e.kind),
        "{what}"
    );
    assert_eq!(
        labels
            .get("orchestrator.dev/repository")
            .map(String::as_str),
        Some("Codertocat.Hello-World"),
        "{what}: the repository as a valid label value"
    );
    let annotations = meta.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("orchestrator.dev/delivery-id")
            .map(String::as_str),
        Some(delivery),
        "{what}: delivery id annotation"
    );
    let spec = job.spec.as_ref().expect("job spec");
    assert_eq!(spec.backoff_limit, Some(0), "{what}");
    assert_eq!(spec.active_deadline_seconds, Some(600), "{what}");
    assert_eq!(spec.ttl_seconds_after_finished, Some(900), "{what}");
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"), "{what}");
    assert_eq!(pod.automount_service_account_token, Some(false), "{what}");
    let psc = pod.security_context.as_ref().expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true), "{what}");
    assert_eq!(psc.run_as_user, Some(1000), "{what}");
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault"),
        "{what}"
    );
    let all: Vec<&Container> = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .collect();
    for c in &all {
        let sc = c
            .security_context
            .as_ref()
            .expect("container security context");
        assert_eq!(
            sc.allow_privilege_escalation,
            Some(false),
            "{what}/{}",
            c.name
        );
        assert_eq!(sc.run_as_non_root, Some(true), "{what}/{}", c.name);
        let drop = sc
            .capabilities
            .as_ref()
            .and_then(|c| c.drop.clone())
            .unwrap_or_default();
        assert_eq!(drop, vec!["ALL".to_string()], "{what}/{}", c.name);
        assert!(
            sc.privileged != Some(true),
            "{what}/{}: not privileged",
            c.name
        );
    }
    assert_eq!(pod.containers.len(), 1, "{what}: one agent container");
    let agent = &pod.containers[0];
    assert_eq!(agent.image.as_deref(), Some(IMAGE), "{what}");
    let res = agent.resources.as_ref().expect("resources");
    let q =
        |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone());
    assert_eq!(q(&res.requests, "cpu").as_deref(), Some("250m"), "{what}");
    assert_eq!(q(&res.limits, "cpu").as_deref(), Some("500m"), "{what}");
    assert_eq!(
        q(&res.requests, "memory").as_deref(),
        Some("256Mi"),
        "{what}"
    );
    assert_eq!(q(&res.limits, "memory").as_deref(), Some("512Mi"), "{what}");

    let env = env_map(agent);
    let val = |k: &str| env.get(k).cloned().flatten();
    assert_eq!(val("TASK_SOURCE").as_deref(), Some("github"), "{what}");
    assert_eq!(val("TASK_KIND").as_deref(), Some(e.kind), "{what}");
    assert_eq!(
        val("REPOSITORY").as_deref(),
        Some("Codertocat/Hello-World"),
        "{what}"
    );
    assert_eq!(
        val("ISSUE_NUMBER"),
        e.issue.map(|n| n.to_string()),
        "{what}: ISSUE_NUMBER"
    );
    assert_eq!(
        val("PR_NUMBER"),
        e.pr.map(|n| n.to_string()),
        "{what}: PR_NUMBER"
    );
    let prompt = val("PROMPT").unwrap_or_default();
    assert!(
        prompt.contains(e.prompt_contains),
        "{what}: PROMPT carries the payload text: {prompt}"
    );
    let task: Value =
        serde_json::from_str(&val("TASK_JSON").unwrap_or_default()).expect("TASK_JSON is JSON");
    assert_eq!(task["source"], "github", "{what}");
    assert_eq!(task["kind"], e.kind, "{what}");
    assert_eq!(task["repository"], "Codertocat/Hello-World", "{what}");
    assert_eq!(task["delivery_id"], delivery, "{what}");
    assert_eq!(task["prompt"].as_str(), Some(prompt.as_str()), "{what}");
    // Secrets only by reference: no env value looks like our webhook secret.
    for c in &all {
        for e in c.env.iter().flatten() {
            assert!(
                !e.value.as_deref().unwrap_or("").contains(TEST_SECRET),
                "{what}: the webhook secret leaked into env {}",
                e.name
            );
        }
    }
}

#[tokio::test]
async fn each_routed_fixture_variant_is_queued_as_exactly_one_hardened_suspended_job_that_is_admitted_and_completes(
) {
    let app = spawn_app(&config()).await;
    let recorder = Recorder::start(&app.sim);
    for (expect, payload) in routed_variants() {
        let before = app.job_names().await;
        let delivery = delivery_id();
        let answer = app.deliver(expect.event, &delivery, bytes(&payload)).await;
        answer.assert_json();
        assert_eq!(answer.status, 202, "{}: {}", expect.fixture, answer.text);
        assert_eq!(answer.status_field(), "queued", "{}", expect.fixture);
        let name = answer.job().expect("the answer names the job");
        let after = app.job_names().await;
        let new: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
        assert_eq!(new, vec![&name], "{}: exactly one new Job", expect.fixture);
        let job = app.job(&name).await.expect("the job exists");
        assert_job_spec(&job, &expect, &delivery);

        let done = app.wait_complete(&name, Duration::from_secs(30)).await;
        assert!(!suspended(&done), "{}: admitted", expect.fixture);
        let history = wait_for("the watch to see the admission", WAIT, || async {
            let h = recorder.suspend_history(&name).await;
            (h.len() >= 2).then_some(h)
        })
        .await;
        assert_eq!(
            history,
            vec![true, false],
            "{}: created suspended, then admitted once",
            expect.fixture
        );
        assert_eq!(
            app.pods_of(&name).await.len(),
            1,
            "{}: one pod",
            expect.fixture
        );
    }
    assert_eq!(app.jobs().await.len(), 4);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn health_is_200_and_ready_is_503_until_the_job_watch_has_synced() {
    let sim = start_sim(0.3);
    // The API server is down while the service starts.
    set_faults(&sim, json!({"down_for_seconds": 8})).await;
    let port = free_port();
    let sim2 = sim.clone();
    let secret = TEST_SECRET.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let config = orchestrator::config::Config::from_lookup(|k| match k {
                "GITHUB_WEBHOOK_SECRET" => Some(secret.clone()),
                "SHUTDOWN_TIMEOUT_SECONDS" => Some("5".into()),
                _ => None,
            })?;
            let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
            let kc = kube::config::Kubeconfig::from_yaml(&sim2.kubeconfig())?;
            let kcfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            orchestrator::app::run(config, listener, kcfg, async {
                let _ = rx.await;
            })
            .await
        })
    });
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_for("/health to answer 200", WAIT, || async {
        let r = http.get(format!("{base}/health")).send().await.ok()?;
        (r.status().as_u16() == 200).then_some(())
    })
    .await;
    let ready = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("GET /ready");
    assert_eq!(
        ready.status().as_u16(),
        503,
        "not ready before the watch synced"
    );
    let body: Value = ready.json().await.expect("a JSON body");
    assert!(body.is_object());
    // Proof the API server was still down when /ready answered.
    let api = http
        .get(format!(
            "{}/apis/batch/v1/namespaces/default/jobs",
            sim.url()
        ))
        .send()
        .await
        .expect("GET the simulator");
    assert_eq!(api.status().as_u16(), 503, "the simulator was still down");
    clear_faults(&sim).await;
    wait_for("/ready to turn 200", WAIT, || async {
        let r = http.get(format!("{base}/ready")).send().await.ok()?;
        (r.status().as_u16() == 200).then_some(())
    })
    .await;
    let health = http
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(health.status().as_u16(), 200);
    let _ = tx.send(());
    let result = bounded(
        "the service to stop",
        WAIT,
        tokio::task::spawn_blocking(move || thread.join()),
    )
    .await
    .expect("join")
    .expect("no panic");
    result.expect("a clean stop");
}

#[tokio::test]
async fn on_shutdown_ready_stops_answering_200_while_an_in_flight_delivery_completes_with_its_job()
{
    let mut app = spawn_app(&[("SHUTDOWN_TIMEOUT_SECONDS", "20")]).await;
    // A kept-alive connection for the readiness probe.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .http1_only()
        .timeout(WAIT)
        .build()
        .expect("client");
    let ready_url = format!("{}/ready", app.address);
    let first = probe.get(&ready_url).send().await.expect("GET /ready");
    assert_eq!(first.status().as_u16(), 200);
    let _ = first.bytes().await;
    // Every API call now takes 1.5 s: the delivery below stays in flight.
    set_faults(&app.sim, json!({"latency_ms": 1500})).await;
    let http = app.http.clone();
    let url = format!("{}/webhook/github", app.address);
    let body = bytes(&issue_labeled_agent(5));
    let sig = sign(TEST_SECRET, &body);
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", delivery_id())
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
            .await
    });
    // The delivery is inside the service: its Job create is in flight.
    wait_for("the delivery's Job create", WAIT, || async {
        (common::in_flight(&sim_stats(&app.sim).await, "create", "jobs") >= 1).then_some(())
    })
    .await;
    app.begin_shutdown();
    // Once the probe stops getting 200 (a 503, or a closed connection: actix
    // stops accepting and drops idle connections at once), it never gets
    // 200 again, while the in-flight delivery is still being served.
    let mut not_ready = false;
    for _ in 0..100 {
        match probe.get(&ready_url).send().await {
            Ok(r) if r.status().as_u16() == 200 => {
                assert!(!not_ready, "ready again after draining began");
                let _ = r.bytes().await;
            }
            Ok(r) => {
                assert_eq!(r.status().as_u16(), 503);
                let body: Value = r.json().await.expect("a JSON body");
                assert_eq!(body["status"], "draining");
                not_ready = true;
            }
            Err(_) => not_ready = true,
        }
        if in_flight.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(not_ready, "/ready stopped answering 200 during the drain");
    let resp = bounded("the in-flight delivery", WAIT, in_flight)
        .await
        .expect("join")
        .expect("the in-flight delivery is answered");
    assert_eq!(resp.status().as_u16(), 202);
    let answer: Value = resp.json().await.expect("JSON");
    let job = answer["job"].as_str().expect("job").to_string();
    clear_faults(&app.sim).await;
    assert!(app.job(&job).await.is_some(), "the 2xx'd Job exists");
    app.stop().await.expect("a clean stop");
}
