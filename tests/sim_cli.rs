//! `orchestrator sim` as a process: prints its address, writes a kubeconfig,
//! enforces `--token`, says it is simulated, and exits 0 on SIGTERM/SIGINT.

mod common;

use std::process::{Command, Stdio};

use common::sim_banner;
use std::time::{Duration, Instant};

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the simulator did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn run_until_signal(signal: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("sim.kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "sim-test-token",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start orchestrator sim");
    let (url, _lines) = sim_banner(child.stdout.take().expect("stdout"));
    let kc = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written");
    assert!(kc.contains(&url) && kc.contains("sim-test-token"));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let anonymous = http
        .get(format!("{url}/api/v1/namespaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
    let ok = http
        .get(format!("{url}/api/v1/namespaces/default"))
        .bearer_auth("sim-test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // `healthcheck --kubeconfig` reaches it with the kubeconfig's token.
    let check = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args([
            "healthcheck",
            "--wait",
            "--timeout-seconds",
            "20",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .output()
        .expect("healthcheck runs");
    assert!(check.status.success(), "{check:?}");

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status after {signal}");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        err.contains("SIMULATED Kubernetes API server"),
        "start-up says it is simulated: {err}"
    );
    assert!(!err.contains("sim-test-token"), "the token is never logged");
    assert!(
        !kubeconfig.exists(),
        "the kubeconfig it wrote goes when it stops ({signal}): {err}"
    );
}

/// `healthcheck --wait` is bounded: with nothing to wait for it gives up
/// after `--timeout-seconds`, exit 1, saying what it waited for.
#[test]
fn healthcheck_wait_gives_up_after_its_timeout_naming_what_it_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("sim.kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let url = format!("http://127.0.0.1:{port}/ready");
    for args in [
        vec!["--kubeconfig".to_string(), missing.display().to_string()],
        vec!["--url".to_string(), url.clone()],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args(["healthcheck", "--wait", "--timeout-seconds", "0.5"])
            .args(&args)
            .output()
            .expect("healthcheck runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("healthcheck: not ready after 500ms: ") && err.contains(&args[1]),
            "{err}"
        );
    }
}

#[tokio::test]
async fn the_sim_command_serves_with_a_token_and_exits_0_on_sigterm() {
    run_until_signal("-TERM").await;
}

#[tokio::test]
async fn the_sim_command_exits_0_on_sigint() {
    run_until_signal("-INT").await;
}
