//! Several `orchestrator serve --embedded-cluster` processes started from
//! one directory (the real binary, as a user runs it): a second start on a
//! port in use fails without touching the first server's files; a server on
//! another port reuses the development webhook secret and API token and
//! writes a kubeconfig of its own, which it removes when it stops; the first
//! server keeps accepting what `send-webhook` signs and what the client
//! commands present from the directory, and its kubeconfig keeps working
//! throughout. Without `SERVER_HOST` the server listens on 127.0.0.1 only
//! and says so; neither the secret nor the token is ever logged.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{bounded, free_port, wait_for};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

const SECRET_FILE: &str = "orchestrator-dev-webhook-secret";
const TOKEN_FILE: &str = "orchestrator-dev-api-token";
const LIMIT: Duration = Duration::from_secs(60);

fn binary(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Starts `serve --embedded-cluster` in `dir` on `port`.
fn serve(dir: &Path, port: u16) -> Child {
    binary(dir)
        .args(["serve", "--embedded-cluster", "--sim-run-seconds", "30"])
        .env("RUST_LOG", "warn,orchestrator::cli::serve=info")
        .env("SERVER_PORT", port.to_string())
        .env("SERVER_WORKERS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orchestrator serve starts")
}

async fn wait_ready(port: u16) {
    let http = reqwest::Client::new();
    wait_for(&format!("the server on {port} to be ready"), LIMIT, || {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://127.0.0.1:{port}/ready"))
                .send()
                .await;
            r.ok().filter(|r| r.status().is_success()).map(|_| ())
        }
    })
    .await
}

/// Stops `child` with SIGTERM; returns its exit code and stderr.
async fn stop(child: Child) -> (Option<i32>, String) {
    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await;
    assert!(killed.expect("kill runs").success());
    finish(child).await
}

async fn finish(mut child: Child) -> (Option<i32>, String) {
    let status = bounded("the process to exit", LIMIT, child.wait())
        .await
        .expect("wait");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err).await;
    }
    (status.code(), err)
}

/// `send-webhook` of an issue labeled `agent` to the server on `port`.
async fn send_webhook(dir: &Path, port: u16) -> (Option<i32>, String) {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github/issues/labeled.json");
    let out = binary(dir)
        .args([
            "send-webhook",
            "--event",
            "issues",
            "--set",
            "/label/name=agent",
        ])
        .arg("--file")
        .arg(fixture)
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .output();
    let out = bounded("send-webhook", LIMIT, out).await.expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn kubeconfig(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("orchestrator-sim-{port}.kubeconfig"))
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `jobs list` from `dir` (no `--token`: the development token file) to the
/// server on `port`.
async fn jobs_list(dir: &Path, port: u16) -> (Option<i32>, String) {
    let out = binary(dir)
        .args([
            "jobs",
            "list",
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .output();
    let out = bounded("jobs list", LIMIT, out).await.expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// This machine's address on its default route, if it has one that is not
/// loopback (found without sending anything).
fn outside_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// The simulator a kubeconfig points at answers a Job list.
async fn kubeconfig_works(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).expect("kubeconfig readable");
    let kc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("kubeconfig parses");
    let server = kc["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("a server");
    reqwest::get(format!("{server}/apis/batch/v1/namespaces/default/jobs"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test]
async fn a_second_server_in_the_same_directory_never_breaks_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let (port_a, port_c) = (free_port(), free_port());

    let first = serve(dir, port_a);
    wait_ready(port_a).await;
    let secret = std::fs::read_to_string(dir.join(SECRET_FILE)).expect("secret written");
    let token = std::fs::read_to_string(dir.join(TOKEN_FILE)).expect("token written");
    assert!(token.trim().len() >= 16, "a token the server accepts");
    let kubeconfig_a = std::fs::read_to_string(kubeconfig(dir, port_a)).expect("kubeconfig");
    let before = files(dir);
    assert_eq!(
        before,
        [
            TOKEN_FILE.to_string(),
            SECRET_FILE.to_string(),
            format!("orchestrator-sim-{port_a}.kubeconfig")
        ]
    );
    // On this machine only: not on its outside address.
    if let Some(ip) = outside_address() {
        let outside = std::net::SocketAddr::new(ip, port_a);
        assert!(
            std::net::TcpStream::connect_timeout(&outside, Duration::from_secs(2)).is_err(),
            "the development server answers on {outside}"
        );
    }
    // The operator commands use the token from the directory; elsewhere
    // they say where a token comes from.
    let (code, out) = jobs_list(dir, port_a).await;
    assert_eq!(code, Some(0), "{out}");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let (code, out) = jobs_list(elsewhere.path(), port_a).await;
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("no API token") && out.contains(TOKEN_FILE),
        "{out}"
    );

    // A second start on the same port fails before writing anything.
    let (code, err) = finish(serve(dir, port_a)).await;
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
    assert_eq!(files(dir), before);
    assert_eq!(
        std::fs::read_to_string(dir.join(SECRET_FILE)).unwrap(),
        secret
    );
    assert_eq!(
        std::fs::read_to_string(kubeconfig(dir, port_a)).unwrap(),
        kubeconfig_a
    );
    let (code, out) = send_webhook(dir, port_a).await;
    assert_eq!(code, Some(0), "the first server still verifies: {out}");
    assert!(out.starts_with("202 "), "{out}");

    // One on another port shares the secret and the token and has a
    // kubeconfig of its own.
    let third = serve(dir, port_c);
    wait_ready(port_c).await;
    assert_eq!(
        std::fs::read_to_string(dir.join(SECRET_FILE)).unwrap(),
        secret
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(TOKEN_FILE)).unwrap(),
        token
    );
    let (code, out) = jobs_list(dir, port_c).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(kubeconfig_works(&kubeconfig(dir, port_c)).await);
    let (code, out) = send_webhook(dir, port_c).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, err) = stop(third).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(files(dir), before, "its kubeconfig went with it");

    // The first server is untouched by all of this.
    assert!(kubeconfig_works(&kubeconfig(dir, port_a)).await);
    let (code, out) = send_webhook(dir, port_a).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, err) = stop(first).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "listening on http://127.0.0.1:{port_a} (this machine only; set SERVER_HOST=0.0.0.0"
        )),
        "{err}"
    );
    assert!(
        !err.contains(secret.trim()) && !err.contains(token.trim()),
        "{err}"
    );
    assert_eq!(
        files(dir),
        [TOKEN_FILE, SECRET_FILE],
        "the secret and the token stay for the next start"
    );
}
