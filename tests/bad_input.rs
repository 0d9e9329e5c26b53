//! The bad-input suite: requests an outsider or a careless client sends —
//! foreign Job names, names that are not names, odd methods and headers,
//! credentials in query strings — each answered at once with the right 4xx
//! and a JSON error (never a 5xx), while the service keeps serving.
//!
//! Every test here installs the capturing log subscriber first, so the log
//! can be searched for things that must never be written (tokens).

mod api_support;
mod common;

use std::sync::{Mutex, Once};

use api_support::*;
use common::*;
use k8s_openapi::api::batch::v1::Job;
use kube::api::PostParams;
use serde_json::json;

/// Everything the service logged in this test binary.
fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().expect("log lock")).into_owned()
}

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

#[derive(Clone)]
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a global subscriber that records every span and event (with
/// span fields) into [`LOG`]. Must run before `spawn_app`.
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let sub = tracing_subscriber::fmt()
            .with_env_filter("info,kube=warn,hyper=warn")
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
            .with_writer(|| Capture)
            .finish();
        tracing::subscriber::set_global_default(sub).expect("the first subscriber");
    });
}

async fn app() -> TestApp {
    capture_logs();
    spawn_app(&[("API_TOKENS", API_TOKENS)]).await
}

fn assert_error(r: &Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    r.expect_json(what);
    assert_eq!(r.json["status"], "error", "{what}: {}", r.text);
    assert!(r.json["error"].is_string(), "{what}: {}", r.text);
}

/// A Job someone else created with kubectl: no managed-by label.
fn foreign_job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"suspend": true, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]
        }}}
    }))
    .expect("a Job")
}

#[actix_rt::test]
async fn jobs_we_do_not_manage_are_invisible_to_every_route() {
    let app = app().await;
    let created = app
        .jobs_api()
        .create(&PostParams::default(), &foreign_job("foreign"))
        .await
        .expect("kubectl-style create");
    for (method, path) in [
        ("GET", "/api/v1/jobs/foreign"),
        ("DELETE", "/api/v1/jobs/foreign"),
        ("GET", "/api/v1/jobs/foreign/logs"),
    ] {
        let r = call(&app, method, path).token(CLI_TOKEN).send().await;
        assert_error(&r, 404, &format!("{method} {path}"));
    }
    let after = app
        .job("foreign")
        .await
        .expect("the foreign Job is still there");
    assert!(
        after.metadata.annotations.unwrap_or_default().is_empty(),
        "the foreign Job was annotated"
    );
    assert_eq!(after.metadata.labels, created.metadata.labels);
    assert_eq!(
        after.spec.and_then(|s| s.suspend),
        Some(true),
        "the foreign Job's spec changed"
    );
    let list = call(&app, "GET", "/api/v1/jobs")
        .token(CLI_TOKEN)
        .send()
        .await;
    let items = list.expect(200, "list")["items"].as_array().cloned();
    assert!(
        items
            .unwrap_or_default()
            .iter()
            .all(|j| j["name"] != "foreign"),
        "the listing shows a foreign Job"
    );
    app.stop().await.expect("clean stop");
}

/// Requests the service made of Kubernetes for Jobs and their pods (every
/// verb but the Job watch's own list and watch), from the simulator.
fn job_and_pod_calls(stats: &serde_json::Value) -> u64 {
    ["get", "delete", "create", "patch", "update"]
        .iter()
        .flat_map(|verb| {
            ["jobs", "pods", "pods/log"]
                .iter()
                .map(move |res| answered(stats, verb, res, None) + in_flight(stats, verb, res))
        })
        .sum::<u64>()
        + answered(stats, "list", "pods", None)
}

