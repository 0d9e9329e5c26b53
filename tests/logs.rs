//! What `orchestrator serve` writes to its log, read as an operator reads
//! it (the real binary, text format): an invalid `RUST_LOG` is reported
//! with the filter used instead; fields show values, never `Some(…)`; each
//! refused request is logged once; an unreachable API server is named.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bounded, free_port, wait_for};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const LIMIT: Duration = Duration::from_secs(60);
const CLI_TOKEN: &str = "cli-token-for-the-log-test";

/// A running `orchestrator serve` and everything it has logged so far.
struct Served {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Served {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("SERVER_WORKERS", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("orchestrator serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        Served { child, port, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        let log = self.log();
        log.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    async fn wait_log(&self, needle: &str) -> String {
        wait_for(&format!("{needle:?} in the log"), LIMIT, || async {
            self.lines_with(needle).into_iter().next()
        })
        .await
    }

    async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/ready", self.port);
        wait_for("ready", LIMIT, || async {
            reqwest::get(&url)
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
    }

    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("running").to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(killed.expect("kill").success());
        let status = bounded("serve to exit", LIMIT, self.child.wait()).await;
        assert_eq!(status.expect("wait").code(), Some(0), "{}", self.log());
        self.log()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("orchestrator serve's log:\n{}", self.log());
        }
    }
}

#[tokio::test]
async fn the_log_reports_a_bad_rust_log_shows_plain_values_and_each_refusal_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = format!("cli={CLI_TOKEN}");
    let served = Served::start(
        dir.path(),
        &["--embedded-cluster", "--sim-run-seconds", "30"],
        &[("RUST_LOG", "nonsense==="), ("API_TOKENS", &tokens)],
    );
    served.wait_ready().await;
    let base = format!("http://127.0.0.1:{}", served.port);

    let line = served.wait_log("RUST_LOG is invalid").await;
    assert!(
        line.contains("nonsense===")
            && line.contains(&format!(
                "using={:?}",
                orchestrator::telemetry::DEFAULT_FILTER
            )),
        "{line}"
    );
    let line = served.wait_log("orchestrator serving").await;
    assert!(
        line.contains(&format!("address=127.0.0.1:{}", served.port)),
        "{line}"
    );

    // A refused API request: one line.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/api/v1/jobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // A refused webhook: one line, the route's own.
    let r = http
        .post(format!("{base}/webhook/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "a-delivery-with-a-bad-signature")
        .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A Job that is admitted: its state change is logged.
    let r = http
        .post(format!("{base}/api/v1/tasks"))
        .bearer_auth(CLI_TOKEN)
        .json(&serde_json::json!({"repository": "octo/repo", "title": "Flaky test", "prompt": "Fix the flaky test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    let line = served.wait_log("state=\"running\"").await;
    assert!(line.contains("previous=\"queued\""), "{line}");

    // Every decision label value the metrics show is one their HELP lists.
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let help = metrics
        .lines()
        .find(|l| l.starts_with("# HELP orchestrator_webhook_decisions"))
        .unwrap_or_else(|| panic!("a HELP line: {metrics}"));
    let values: Vec<&str> = metrics
        .split("decision=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(values.contains(&"unauthorized"), "{metrics}");
    for v in values
        .iter()
        .chain(&["ping", "queued", "duplicate", "ignored", "processed"])
    {
        assert!(help.contains(v), "{v} is not in {help}");
    }

    let log = served.stop().await;
    let refused = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(refused("request refused"), 1, "{log}");
    assert_eq!(refused("github delivery refused"), 1, "{log}");
    assert_eq!(refused("Error encountered while processing"), 0, "{log}");
    assert!(!log.contains("Some("), "{log}");
}

#[tokio::test]
async fn header_values_from_unauthenticated_callers_cannot_flood_or_forge_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        dir.path(),
        &["--embedded-cluster", "--sim-run-seconds", "30"],
        &[],
    );
    served.wait_ready().await;
    let base = format!("http://127.0.0.1:{}", served.port);
    let http = reqwest::Client::new();
    let huge = "e".repeat(60_000);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = http
            .post(format!("{base}/webhook/github"))
            .header("content-type", "application/json")
            .header("x-github-event", &huge)
            .header("x-github-delivery", &huge)
            .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
            .header("user-agent", "probe request_id=FORGED \"quoted\"")
            .header("x-forwarded-for", "203.0.113.9")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        // The request id: a UUID, the same in the header and the answer.
        let header = r
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .expect("an X-Request-Id header");
        let body: serde_json::Value = r.json().await.expect("a JSON answer");
        assert_eq!(body["request_id"], header.as_str(), "{body}");
        assert!(uuid::Uuid::parse_str(&header).is_ok(), "{header}");
        ids.push(header);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "one id per request: {ids:?}");
    let line = served.wait_log("github delivery refused").await;
    assert!(line.contains(&format!("request_id={}", ids[0])), "{line}");
    // The caller's words are quoted and escaped; its X-Forwarded-For is
    // not believed (no TRUSTED_PROXIES).
    assert!(
        line.contains(r#"http.user_agent="probe request_id=FORGED \"quoted\"""#),
        "{line}"
    );
    assert!(line.contains("http.client_ip=127.0.0.1"), "{line}");
    let log = served.stop().await;
    for line in log.lines() {
        assert!(line.len() < 4096, "a {}-byte log line", line.len());
        assert!(!line.contains(&huge[..1000]), "a header logged whole");
    }
}

#[tokio::test]
async fn an_unreachable_api_server_is_named_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = free_port();
    let server = format!("http://127.0.0.1:{closed}");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    });
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig.to_string()).expect("write kubeconfig");
    let path = path.to_string_lossy().into_owned();
    let served = Served::start(
        dir.path(),
        &[],
        &[
            ("RUST_LOG", "warn"),
            ("KUBECONFIG", &path),
            ("GITHUB_WEBHOOK_SECRET", "a-secret-for-the-log-test"),
        ],
    );
    let line = served.wait_log("job watch error").await;
    assert!(line.contains(&format!("api_server={server}")), "{line}");
    served.stop().await;
}
