//! What the webhook refuses: bad signatures, untrusted authors, oversized,
//! malformed or incomplete requests. Every refusal is a JSON answer that
//! never contains the secret, and none of them makes a Job.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::exposition::Exposition;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn routed_issue() -> Vec<u8> {
    bytes(&issue_labeled_agent(1))
}

fn assert_error(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.text);
    answer.assert_json();
    assert_eq!(answer.status_field(), "error", "{what}: {}", answer.text);
    assert!(
        answer.json["message"].is_string(),
        "{what}: a message: {}",
        answer.text
    );
    for secret in [TEST_SECRET, "old-secret", "new-secret"] {
        assert!(
            !answer.text.contains(secret),
            "{what}: the answer echoes a secret: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn forged_missing_malformed_or_wrong_secret_signatures_are_refused_with_401_and_make_no_job()
{
    let app = spawn_app(&[]).await;
    let body = routed_issue();
    let forged = sign(TEST_SECRET, b"some other body");
    let cases: Vec<(&str, Answer)> = vec![
        (
            "missing",
            app.deliver_unsigned("issues", &delivery_id(), body.clone())
                .await,
        ),
        (
            "forged (signature of another body)",
            app.deliver_with_signature(&forged, "issues", &delivery_id(), body.clone())
                .await,
        ),
        (
            "wrong secret",
            app.deliver_signed_with("not-the-secret", "issues", &delivery_id(), body.clone())
                .await,
        ),
        (
            "sha1 prefix",
            app.deliver_with_signature(
                &sign(TEST_SECRET, &body).replace("sha256=", "sha1="),
                "issues",
                &delivery_id(),
                body.clone(),
            )
            .await,
        ),
        (
            "not hex",
            app.deliver_with_signature("sha256=zz", "issues", &delivery_id(), body.clone())
                .await,
        ),
        (
            "empty",
            app.deliver_with_signature("", "issues", &delivery_id(), body.clone())
                .await,
        ),
    ];
    for (what, answer) in &cases {
        assert_error(answer, 401, what);
    }
    // A tampered body under a valid signature of the original.
    let mut tampered = issue_labeled_agent(1);
    set(&mut tampered, "/issue/title", "rm -rf /".into());
    let answer = app
        .deliver_with_signature(
            &sign(TEST_SECRET, &body),
            "issues",
            &delivery_id(),
            bytes(&tampered),
        )
        .await;
    assert_error(&answer, 401, "tampered body");
    assert!(
        app.jobs().await.is_empty(),
        "no Job from a refused delivery"
    );
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn with_a_rotated_secret_both_the_old_and_the_new_secret_are_accepted() {
    let app = spawn_app(&[("GITHUB_WEBHOOK_SECRET", "old-secret,new-secret")]).await;
    let old = app
        .deliver_signed_with(
            "old-secret",
            "issues",
            &delivery_id(),
            bytes(&issue_labeled_agent(1)),
        )
        .await;
    assert_eq!(old.status, 202, "old secret: {}", old.text);
    assert_eq!(old.status_field(), "queued");
    let new = app
        .deliver_signed_with(
            "new-secret",
            "issues",
            &delivery_id(),
            bytes(&issue_labeled_agent(2)),
        )
        .await;
    assert_eq!(new.status, 202, "new secret: {}", new.text);
    assert_eq!(new.status_field(), "queued");
    let other = app
        .deliver_signed_with(
            "older-secret",
            "issues",
            &delivery_id(),
            bytes(&issue_labeled_agent(3)),
        )
        .await;
    assert_error(&other, 401, "a secret not configured");
    let mut names = app.job_names().await;
    names.sort();
    let mut expected = vec![old.job().expect("job"), new.job().expect("job")];
    expected.sort();
    assert_eq!(names, expected);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_comment_from_an_untrusted_author_is_ignored_as_untrusted_and_makes_no_job() {
    let app = spawn_app(&[]).await;
    for association in ["NONE", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR"] {
        let mut payload = comment_agent("issue_comment/created.json");
        set(
            &mut payload,
            "/comment/author_association",
            association.into(),
        );
        let answer = app
            .deliver("issue_comment", &delivery_id(), bytes(&payload))
            .await;
        answer.assert_json();
        assert_eq!(answer.status, 202, "{association}: {}", answer.text);
        assert_eq!(answer.status_field(), "ignored", "{association}");
        assert_eq!(answer.json["reason"], "untrusted", "{association}");
    }
    assert!(app.jobs().await.is_empty());
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_body_over_the_configured_limit_is_refused_with_413_and_makes_no_job() {
    let app = spawn_app(&[("GITHUB_MAX_BODY_BYTES", "4096")]).await;
    let body = routed_issue();
    assert!(body.len() > 4096, "the fixture is larger than the limit");
    let answer = app.deliver("issues", &delivery_id(), body.clone()).await;
    assert_error(&answer, 413, "over the limit, with Content-Length");

    // The same without Content-Length (chunked): refused while reading.
    let stream = futures::stream::iter(
        body.chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = app
        .http
        .post(format!("{}/webhook/github", app.address))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", delivery_id())
        .header("x-hub-signature-256", sign(TEST_SECRET, &body))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    // The server may close the connection before the whole body was sent;
    // if an answer arrives, it is a 413.
    if let Ok(resp) = resp {
        assert_eq!(resp.status().as_u16(), 413, "chunked over the limit");
    }
    // Under the limit is fine.
    let small = bytes(&serde_json::json!({"zen": "Keep it logically awesome.", "hook_id": 1}));
    let ping = app.deliver("ping", &delivery_id(), small).await;
    assert_eq!(ping.status, 200, "{}", ping.text);
    assert!(app.jobs().await.is_empty());
    app.stop().await.expect("a clean stop");
}

/// Sends a request head announcing `content_length` bytes and no body; returns
/// the status line and the rest of the answer.
async fn raw_post_head(address: &str, content_length: u64) -> (u16, String) {
    let hostport = address.trim_start_matches("http://");
    let mut s = bounded("connect", WAIT, tokio::net::TcpStream::connect(hostport))
        .await
        .expect("connect");
    let head = format!(
        "POST /webhook/github HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: issues\r\nX-GitHub-Delivery: {}\r\n\
         X-Hub-Signature-256: sha256={}\r\nContent-Length: {content_length}\r\n\r\n",
        delivery_id(),
        "0".repeat(64)
    );
    s.write_all(head.as_bytes()).await.expect("write the head");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read until the JSON body is complete (or the server closes).
    bounded("the answer to a head-only request", WAIT, async {
        loop {
            let n = s.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((_, body)) = text.split_once("\r\n\r\n") {
                if body.trim_end().ends_with('}') {
                    break;
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn the_default_limit_refuses_a_content_length_over_25_mib_before_reading_the_body() {
    let app = spawn_app(&[]).await;
    let (status, text) = raw_post_head(&app.address, 25 * 1024 * 1024 + 1).await;
    assert_eq!(status, 413, "{text}");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json: Value = serde_json::from_str(body.trim()).expect("a JSON body");
    assert_eq!(json["error"], "payload_too_large", "{text}");
    assert!(app.jobs().await.is_empty());
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn malformed_json_missing_headers_and_a_non_json_content_type_are_refused_with_400() {
    let app = spawn_app(&[]).await;
    let body = routed_issue();

    let malformed = b"{\"action\": \"labeled\", \"label\": ".to_vec();
    let answer = app.deliver("issues", &delivery_id(), malformed).await;
    assert_error(&answer, 400, "malformed JSON");

    let not_object = b"[1, 2, 3]".to_vec();
    let answer = app.deliver("issues", &delivery_id(), not_object).await;
    assert_error(&answer, 400, "a JSON array");

    let mut no_repo = issue_labeled_agent(1);
    no_repo
        .as_object_mut()
        .expect("object")
        .remove("repository");
    let answer = app.deliver("issues", &delivery_id(), bytes(&no_repo)).await;
    assert_error(&answer, 400, "a payload without repository");
    assert!(
        answer.json["message"]
            .as_str()
            .unwrap_or("")
            .contains("repository"),
        "the message names the problem: {}",
        answer.text
    );

    let mut d = Delivery::signed(TEST_SECRET, "issues", &delivery_id(), body.clone());
    d.event = None;
    assert_error(&app.send(d).await, 400, "no X-GitHub-Event");

    let mut d = Delivery::signed(TEST_SECRET, "issues", &delivery_id(), body.clone());
    d.delivery = None;
    assert_error(&app.send(d).await, 400, "no X-GitHub-Delivery");

    for ct in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ] {
        let mut d = Delivery::signed(TEST_SECRET, "issues", &delivery_id(), body.clone());
        d.content_type = ct.map(str::to_string);
        assert_error(&app.send(d).await, 400, &format!("content type {ct:?}"));
    }
    // `application/json; charset=utf-8` is JSON.
    let mut d = Delivery::signed(TEST_SECRET, "issues", &delivery_id(), body.clone());
    d.content_type = Some("application/json; charset=utf-8".into());
    let answer = app.send(d).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(
        app.jobs().await.len(),
        1,
        "only the valid delivery made a Job"
    );
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app(&[]).await;
    let answer = app.get("/nope").await;
    assert_eq!(answer.status, 404);
    answer.assert_json();
    let resp = app
        .http
        .get(format!("{}/webhook/github", app.address))
        .send()
        .await
        .expect("GET /webhook/github");
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = Answer::from_response(resp).await;
    assert_eq!(answer.status, 405, "{}", answer.text);
    assert_eq!(allow.as_deref(), Some("POST"), "405 says which method");
    answer.assert_json();
    assert_eq!(
        answer.json["error"], "method_not_allowed",
        "{}",
        answer.text
    );
    let health = app.get("/health").await;
    assert_eq!(health.status, 200);
    health.assert_json();
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_label_the_untrusted_issue_author_applied_to_their_own_issue_is_ignored_as_untrusted() {
    let app = spawn_app(&[]).await;
    let mut payload = issue_labeled_agent(1);
    // The sender labelled their own issue (as an issue template does).
    assert_eq!(
        payload["sender"]["login"],
        payload["issue"]["user"]["login"]
    );
    set(&mut payload, "/issue/author_association", "NONE".into());
    let answer = app.deliver("issues", &delivery_id(), bytes(&payload)).await;
    assert_eq!(
        (answer.status, answer.json.clone()),
        (
            202,
            serde_json::json!({"status": "ignored", "reason": "untrusted"})
        ),
        "{}",
        answer.text
    );
    // A maintainer labelling someone else's issue is trusted.
    set(&mut payload, "/sender/login", "a-maintainer".into());
    let answer = app.deliver("issues", &delivery_id(), bytes(&payload)).await;
    assert_eq!(
        (answer.status, answer.status_field()),
        (202, "queued"),
        "{}",
        answer.text
    );
    assert_eq!(app.jobs().await.len(), 1);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_sender_over_the_rate_limit_gets_429_with_retry_after_and_no_job() {
    let app = spawn_app(&[("RATE_LIMIT_PER_SENDER_PER_MINUTE", "2")]).await;
    for n in 1..=2 {
        let a = app
            .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(n)))
            .await;
        assert_eq!((a.status, a.status_field()), (202, "queued"), "{}", a.text);
    }
    let limited = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(3)))
        .await;
    assert_error(&limited, 429, "over the sender limit");
    let retry: u64 = limited
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry >= 1);
    assert_eq!(app.jobs().await.len(), 2);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn in_insecure_development_mode_without_a_secret_unsigned_deliveries_are_accepted() {
    let app = spawn_app(&[
        ("GITHUB_WEBHOOK_SECRET", ""),
        ("ALLOW_INSECURE_NO_SIGNATURE", "true"),
    ])
    .await;
    let a = app
        .deliver_unsigned("issues", &delivery_id(), routed_issue())
        .await;
    assert_eq!((a.status, a.status_field()), (202, "queued"), "{}", a.text);
    app.stop().await.expect("a clean stop");
    // With a secret configured the flag changes nothing: signatures are checked.
    let app = spawn_app(&[("ALLOW_INSECURE_NO_SIGNATURE", "true")]).await;
    let a = app
        .deliver_unsigned("issues", &delivery_id(), routed_issue())
        .await;
    assert_error(&a, 401, "unsigned with a secret configured");
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_media_type_is_matched_case_insensitively() {
    let app = spawn_app(&[]).await;
    let mut d = Delivery::signed(TEST_SECRET, "issues", &delivery_id(), routed_issue());
    d.content_type = Some("Application/JSON; charset=UTF-8".into());
    let a = app.send(d).await;
    assert_eq!((a.status, a.status_field()), (202, "queued"), "{}", a.text);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn metrics_are_served_and_count_the_decisions() {
    // One Job runs (for a minute) and two wait: MAX_CONCURRENT_JOBS=1.
    // The Lease is renewed once a minute, so within the test the only
    // Kubernetes calls after it is taken are the deliveries' own.
    let app = spawn_app_on(
        start_sim(60.0),
        &[
            ("RATE_LIMIT_PER_SENDER_PER_MINUTE", "3"),
            ("MAX_CONCURRENT_JOBS", "1"),
            ("LEADER_LEASE_SECONDS", "300"),
            ("LEADER_RENEW_DEADLINE_SECONDS", "200"),
            ("LEADER_RETRY_SECONDS", "60"),
        ],
    )
    .await;
    let metrics = || async {
        let m = app.get("/metrics").await;
        assert_eq!(m.status, 200);
        assert!(
            m.content_type.starts_with("application/openmetrics-text")
                || m.content_type.starts_with("text/plain"),
            "{}",
            m.content_type
        );
        Exposition::parse(&m.text).unwrap_or_else(|err| panic!("{err}\n{}", m.text))
    };
    // Kubernetes calls by "verb/outcome".
    let kube_calls = |e: &Exposition| -> BTreeMap<String, f64> {
        e.matching("orchestrator_kube_requests_total", &[])
            .iter()
            .map(|s| {
                (
                    format!("{}/{}", s.labels["verb"], s.labels["outcome"]),
                    s.value,
                )
            })
            .collect()
    };
    let before = wait_for("this replica to lead", WAIT, || async {
        let e = metrics().await;
        (e.value("orchestrator_leader", &[]) == Some(1.0)).then(|| kube_calls(&e))
    })
    .await;
    let issue = |n| bytes(&issue_labeled_agent(n));
    let a = app
        .deliver_unsigned("issues", &delivery_id(), issue(1))
        .await;
    assert_eq!(a.status, 401, "{}", a.text);
    let first = delivery_id();
    let a = app.deliver("issues", &first, issue(1)).await;
    assert_eq!(a.status_field(), "queued", "{}", a.text);
    let a = app.deliver("issues", &first, issue(1)).await;
    assert_eq!(a.status_field(), "duplicate", "{}", a.text);
    let mut unrouted = issue_labeled_agent(2);
    set(&mut unrouted, "/label/name", "not-for-agents".into());
    let a = app
        .deliver("issues", &delivery_id(), bytes(&unrouted))
        .await;
    assert_eq!(a.status_field(), "ignored", "{}", a.text);
    for n in [3, 4] {
        let a = app.deliver("issues", &delivery_id(), issue(n)).await;
        assert_eq!(a.status_field(), "queued", "{}", a.text);
    }
    let a = app.deliver("issues", &delivery_id(), issue(5)).await;
    assert_eq!(
        a.status, 429,
        "the sender's fourth Job this minute: {}",
        a.text
    );

    // Counters and gauges settle once the first Job is admitted.
    let decisions = BTreeMap::from([
        ("duplicate".to_string(), 1.0),
        ("ignored".to_string(), 1.0),
        ("queued".to_string(), 3.0),
        ("rate_limited".to_string(), 1.0),
        ("unauthorized".to_string(), 1.0),
    ]);
    // Since the Lease was taken: three creates and one admission (read,
    // then unsuspend), all answered; and their audit Events (three
    // Accepted, one Admitted). The dedup record's shard reads and writes
    // (ConfigMap get, list, create, update) run on their own schedule, so
    // gets, lists and updates are left out and a create or two of a shard
    // is allowed.
    let calls_since =
        BTreeMap::from([("event/ok".to_string(), 4.0), ("patch/ok".to_string(), 1.0)]);
    let states = BTreeMap::from([("queued".to_string(), 2.0), ("running".to_string(), 1.0)]);
    let mut last = String::new();
    let settled = tokio::time::timeout(WAIT, async {
        loop {
            let e = metrics().await;
            let mut calls = kube_calls(&e);
            for (k, v) in &before {
                if let Some(n) = calls.get_mut(k) {
                    *n -= v;
                }
            }
            calls.retain(|_, n| *n != 0.0);
            let creates = calls.remove("create/ok").unwrap_or(0.0);
            calls.retain(|k, _| !["get/ok", "list/ok", "update/ok"].contains(&k.as_str()));
            // Every known decision and state is exported from the start:
            // compare those that happened.
            let mut seen_decisions = e.by_label("orchestrator_webhook_decisions_total", "decision");
            seen_decisions.retain(|_, v| *v != 0.0);
            let mut seen_states = e.by_label("orchestrator_jobs", "state");
            seen_states.retain(|_, v| *v != 0.0);
            let creates_ok = (3.0..=5.0).contains(&creates);
            let seen = (
                seen_decisions,
                calls,
                seen_states,
                e.value("orchestrator_jobs_admitted_total", &[])
                    .filter(|_| creates_ok),
            );
            if seen
                == (
                    decisions.clone(),
                    calls_since.clone(),
                    states.clone(),
                    Some(1.0),
                )
            {
                return e;
            }
            last = format!("{seen:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let e = settled.unwrap_or_else(|_| {
        panic!(
            "the metrics never showed decisions {decisions:?}, Kubernetes calls \
             {calls_since:?} since the Lease was taken, Job states {states:?} and one \
             admission; last: {last}"
        )
    });
    assert!(
        e.matching("orchestrator_webhook_decisions_total", &[])
            .iter()
            .filter(|s| s.value != 0.0)
            .all(|s| s.labels.get("source").map(String::as_str) == Some("github")),
        "only GitHub decided"
    );
    assert_eq!(
        e.types
            .get("orchestrator_webhook_decisions")
            .map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        e.types.get("orchestrator_jobs").map(String::as_str),
        Some("gauge")
    );
    app.stop().await.expect("a clean stop");
}

#[test]
fn the_exposition_reader_parses_labels_and_escapes_and_refuses_malformed_lines() {
    let e = Exposition::parse(
        "# HELP x Help with \"quotes\".\n# TYPE x counter\n\
         x_total{a=\"1\",b=\"q\\\"\\\\\\n\"} 3\nplain 2.5\n# EOF\n",
    )
    .expect("valid exposition");
    assert_eq!(e.types["x"], "counter");
    assert_eq!(
        e.value("x_total", &[("a", "1"), ("b", "q\"\\\n")]),
        Some(3.0)
    );
    assert_eq!(
        e.value("x_total", &[("a", "1")]),
        None,
        "labels match exactly"
    );
    assert_eq!(e.value("plain", &[]), Some(2.5));
    for bad in [
        "x{a=1} 2",
        "x{a=\"1\" 2",
        "x{a=\"1\"b=\"2\"} 2",
        "x 2 3 4",
        "{a=\"1\"} 2",
        "x{a=\"1\",a=\"2\"} 1",
        "x two",
        "# EOF\nx 1",
    ] {
        assert!(Exposition::parse(bad).is_err(), "{bad:?} is refused");
    }
}

/// Every `GIT_CONFIG_KEY_n` of every container (init and agent) of `job`.
fn git_config_keys(job: &k8s_openapi::api::batch::v1::Job) -> Vec<String> {
    let pod = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template");
    pod.containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .flat_map(|c| c.env.iter().flatten())
        .filter(|e| e.name.starts_with("GIT_CONFIG_KEY_"))
        .filter_map(|e| e.value.clone())
        .collect()
}

/// The clone credential is for the configured GitHub host only: a signed
/// delivery whose `clone_url` names another host gets a Job that clones it
/// without any credential helper (the token is never offered there).
#[tokio::test]
async fn a_clone_url_on_another_host_gets_no_credential_helper() {
    let app = spawn_app(&[("JOB_SECRET_NAME", "agent-secrets")]).await;
    let on_github = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(11)))
        .await;
    assert_eq!(on_github.status, 202, "{}", on_github.text);
    let job = app
        .job(&on_github.job().expect("a job"))
        .await
        .expect("the Job");
    let keys = git_config_keys(&job);
    assert!(
        keys.iter()
            .any(|k| k == "credential.https://github.com.helper"),
        "the GitHub clone has its helper: {keys:?}"
    );

    let mut elsewhere = issue_labeled_agent(12);
    set(
        &mut elsewhere,
        "/repository/clone_url",
        "https://attacker.example/Codertocat/Hello-World.git".into(),
    );
    let other = app
        .deliver("issues", &delivery_id(), bytes(&elsewhere))
        .await;
    assert_eq!(other.status, 202, "{}", other.text);
    let job = app
        .job(&other.job().expect("a job"))
        .await
        .expect("the Job");
    let keys = git_config_keys(&job);
    assert!(
        !keys.iter().any(|k| k.starts_with("credential.")),
        "no credential helper for another host: {keys:?}"
    );
    let text = serde_json::to_string(&job).expect("serialize");
    assert!(
        text.contains("https://attacker.example/"),
        "it is cloned, without credentials"
    );
}
