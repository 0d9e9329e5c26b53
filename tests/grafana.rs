//! Black-box tests of `POST /webhook/grafana`: Alertmanager fixtures and
//! Grafana bodies built from the documented schema
//! (`tests/fixtures/grafana/NOTES.md`), per-alert Jobs, duplicates,
//! resolve-cancels-queued, and every authentication mode.

mod api_support;
mod common;

use api_support::*;
use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const BASIC_USER_PASS: &str = "grafana:correct-horse-battery";
const BEARER: &str = "grafana-bearer-credential-42";
const HMAC_SECRET: &str = "grafana-hmac-secret";
const TS_HEADER: &str = "X-Grafana-Alerting-Signature-Timestamp";

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

fn hmac_hex(secret: &str, data: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("an HMAC key");
    m.update(data);
    hex::encode(m.finalize().into_bytes())
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

fn alertmanager_fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alertmanager")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).expect("the fixture")).expect("fixture JSON")
}

/// A service authenticating Grafana with Basic auth, plus `env`.
async fn basic_app(run_seconds: f64, env: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("API_TOKENS", API_TOKENS),
        ("GRAFANA_BASIC_AUTH", BASIC_USER_PASS),
    ];
    vars.extend_from_slice(env);
    spawn_app_on(start_sim(run_seconds), &vars).await
}

/// Sends `body` with Basic auth.
async fn notify(app: &TestApp, body: &Value) -> Reply {
    call(app, "POST", "/webhook/grafana")
        .header("authorization", &basic(BASIC_USER_PASS))
        .header("content-type", "application/json")
        .header("user-agent", "Grafana")
        .body(serde_json::to_vec(body).expect("serialize"))
        .send()
        .await
}