#[actix_rt::test]
async fn names_that_cannot_be_job_names_are_refused_without_calling_kubernetes() {
    let app = app().await;
    // A managed Job, so that the names below are refused for what they
    // are, not because no Job exists.
    let queued = call(&app, "POST", "/api/v1/tasks")
        .token(CLI_TOKEN)
        .json(&task("a Job to look up", "acme/widgets"))
        .send()
        .await;
    let job = queued.expect(202, "a task")["job"]
        .as_str()
        .expect("a Job name")
        .to_string();
    app.wait_complete(&job, WAIT).await;
    // The counter sees a lookup that does reach Kubernetes: a GET of a
    // known Job fetches its document.
    let before = job_and_pod_calls(&sim_stats(&app.sim).await);
    let r = call(&app, "GET", &format!("/api/v1/jobs/{job}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(r.status, 200, "GET {job}: {}", r.text);
    let after = job_and_pod_calls(&sim_stats(&app.sim).await);
    assert!(after > before, "a GET of a known Job asks Kubernetes");

    let upper = job.to_uppercase();
    let before = sim_stats(&app.sim).await;
    for name in [
        "a%00b",
        "a%20b",
        "a%0Ab",
        "%E2%98%83",
        "a%ffb",
        "a%3Fb",
        "A",
        "-a",
        "a_b",
        "a%2Fb",
        // The known Job's name in capitals: not a name, not a lookup of it.
        upper.as_str(),
    ] {
        for (method, path) in [
            ("GET", format!("/api/v1/jobs/{name}")),
            ("DELETE", format!("/api/v1/jobs/{name}")),
            ("GET", format!("/api/v1/jobs/{name}/logs")),
        ] {
            let r = call(&app, method, &path).token(CLI_TOKEN).send().await;
            assert_error(&r, 400, &format!("{method} {path}"));
        }
    }
    let after = sim_stats(&app.sim).await;
    assert_eq!(
        job_and_pod_calls(&after),
        job_and_pod_calls(&before),
        "a refused name reached Kubernetes: before {before}, after {after}"
    );
    // `a%3Fb` is the name "a?b", never a lookup of Job "a".
    let r = call(&app, "GET", "/api/v1/jobs/a%3Fb")
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_error(&r, 400, "a?b");
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn head_probes_and_case_insensitive_bearer_scheme() {
    let app = app().await;
    for path in ["/health", "/ready"] {
        let r = call(&app, "HEAD", path).send().await;
        assert_eq!(r.status, 200, "HEAD {path}");
        assert!(r.text.is_empty(), "HEAD {path} has no body");
    }
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = call(&app, "GET", "/api/v1/jobs")
            .header("authorization", &format!("{scheme} {CLI_TOKEN}"))
            .send()
            .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.text);
    }
    for bad in [
        format!("Basic {CLI_TOKEN}"),
        format!("Bearer{CLI_TOKEN}"),
        "Bearer ".to_string(),
        CLI_TOKEN.to_string(),
    ] {
        let r = call(&app, "GET", "/api/v1/jobs")
            .header("authorization", &bad)
            .send()
            .await;
        assert_error(&r, 401, &format!("Authorization: {bad:?}"));
    }
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn query_strings_never_reach_the_log() {
    let app = app().await;
    let marker = "querysecret0123456789";
    let r = call(&app, "POST", &format!("/api/v1/tasks?token={marker}"))
        .token(CLI_TOKEN)
        .json(&task("logged path only", "acme/widgets"))
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = call(&app, "POST", &format!("/webhook/grafana?password={marker}"))
        .json(&json!({}))
        .send()
        .await;
    // No Grafana credentials are configured in this test: unauthorized.
    assert_error(&r, 401, "POST /webhook/grafana");
    let log = log_text();
    assert!(
        log.contains("/api/v1/tasks"),
        "the request was logged with its path"
    );
    assert!(
        !log.contains(marker),
        "a query-string credential was logged"
    );
    app.stop().await.expect("clean stop");
}

/// method, path, content type, body, expected status.
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
);

/// Errors are JSON with our code and message; the answer is not a 5xx.
#[actix_rt::test]
async fn wrong_methods_content_types_and_bodies_are_client_errors() {
    let app = app().await;
    let cases: Vec<Case> = vec![
        (
            "PUT",
            "/api/v1/tasks",
            Some("application/json"),
            b"{}".to_vec(),
            405,
        ),
        (
            "POST",
            "/api/v1/tasks",
            Some("text/plain"),
            b"{}".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/tasks",
            Some("application/json"),
            b"{\"title\":".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/v1/tasks",
            Some("application/json"),
            vec![0xff, 0xfe, b'{'],
            400,
        ),
        (
            "POST",
            "/api/v1/tasks",
            Some("application/json"),
            b"[]".to_vec(),
            422,
        ),
        (
            "POST",
            "/api/v1/tasks",
            Some("application/json"),
            nested(10_000),
            400,
        ),
        (
            "POST",
            "/api/v1/pm/tasks",
            Some("application/json"),
            b"{}".to_vec(),
            403,
        ),
        ("GET", "/api/v1/jobs?limit=abc", None, Vec::new(), 400),
        ("GET", "/api/v1/jobs?state=bogus", None, Vec::new(), 400),
        ("GET", "/nope", None, Vec::new(), 404),
    ];
    for (method, path, ct, body, status) in cases {
        let mut c = call(&app, method, path).token(CLI_TOKEN).body(body);
        if let Some(ct) = ct {
            c = c.header("content-type", ct);
        }
        let r = c.send().await;
        assert_error(&r, status, &format!("{method} {path}"));
    }
    let h = app.get("/health").await;
    assert_eq!(h.status, 200, "still serving");
    app.stop().await.expect("clean stop");
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(depth * 2);
    v.extend(std::iter::repeat_n(b'[', depth));
    v.extend(std::iter::repeat_n(b']', depth));
    v
}

#[actix_rt::test]
async fn pm_file_paths_the_api_server_or_kubelet_would_refuse_are_422() {
    let app = app().await;
    let doc = |files: serde_json::Value| json!({"id": "paths-1", "title": "t", "description": "d", "markdown_files": files});
    for files in [
        json!([{"filename": "..hidden", "content": "x"}]),
        json!([{"filename": "docs/..data", "content": "x"}]),
        json!([{"filename": "a", "content": "x"}, {"filename": "a/b", "content": "y"}]),
        json!([{"filename": "a/b", "content": "x"}, {"filename": "a", "content": "y"}]),
    ] {
        let r = call(&app, "POST", "/api/v1/pm/tasks")
            .token(PM_TOKEN)
            .json(&doc(files.clone()))
            .send()
            .await;
        assert_error(&r, 422, &format!("{files}"));
        assert!(
            r.bad_fields().iter().any(|f| f.ends_with(".filename")),
            "{files}: {}",
            r.text
        );
    }
    assert!(app.job_names().await.is_empty());
    // The simulator refuses what a real API server refuses.
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(app.kube.clone(), "default");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "bad-keys"}, "data": {"..x": "y"}
    }))
    .expect("a ConfigMap");
    let e = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect_err("a key starting with '..' is invalid");
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 422), "{e:?}");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "bad-path"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "f", "configMap": {"name": "x", "items": [{"key": "f0", "path": "..hidden"}]}}]
        }}}
    }))
    .expect("a Job");
    let e = app
        .jobs_api()
        .create(&PostParams::default(), &job)
        .await
        .expect_err("an item path starting with '..' is invalid");
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 422), "{e:?}");
    app.stop().await.expect("clean stop");
}
