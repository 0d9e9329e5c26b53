//! TLS to the API server, as with a real cluster, with processes only:
//! `orchestrator sim --tls --token` writes a kubeconfig with
//! `certificate-authority-data` and a token; kubectl and `orchestrator serve`
//! use it (a GitHub webhook becomes a Job seen by kubectl); a kubeconfig with
//! another cluster's CA makes `serve` exit 1 with one clear line naming the
//! kubeconfig. `orchestrator healthcheck` is checked against the same server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../crates/kube-api-sim/tests/kubectl_support/mod.rs"]
mod kubectl_support;
use kubectl_support::kubectl_in;

const TOKEN: &str = "tls-test-token-0123456789";
const SECRET: &str = "tls-test-webhook-secret";
const LIMIT: Duration = Duration::from_secs(30);

/// Kills the child when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sim(kubeconfig: &Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["sim", "--tls", "--listen", "127.0.0.1:0", "--token", TOKEN])
        .arg("--kubeconfig-out")
        .arg(kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start orchestrator sim --tls");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").expect("utf-8");
    assert!(first.contains("https://127.0.0.1:"), "{first}");
    let second = lines.next().expect("a second line").expect("utf-8");
    assert!(second.contains("kubeconfig written"), "{second}");
    Proc(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn serve(kubeconfig: &Path, port: u16, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .arg("serve")
        .env("KUBECONFIG", kubeconfig)
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("SHUTDOWN_TIMEOUT_SECONDS", "5")
        .env("JOB_IMAGE", "registry.example.com/agent:test")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start orchestrator serve")
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_and_kubectl_work_over_tls_with_a_token_from_the_sims_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("tls.kubeconfig");
    let _sim = start_sim(&kc);
    let text = std::fs::read_to_string(&kc).expect("kubeconfig");
    let v: Value = serde_json::from_str(&text).expect("JSON kubeconfig");
    assert!(v["clusters"][0]["cluster"]["certificate-authority-data"].is_string());
    assert_eq!(v["users"][0]["user"]["token"], TOKEN);

    let (ok, out, err) = kubectl_in(dir.path(), &kc, &["auth", "whoami", "-o", "json"]);
    assert!(ok, "kubectl auth whoami over TLS: {err}");
    assert!(out.contains("orchestrator-sim:admin"), "{out}");

    let port = free_port();
    let log = dir.path().join("serve.log");
    let mut server = Proc(serve(&kc, port, &log));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(s) = server.0.try_wait().expect("wait") {
            panic!(
                "serve exited ({s}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if let Ok(r) = http.get(format!("{base}/ready")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "serve was not ready over TLS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github/issues/labeled.json"
    );
    let mut payload: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).expect("fixture")).expect("JSON");
    payload["label"]["name"] = "agent".into();
    let body = serde_json::to_vec(&payload).expect("body");
    let r = http
        .post(format!("{base}/webhook/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
        .header(
            "x-hub-signature-256",
            orchestrator::cli::send::signature(SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .expect("webhook answered");
    let status = r.status().as_u16();
    let answer: Value = r.json().await.expect("JSON answer");
    assert_eq!(status, 202, "{answer}");
    let job = answer["job"].as_str().expect("a Job name").to_string();
    let (ok, out, err) = kubectl_in(dir.path(), &kc, &["get", "job", &job, "-o", "name"]);
    assert!(ok, "kubectl get job over TLS: {err}");
    assert_eq!(out.trim(), format!("job.batch/{job}"));

    // The image's HEALTHCHECK: exit 0 while serving, 1 with one line when down.
    let health = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args(["healthcheck", "--url", url])
            .output()
            .expect("healthcheck runs")
    };
    let up = health(&format!("{base}/health"));
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let _ = server.0.kill();
    let _ = server.0.wait();
    let down = health(&format!("{base}/health"));
    let err = String::from_utf8_lossy(&down.stderr);
    assert_eq!(down.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("healthcheck: ") && err.contains("cannot connect"),
        "{err}"
    );
}

#[test]
fn a_kubeconfig_with_another_clusters_ca_fails_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (
        dir.path().join("a.kubeconfig"),
        dir.path().join("b.kubeconfig"),
    );
    let _sim_a = start_sim(&a);
    let _sim_b = start_sim(&b);
    let mut kc: Value = serde_json::from_str(&std::fs::read_to_string(&a).expect("a")).expect("a");
    let other: Value = serde_json::from_str(&std::fs::read_to_string(&b).expect("b")).expect("b");
    kc["clusters"][0]["cluster"]["certificate-authority-data"] =
        other["clusters"][0]["cluster"]["certificate-authority-data"].clone();
    let wrong = dir.path().join("wrong-ca.kubeconfig");
    std::fs::write(&wrong, serde_json::to_vec(&kc).expect("JSON")).expect("write");

    let log = dir.path().join("serve.log");
    let mut child = serve(&wrong, free_port(), &log);
    let status = wait_exit(&mut child);
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no Error line: {log}"));
    assert!(
        line.contains(&format!("kubeconfig {}", wrong.display()))
            && line.contains("does not trust")
            && line.contains("certificate-authority-data"),
        "{line}"
    );
}