/// The per-alert answers of a 202, by fingerprint.
fn decisions(r: &Reply) -> Vec<(String, String)> {
    r.json["alerts"]
        .as_array()
        .unwrap_or_else(|| panic!("alerts in {}", r.text))
        .iter()
        .map(|a| {
            (
                a["fingerprint"].as_str().unwrap_or_default().to_string(),
                a["decision"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn job_for(r: &Reply, fingerprint: &str) -> String {
    r.json["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["fingerprint"] == fingerprint)
        .and_then(|a| a["job"].as_str())
        .unwrap_or_else(|| panic!("a job for {fingerprint} in {}", r.text))
        .to_string()
}

/// Whether the service's job list (`GET /api/v1/jobs{query}`, answered
/// from its watch-fed store) shows `job`.
async fn listed(app: &TestApp, query: &str, job: &str) -> bool {
    let list = call(app, "GET", &format!("/api/v1/jobs{query}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    list.expect(200, "the jobs list")["items"]
        .as_array()
        .is_some_and(|a| a.iter().any(|j| j["name"] == job))
}

/// A service with `MAX_CONCURRENT_JOBS=1` and the slot taken by a running
/// task, so a new alert's Job stays queued.
async fn occupied_app() -> TestApp {
    let app = basic_app(60.0, &[("MAX_CONCURRENT_JOBS", "1")]).await;
    let busy = submit_task(&app, &task("occupies the slot", "acme/slot"), None).await;
    busy.expect(202, "occupier");
    wait_state(&app, &job_of(&busy), "running", WAIT).await;
    app
}

/// Sends a firing critical alert with `fingerprint`; answers its Job.
async fn fire(app: &TestApp, fingerprint: &str) -> String {
    let firing = grafana_body(
        "firing",
        vec![critical(fingerprint, "2025-06-01T12:00:00Z")],
    );
    let f = notify(app, &firing).await;
    f.expect(202, "firing");
    job_for(&f, fingerprint)
}

/// The notification resolving what [`fire`] sent.
fn resolved_body(fingerprint: &str) -> Value {
    let mut alert = critical(fingerprint, "2025-06-01T12:00:00Z");
    alert["status"] = json!("resolved");
    alert["endsAt"] = json!("2025-06-01T12:20:00Z");
    grafana_body("resolved", vec![alert])
}

/// Stalls the service's Job watch: the open one ends, the next one is held
/// (a minute) before it starts, so the store keeps what it had.
async fn stall_job_watch(app: &TestApp) {
    set_faults(
        &app.sim,
        json!({
            "watch_close_after_seconds": 0.2,
            "latency_rules": [{"verb": "watch", "resource": "jobs", "ms": 60_000}],
        }),
    )
    .await;
    wait_for("the Job watch to be held", WAIT, || async {
        let stats = sim_stats(&app.sim).await;
        (in_flight(&stats, "watch", "jobs") >= 1 && stats["open_watches"] == 0).then_some(())
    })
    .await;
}

/// The Job on the API server: (suspended, marked cancelled).
async fn on_server(app: &TestApp, job: &str) -> (bool, bool) {
    let stored = app.job(job).await.expect("the Job still exists");
    let marked = stored
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("orchestrator.dev/cancelled-at"));
    (suspended(&stored), marked)
}

fn critical(fingerprint: &str, starts_at: &str) -> Value {
    grafana_alert(
        "firing",
        fingerprint,
        alert_labels("HighErrorRate", "critical", "acme/checkout"),
        starts_at,
    )
}

#[tokio::test]
async fn a_firing_alertmanager_fixture_queues_one_investigation_job() {
    let app = basic_app(60.0, &[]).await;
    let body = alertmanager_fixture("prometheus-msteams-prom_post_request.firing.json");
    let r = notify(&app, &body).await;
    assert_eq!(r.expect(202, "firing fixture")["status"], "processed");
    let d = decisions(&r);
    assert_eq!(d.len(), 1, "{}", r.text);
    assert_eq!(d[0].1, "queued", "{}", r.text);
    let job = r.json["alerts"][0]["job"]
        .as_str()
        .expect("a job")
        .to_string();
    assert_eq!(app.job_names().await, [job.as_str()]);
    let view = wait_state(&app, &job, "running", WAIT).await;
    assert_eq!(view["source"], "grafana");
    assert_eq!(view["kind"], "investigate");
    assert_eq!(view["priority"], 10, "severity=warning maps to priority 10");
}

#[tokio::test]
async fn a_grafana_notification_queues_one_job_per_selected_firing_alert_and_none_for_the_others() {
    let app = basic_app(60.0, &[("GRAFANA_ALERT_MATCHERS", "severity=critical")]).await;
    let body = grafana_body(
        "firing",
        vec![
            critical("a1b2c3d4e5f60001", "2025-06-01T12:00:00Z"),
            critical("a1b2c3d4e5f60002", "2025-06-01T12:01:00Z"),
            grafana_alert(
                "firing",
                "a1b2c3d4e5f60003",
                alert_labels("DiskFilling", "warning", "acme/checkout"),
                "2025-06-01T12:02:00Z",
            ),
        ],
    );
    let r = notify(&app, &body).await;
    r.expect(202, "grafana notification");
    let d = decisions(&r);
    assert_eq!(
        d,
        [
            ("a1b2c3d4e5f60001".to_string(), "queued".to_string()),
            ("a1b2c3d4e5f60002".to_string(), "queued".to_string()),
            ("a1b2c3d4e5f60003".to_string(), "ignored".to_string()),
        ],
        "{}",
        r.text
    );
    assert!(
        r.json["alerts"][2]["reason"]
            .as_str()
            .is_some_and(|s| s.contains("severity")),
        "the ignored alert says why: {}",
        r.text
    );
    let mut expected = vec![
        job_for(&r, "a1b2c3d4e5f60001"),
        job_for(&r, "a1b2c3d4e5f60002"),
    ];
    expected.sort();
    let mut names = app.job_names().await;
    names.sort();
    assert_eq!(
        names, expected,
        "one Job per selected alert, none for the other"
    );
    let view = wait_state(&app, &expected[0], "running", WAIT)
        .await
        .clone();
    assert_eq!(
        view["priority"], 100,
        "severity=critical maps to 100: {view}"
    );
    assert_eq!(view["repository"], "acme/checkout");
}

#[tokio::test]
async fn the_same_notification_again_is_answered_as_duplicate_without_a_new_job() {
    let app = basic_app(60.0, &[]).await;
    let body = grafana_body(
        "firing",
        vec![critical("d00d00d00d00d001", "2025-06-01T12:00:00Z")],
    );
    let first = notify(&app, &body).await;
    first.expect(202, "first");
    assert_eq!(decisions(&first)[0].1, "queued");
    // Grafana's repeat notification, and an HA peer's copy (PUT).
    let again = notify(&app, &body).await;
    again.expect(202, "repeat");
    assert_eq!(decisions(&again)[0].1, "duplicate", "{}", again.text);
    assert_eq!(
        job_for(&again, "d00d00d00d00d001"),
        job_for(&first, "d00d00d00d00d001")
    );
    let put = call(&app, "PUT", "/webhook/grafana")
        .header("authorization", &basic(BASIC_USER_PASS))
        .json(&body)
        .send()
        .await;
    put.expect(202, "PUT");
    assert_eq!(decisions(&put)[0].1, "duplicate", "{}", put.text);
    assert_eq!(app.jobs().await.len(), 1);
    // A new firing episode (new startsAt) is a new task.
    let next = grafana_body(
        "firing",
        vec![critical("d00d00d00d00d001", "2025-06-02T08:00:00Z")],
    );
    let n = notify(&app, &next).await;
    n.expect(202, "new episode");
    assert_eq!(decisions(&n)[0].1, "queued");
    assert_eq!(app.jobs().await.len(), 2);
}

#[tokio::test]
async fn a_resolved_alert_cancels_its_queued_job_which_never_runs() {
    let app = basic_app(60.0, &[("MAX_CONCURRENT_JOBS", "1")]).await;
    let recorder = Recorder::start(&app.sim);
    let busy = submit_task(&app, &task("occupies the slot", "acme/slot"), None).await;
    busy.expect(202, "occupier");
    wait_state(&app, &job_of(&busy), "running", WAIT).await;

    // The firing fixture, then the same fixture as Alertmanager resolved it.
    let resolved = alertmanager_fixture("prom2teams-with_common_items.resolved.json");
    let mut firing = resolved.clone();
    firing["status"] = json!("firing");
    firing["alerts"][0]["status"] = json!("firing");
    firing["alerts"][0]["endsAt"] = json!("0001-01-01T00:00:00Z");
    let f = notify(&app, &firing).await;
    f.expect(202, "firing");
    assert_eq!(
        decisions(&f),
        [("dd19ae3d4e06ac55".to_string(), "queued".to_string())]
    );
    let job = job_for(&f, "dd19ae3d4e06ac55");
    wait_state(&app, &job, "queued", WAIT).await;

    let r = notify(&app, &resolved).await;
    r.expect(202, "resolved");
    assert_eq!(
        decisions(&r),
        [("dd19ae3d4e06ac55".to_string(), "cancelled".to_string())],
        "{}",
        r.text
    );
    assert_eq!(job_for(&r, "dd19ae3d4e06ac55"), job);
    wait_state(&app, &job, "cancelled", WAIT).await;

    // Free the slot: the cancelled Job must still never be admitted.
    call(&app, "DELETE", &format!("/api/v1/jobs/{}", job_of(&busy)))
        .token(CLI_TOKEN)
        .send()
        .await
        .expect(200, "cancel the occupier");
    let later = submit_task(&app, &task("runs next", "acme/slot"), None).await;
    later.expect(202, "later");
    wait_state(&app, &job_of(&later), "running", WAIT).await;
    assert_eq!(api_state(&app, &job).await, "cancelled");
    assert_eq!(
        recorder.suspend_history(&job).await,
        [true],
        "never unsuspended"
    );
    assert!(!recorder.pods_per_job().await.contains_key(&job), "no pod");

    // Resolving again, or resolving an alert that never fired, is harmless.
    let again = notify(&app, &resolved).await;
    again.expect(202, "resolved again");
    assert_eq!(decisions(&again)[0].1, "resolved", "{}", again.text);
    let unknown = grafana_body(
        "resolved",
        vec![grafana_alert(
            "resolved",
            "0123456789abcdef",
            alert_labels("Gone", "critical", "acme/checkout"),
            "2025-06-01T12:00:00Z",
        )],
    );
    let u = notify(&app, &unknown).await;
    u.expect(202, "unknown resolved");
    assert_eq!(decisions(&u)[0].1, "resolved", "{}", u.text);
}

#[tokio::test]
async fn a_resolved_alert_leaves_a_running_job_alone_unless_configured_to_cancel_it() {
    for (cancel_running, expected) in [("false", "running"), ("true", "cancelled")] {
        let app = basic_app(
            60.0,
            &[("GRAFANA_CANCEL_RUNNING_ON_RESOLVE", cancel_running)],
        )
        .await;
        let firing = grafana_body(
            "firing",
            vec![critical("abcabcabcabc0001", "2025-06-01T12:00:00Z")],
        );
        let f = notify(&app, &firing).await;
        f.expect(202, "firing");
        let job = job_for(&f, "abcabcabcabc0001");
        wait_state(&app, &job, "running", WAIT).await;
        let mut resolved_alert = critical("abcabcabcabc0001", "2025-06-01T12:00:00Z");
        resolved_alert["status"] = json!("resolved");
        resolved_alert["endsAt"] = json!("2025-06-01T12:20:00Z");
        let r = notify(&app, &grafana_body("resolved", vec![resolved_alert])).await;
        r.expect(202, "resolved");
        let want = if expected == "cancelled" {
            "cancelled"
        } else {
            "resolved"
        };
        assert_eq!(decisions(&r)[0].1, want, "{cancel_running}: {}", r.text);
        // A later alert round-trips through the same service and the same
        // Job watch: once its Job is visible, everything the resolve did
        // (or set off) is visible too.
        let later = grafana_body(
            "firing",
            vec![critical("abcabcabcabc0002", "2025-06-01T12:30:00Z")],
        );
        let l = notify(&app, &later).await;
        l.expect(202, "a later firing alert");
        let later_job = job_for(&l, "abcabcabcabc0002");
        wait_for("the later alert's Job in the watch store", WAIT, || async {
            listed(&app, "", &later_job).await.then_some(())
        })
        .await;
        let shown = get_job(&app, &job).await;
        assert_eq!(
            shown.expect(200, "the resolved alert's Job")["state"],
            expected,
            "{cancel_running}"
        );
        assert_eq!(
            on_server(&app, &job).await,
            (expected == "cancelled", expected == "cancelled"),
            "{cancel_running}: the Job in the API server is (suspended, marked cancelled)"
        );
    }
}

/// The service's Job store follows the API server through a watch, so for a
/// moment it can still show as queued a Job that was just admitted. A resolved
/// alert in that moment must be decided on the API server's copy: a Job that
/// runs there is left alone (unless configured otherwise), never cancelled on
/// the strength of the stale record.
#[tokio::test]
async fn a_resolved_alert_decides_on_the_api_servers_copy_when_the_job_store_lags_behind_an_admission(
) {
    let app = occupied_app().await;
    let job = fire(&app, "feedfeedfeed0001").await;
    wait_for("the alert's Job queued in the store", WAIT, || async {
        listed(&app, "?state=queued", &job).await.then_some(())
    })
    .await;
    stall_job_watch(&app).await;
    // Admitted behind the store's back (as another replica's scheduler
    // would, a moment before this one's watch delivers it).
    let patch = kube::api::Patch::Merge(json!({"spec": {"suspend": false}}));
    bounded(
        "unsuspend",
        WAIT,
        app.jobs_api()
            .patch(&job, &kube::api::PatchParams::default(), &patch),
    )
    .await
    .expect("unsuspend the Job");
    assert!(
        listed(&app, "?state=queued", &job).await,
        "the store still shows the Job queued"
    );

    let r = notify(&app, &resolved_body("feedfeedfeed0001")).await;
    r.expect(202, "resolved");
    assert_eq!(
        (
            r.json["alerts"][0]["decision"].as_str(),
            r.json["alerts"][0]["reason"].as_str()
        ),
        (Some("resolved"), Some("job is running")),
        "{}",
        r.text
    );
    assert_eq!(
        on_server(&app, &job).await,
        (false, false),
        "still running, not marked cancelled"
    );
    clear_faults(&app.sim).await;
}

/// An alert that fires and resolves before the service's Job watch has
/// delivered the new Job: the resolve still finds it (by its name, on the
/// API server) and cancels it.
#[tokio::test]
async fn an_alert_resolved_before_the_job_watch_delivers_its_job_still_cancels_it() {
    let app = occupied_app().await;
    stall_job_watch(&app).await;
    let job = fire(&app, "feedfeedfeed0002").await;
    assert!(
        !listed(&app, "", &job).await,
        "the store has not seen the Job"
    );
    let r = notify(&app, &resolved_body("feedfeedfeed0002")).await;
    r.expect(202, "resolved");
    assert_eq!(
        decisions(&r),
        [("feedfeedfeed0002".to_string(), "cancelled".to_string())],
        "{}",
        r.text
    );
    assert_eq!(
        on_server(&app, &job).await,
        (true, true),
        "suspended and marked cancelled on the API server"
    );
    clear_faults(&app.sim).await;
}

/// A resolve whose cancel cannot reach Kubernetes answers 503 with
/// `Retry-After`, so Grafana sends the notification again; the retry cancels.
#[tokio::test]
async fn a_resolve_that_cannot_cancel_for_now_asks_grafana_to_retry_and_the_retry_cancels() {
    let app = occupied_app().await;
    let job = fire(&app, "feedfeedfeed0003").await;
    wait_for("the alert's Job queued in the store", WAIT, || async {
        listed(&app, "?state=queued", &job).await.then_some(())
    })
    .await;
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "patch", "resource": "jobs", "rate": 1.0, "status": 403}]}),
    )
    .await;
    let r = notify(&app, &resolved_body("feedfeedfeed0003")).await;
    r.expect(503, "the cancel was refused");
    assert!(r.retry_after.is_some(), "Retry-After: {}", r.text);
    assert_eq!(r.json["alerts"][0]["decision"], "unavailable", "{}", r.text);
    assert!(!on_server(&app, &job).await.1, "not marked cancelled");
    clear_faults(&app.sim).await;
    let again = notify(&app, &resolved_body("feedfeedfeed0003")).await;
    again.expect(202, "the retry");
    assert_eq!(
        again.json["alerts"][0]["decision"], "cancelled",
        "{}",
        again.text
    );
    assert_eq!(on_server(&app, &job).await, (true, true), "cancelled");
}

// ------------------------------------------------------------ authentication

fn small_body(fp: &str) -> Vec<u8> {
    serde_json::to_vec(&grafana_body(
        "firing",
        vec![critical(fp, "2025-06-01T12:00:00Z")],
    ))
    .expect("serialize")
}

/// Sends `body` with `headers`; returns the answer.
async fn send_with(app: &TestApp, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let mut c = call(app, "POST", "/webhook/grafana").header("content-type", "application/json");
    for (k, v) in headers {
        c = c.header(k, v);
    }
    c.body(body).send().await
}

fn assert_refused(r: &Reply, what: &str) {
    let b = r.expect(401, what);
    assert_eq!(b["status"], "error", "{what}: {}", r.text);
    assert_eq!(b["error"], "unauthorized", "{what}: {}", r.text);
}

#[tokio::test]
async fn basic_auth_is_accepted_with_the_right_credentials_and_refused_401_otherwise() {
    let app = basic_app(60.0, &[]).await;
    let ok = send_with(
        &app,
        &[("authorization", basic(BASIC_USER_PASS))],
        small_body("b0"),
    )
    .await;
    ok.expect(202, "right credentials");
    assert_refused(&send_with(&app, &[], small_body("b1")).await, "no header");
    assert_refused(
        &send_with(
            &app,
            &[("authorization", basic("grafana:wrong"))],
            small_body("b2"),
        )
        .await,
        "wrong password",
    );
    assert_refused(
        &send_with(
            &app,
            &[("authorization", format!("Bearer {BASIC_USER_PASS}"))],
            small_body("b3"),
        )
        .await,
        "wrong scheme",
    );
    assert_refused(
        &send_with(
            &app,
            &[("authorization", "Basic !!!not-base64".into())],
            small_body("b4"),
        )
        .await,
        "malformed",
    );
    assert_eq!(
        app.jobs().await.len(),
        1,
        "only the authenticated alert queued"
    );
}

#[tokio::test]
async fn bearer_credentials_are_accepted_and_a_missing_or_wrong_credential_is_refused_401() {
    let app = spawn_app_on(start_sim(60.0), &[("GRAFANA_AUTH_CREDENTIALS", BEARER)]).await;
    let ok = send_with(
        &app,
        &[("authorization", format!("Bearer {BEARER}"))],
        small_body("c0"),
    )
    .await;
    ok.expect(202, "right credential");
    let lower = send_with(
        &app,
        &[("authorization", format!("bearer {BEARER}"))],
        small_body("c1"),
    )
    .await;
    lower.expect(202, "the scheme is case-insensitive");
    assert_refused(&send_with(&app, &[], small_body("c2")).await, "no header");
    assert_refused(
        &send_with(
            &app,
            &[("authorization", "Bearer not-the-credential".into())],
            small_body("c3"),
        )
        .await,
        "wrong credential",
    );
    assert_refused(
        &send_with(&app, &[("authorization", basic(BEARER))], small_body("c4")).await,
        "wrong scheme",
    );
    // A custom scheme.
    let custom = spawn_app_on(
        start_sim(60.0),
        &[
            ("GRAFANA_AUTH_CREDENTIALS", BEARER),
            ("GRAFANA_AUTH_SCHEME", "Token"),
        ],
    )
    .await;
    send_with(
        &custom,
        &[("authorization", format!("Token {BEARER}"))],
        small_body("c5"),
    )
    .await
    .expect(202, "custom scheme");
    assert_refused(
        &send_with(
            &custom,
            &[("authorization", format!("Bearer {BEARER}"))],
            small_body("c6"),
        )
        .await,
        "bearer when Token is configured",
    );
}

#[tokio::test]
async fn an_hmac_signature_over_the_body_is_accepted_and_a_missing_or_wrong_one_is_refused_401() {
    let app = spawn_app_on(start_sim(60.0), &[("GRAFANA_HMAC_SECRET", HMAC_SECRET)]).await;
    let header = "X-Grafana-Alerting-Signature";
    let body = small_body("e0");
    let ok = send_with(
        &app,
        &[(header, hmac_hex(HMAC_SECRET, &body))],
        body.clone(),
    )
    .await;
    ok.expect(202, "right signature");
    let body = small_body("e1");
    assert_refused(&send_with(&app, &[], body.clone()).await, "no signature");
    assert_refused(
        &send_with(
            &app,
            &[(header, hmac_hex("another-secret", &body))],
            body.clone(),
        )
        .await,
        "signed with another secret",
    );
    assert_refused(
        &send_with(
            &app,
            &[(header, hmac_hex(HMAC_SECRET, &small_body("e2")))],
            body.clone(),
        )
        .await,
        "signature of another body",
    );
    assert_refused(
        &send_with(
            &app,
            &[(header, format!("sha256={}", hmac_hex(HMAC_SECRET, &body)))],
            body.clone(),
        )
        .await,
        "GitHub-style prefix",
    );
    assert_eq!(app.jobs().await.len(), 1);
}

#[tokio::test]
async fn an_hmac_signature_in_a_configured_header_over_timestamp_and_body_is_accepted_and_a_stale_timestamp_refused(
) {
    let app = spawn_app_on(
        start_sim(60.0),
        &[
            ("GRAFANA_HMAC_SECRET", HMAC_SECRET),
            ("GRAFANA_SIGNATURE_HEADER", "X-Alert-Signature"),
            ("GRAFANA_TIMESTAMP_HEADER", TS_HEADER),
            ("GRAFANA_MAX_SKEW_SECONDS", "300"),
        ],
    )
    .await;
    let signed = |ts: i64, body: &[u8]| {
        let mut data = format!("{ts}:").into_bytes();
        data.extend_from_slice(body);
        hmac_hex(HMAC_SECRET, &data)
    };
    let body = small_body("f0");
    let ts = now_unix();
    let ok = send_with(
        &app,
        &[
            ("X-Alert-Signature", signed(ts, &body)),
            (TS_HEADER, ts.to_string()),
        ],
        body.clone(),
    )
    .await;
    ok.expect(202, "fresh timestamp");

    let body = small_body("f1");
    let stale = now_unix() - 3600;
    assert_refused(
        &send_with(
            &app,
            &[
                ("X-Alert-Signature", signed(stale, &body)),
                (TS_HEADER, stale.to_string()),
            ],
            body.clone(),
        )
        .await,
        "a stale (replayed) timestamp",
    );
    let future = now_unix() + 3600;
    assert_refused(
        &send_with(
            &app,
            &[
                ("X-Alert-Signature", signed(future, &body)),
                (TS_HEADER, future.to_string()),
            ],
            body.clone(),
        )
        .await,
        "a timestamp from the future",
    );
    let ts = now_unix();
    assert_refused(
        &send_with(
            &app,
            &[("X-Alert-Signature", signed(ts, &body))],
            body.clone(),
        )
        .await,
        "no timestamp header",
    );
    assert_refused(
        &send_with(
            &app,
            &[
                ("X-Alert-Signature", hmac_hex(HMAC_SECRET, &body)),
                (TS_HEADER, ts.to_string()),
            ],
            body.clone(),
        )
        .await,
        "signature over the body alone",
    );
    assert_refused(
        &send_with(
            &app,
            &[
                ("X-Alert-Signature", signed(ts, &body)),
                (TS_HEADER, (ts - 1).to_string()),
            ],
            body.clone(),
        )
        .await,
        "timestamp changed after signing",
    );
    assert_refused(
        &send_with(
            &app,
            &[
                ("X-Grafana-Alerting-Signature", signed(ts, &body)),
                (TS_HEADER, ts.to_string()),
            ],
            body.clone(),
        )
        .await,
        "the default header when another is configured",
    );
    assert_eq!(app.jobs().await.len(), 1);
}

#[tokio::test]
async fn basic_auth_and_hmac_together_both_have_to_pass() {
    let app = basic_app(60.0, &[("GRAFANA_HMAC_SECRET", HMAC_SECRET)]).await;
    let header = "X-Grafana-Alerting-Signature";
    let body = small_body("g0");
    send_with(
        &app,
        &[
            ("authorization", basic(BASIC_USER_PASS)),
            (header, hmac_hex(HMAC_SECRET, &body)),
        ],
        body.clone(),
    )
    .await
    .expect(202, "both right");
    let body = small_body("g1");
    assert_refused(
        &send_with(
            &app,
            &[("authorization", basic(BASIC_USER_PASS))],
            body.clone(),
        )
        .await,
        "no signature",
    );
    assert_refused(
        &send_with(
            &app,
            &[(header, hmac_hex(HMAC_SECRET, &body))],
            body.clone(),
        )
        .await,
        "no basic auth",
    );
}

#[tokio::test]
async fn without_any_grafana_authentication_configured_every_notification_is_refused_401() {
    let app = spawn_app(&[]).await;
    let r = send_with(
        &app,
        &[("authorization", basic(BASIC_USER_PASS))],
        small_body("h0"),
    )
    .await;
    assert_refused(&r, "no authentication configured");
    assert!(app.jobs().await.is_empty());
}

#[tokio::test]
async fn malformed_notifications_are_refused_400_after_authentication() {
    let app = basic_app(60.0, &[]).await;
    for (what, body) in [
        ("not JSON", b"{".to_vec()),
        ("no version", br#"{"alerts": []}"#.to_vec()),
        (
            "unknown version",
            br#"{"version": "9", "alerts": []}"#.to_vec(),
        ),
        ("no alerts", br#"{"version": "1"}"#.to_vec()),
    ] {
        let r = send_with(&app, &[("authorization", basic(BASIC_USER_PASS))], body).await;
        assert_eq!(r.expect(400, what)["status"], "error", "{what}");
    }
    // Authentication comes first: a malformed body without credentials is 401.
    assert_refused(
        &send_with(&app, &[], b"{".to_vec()).await,
        "unauthenticated garbage",
    );
}

// ------------------------------------------------------------ alert storms

/// `count` alerts of the firing Alertmanager fixture, each a distinct
/// instance of its rule (the fingerprint is derived from the labels).
fn storm(count: usize) -> Value {
    let mut body = alertmanager_fixture("prometheus-msteams-prom_post_request.firing.json");
    let alert = body["alerts"][0].clone();
    let alerts: Vec<Value> = (0..count)
        .map(|i| {
            let mut a = alert.clone();
            a["labels"]["instance"] = json!(format!("node-{i}"));
            a
        })
        .collect();
    body["alerts"] = json!(alerts);
    body
}

#[tokio::test]
async fn a_notification_of_10000_alerts_is_refused_whole_with_413_and_creates_no_job() {
    let app = basic_app(60.0, &[]).await;
    let body = storm(10_000);
    let bytes = serde_json::to_vec(&body).expect("serialize");
    assert!(
        bytes.len() < 5 << 20,
        "under the body limit, so the alert cap decides: {} bytes",
        bytes.len()
    );
    let r = notify(&app, &body).await;
    let b = r.expect(413, "10,000 alerts");
    assert_eq!(
        (b["status"].as_str(), b["error"].as_str()),
        (Some("error"), Some("too_many_alerts")),
        "{}",
        r.text
    );
    let message = b["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("10000 alerts") && message.contains("(200)"),
        "the count and the cap: {message}"
    );
    assert!(app.jobs().await.is_empty(), "nothing created");
    assert_eq!(
        answered(&sim_stats(&app.sim).await, "create", "jobs", None),
        0,
        "no Job create was even tried"
    );
    // At the cap it is processed.
    let r = notify(&app, &storm(200)).await;
    r.expect(202, "200 alerts");
}

#[tokio::test]
async fn alerts_beyond_their_rules_limit_are_rate_limited_in_a_202_and_other_rules_are_not() {
    let app = basic_app(
        60.0,
        &[
            ("GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE", "3"),
            ("MAX_CONCURRENT_JOBS", "1"),
        ],
    )
    .await;
    let mut body = storm(5);
    // One alert of another rule in the same notification.
    let mut other = body["alerts"][0].clone();
    other["labels"]["alertname"] = json!("disk_full");
    body["alerts"].as_array_mut().expect("alerts").push(other);
    let r = notify(&app, &body).await;
    r.expect(202, "a storm of one rule is answered 202, not retried");
    assert!(r.retry_after.is_none(), "{}", r.text);
    let got: Vec<String> = decisions(&r).into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        got,
        [
            "queued",
            "queued",
            "queued",
            "rate_limited",
            "rate_limited",
            "queued"
        ],
        "{}",
        r.text
    );
    assert!(
        r.json["alerts"][3]["reason"]
            .as_str()
            .is_some_and(|s| s.contains("GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE")),
        "{}",
        r.text
    );
    assert_eq!(app.jobs().await.len(), 4);
    // Grafana's repeat: the queued ones are duplicates (no token spent), the
    // others still over the limit.
    let again = notify(&app, &body).await;
    again.expect(202, "the repeat");
    let got: Vec<String> = decisions(&again).into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        got,
        [
            "duplicate",
            "duplicate",
            "duplicate",
            "rate_limited",
            "rate_limited",
            "duplicate"
        ],
        "{}",
        again.text
    );
    assert_eq!(app.jobs().await.len(), 4);
}

#[tokio::test]
async fn resolved_alerts_for_jobs_the_store_does_not_know_cost_no_kubernetes_read() {
    let app = occupied_app().await;
    // One known Job, queued behind the occupier: its resolve still cancels.
    let job = fire(&app, "feedfeedfeed0009").await;
    wait_for("the alert's Job queued in the store", WAIT, || async {
        listed(&app, "?state=queued", &job).await.then_some(())
    })
    .await;
    let before = answered(&sim_stats(&app.sim).await, "get", "jobs", None);

    let mut body = storm(150);
    body["status"] = json!("resolved");
    for a in body["alerts"].as_array_mut().expect("alerts") {
        a["status"] = json!("resolved");
        a["endsAt"] = json!("2018-03-07T12:00:00Z");
    }
    let r = notify(&app, &body).await;
    r.expect(202, "150 resolved alerts that never fired");
    assert!(
        r.json["alerts"].as_array().is_some_and(|a| a.len() == 150
            && a.iter()
                .all(|a| a["decision"] == "resolved" && a["reason"] == "no job for this alert")),
        "{}",
        r.text
    );
    let stats = sim_stats(&app.sim).await;
    assert_eq!(
        answered(&stats, "get", "jobs", None),
        before,
        "no Kubernetes read for a Job nobody created"
    );

    let known = notify(&app, &resolved_body("feedfeedfeed0009")).await;
    known.expect(202, "the known alert resolved");
    assert_eq!(
        known.json["alerts"][0]["decision"], "cancelled",
        "{}",
        known.text
    );
    assert!(
        answered(&sim_stats(&app.sim).await, "get", "jobs", None) > before,
        "a queued Job's cancel is decided on the API server's copy"
    );
}

#[tokio::test]
async fn a_panel_link_outside_grafana_url_is_not_in_the_jobs_prompt_and_one_under_it_is() {
    let app = basic_app(60.0, &[("GRAFANA_URL", "https://grafana.example.com/")]).await;
    let mut alert = critical("fade0fade0fade01", "2025-06-01T12:00:00Z");
    alert["panelURL"] = json!("http://169.254.169.254/latest/meta-data/iam/security-credentials/");
    let r = notify(&app, &grafana_body("firing", vec![alert])).await;
    r.expect(202, "firing");
    let job = job_for(&r, "fade0fade0fade01");
    let stored = app.job(&job).await.expect("the Job");
    let agent = stored
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().find(|c| c.name == "agent"))
        .expect("the agent container");
    let prompt = agent
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "PROMPT")
        .and_then(|e| e.value)
        .expect("PROMPT");
    assert!(!prompt.contains("169.254.169.254"), "{prompt}");
    assert!(
        prompt.contains("Dashboard: https://grafana.example.com/d/checkout?orgId=1"),
        "{prompt}"
    );
}

#[actix_rt::test]
async fn wrong_header_credentials_are_refused_before_the_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = basic_app(0.3, &[]).await;
    let addr = app.address.trim_start_matches("http://").to_string();
    // A head promising 100 KB and no body byte: with Basic auth (no HMAC)
    // the headers decide, so the answer comes at once — not after the
    // body's grace (408) and without buffering anything.
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /webhook/grafana HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: {}\r\ncontent-length: 100000\r\n\r\n",
        basic("grafana:wrong-password")
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let mut got = Vec::new();
    bounded("the answer", WAIT, async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    app.stop().await.expect("clean stop");
}
