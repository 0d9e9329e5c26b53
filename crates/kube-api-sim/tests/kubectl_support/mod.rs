//! kubectl as a subprocess against an in-process simulator: every run with
//! `--kubeconfig`, a fresh `--cache-dir` and a `--request-timeout`, with
//! validation on (no `--validate=false`), and bounded in time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kube_api_sim::{SimConfig, SimServer};

#[path = "../tool_support/mod.rs"]
mod tool_support;
use serde_json::Value;

/// Upper bound for one kubectl run.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

pub fn kubectl_binary() -> PathBuf {
    tool_support::tool("kubectl")
}

/// Runs `kubectl` with `kubeconfig`, its cache and its output files in `dir`
/// (named with `tag`, so runs do not share them), and a `--request-timeout`
/// unless `args` has one; kills it after `limit`.
pub fn run_kubectl(
    kubectl: &Path,
    kubeconfig: &Path,
    dir: &Path,
    tag: &str,
    args: &[&str],
    limit: Duration,
) -> Run {
    let path = |what: &str| dir.join(format!("{what}-{tag}"));
    let (out, err) = (path("stdout"), path("stderr"));
    let file = |p: &PathBuf| std::fs::File::create(p).expect("output file");
    let mut cmd = Command::new(kubectl);
    cmd.arg("--kubeconfig").arg(kubeconfig);
    cmd.arg("--cache-dir").arg(path("cache"));
    if !args.iter().any(|a| a.starts_with("--request-timeout")) {
        cmd.arg("--request-timeout=10s");
    }
    cmd.args(args).stdin(Stdio::null());
    let mut child = cmd
        .stdout(file(&out))
        .stderr(file(&err))
        .spawn()
        .expect("kubectl starts");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("kubectl wait") {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    Run {
        success: status.is_some_and(|s| s.success()),
        timed_out: status.is_none(),
        stdout: read(&out),
        stderr: read(&err),
    }
}

/// One bounded kubectl run with `kubeconfig` (files in `dir`); fails the
/// test if it times out. Returns (success, stdout, stderr).
pub fn kubectl_in(dir: &Path, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let tag = format!("once-{}", RUNS.fetch_add(1, Ordering::Relaxed));
    let r = run_kubectl(&kubectl_binary(), kubeconfig, dir, &tag, args, RUN_LIMIT);
    assert!(!r.timed_out, "kubectl {args:?} timed out");
    (r.success, r.stdout, r.stderr)
}

pub struct Run {
    pub success: bool,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

/// A running simulator plus what kubectl needs to talk to it.
pub struct Cluster {
    pub server: SimServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    kubectl: PathBuf,
    runs: AtomicUsize,
}

impl Cluster {
    pub fn start() -> Cluster {
        Self::start_with(SimConfig {
            default_run_seconds: 0.3,
            ..SimConfig::default()
        })
    }

    /// A cluster with a configuration of the test's own.
    pub fn start_with(config: SimConfig) -> Cluster {
        let kubectl = kubectl_binary();
        let server = SimServer::start_local(config).expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig.json");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        Cluster {
            server,
            dir,
            kubeconfig,
            kubectl,
            runs: AtomicUsize::new(0),
        }
    }

    /// Writes `text` to a file in the test's temp dir.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.to_string_lossy().into_owned()
    }

    /// Runs kubectl (output to files, so nothing blocks), killing it after `limit`.
    pub fn run(&self, args: &[&str], limit: Duration) -> Run {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        run_kubectl(
            &self.kubectl,
            &self.kubeconfig,
            self.dir.path(),
            &n.to_string(),
            args,
            limit,
        )
    }

    /// Runs kubectl and insists it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args, RUN_LIMIT);
        assert!(
            r.success,
            "kubectl {args:?} failed (timed out: {}):\nstdout:\n{}\nstderr:\n{}",
            r.timed_out, r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs kubectl and insists it fails; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args, RUN_LIMIT);
        assert!(!r.timed_out, "kubectl {args:?} timed out");
        assert!(
            !r.success,
            "kubectl {args:?} should have failed:\n{}",
            r.stdout
        );
        r.stderr
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl {args:?} -o json: {e}:\n{out}"))
    }

    pub fn create_job(&self, name: &str, run_seconds: &str, suspend: bool, label: &str) -> String {
        let f = self.file(
            &format!("{name}.yaml"),
            &job_yaml(name, run_seconds, suspend, label),
        );
        self.ok(&["create", "-f", &f])
    }

    pub fn wait_for(&self, condition: &str, jobs: &[&str]) {
        let cond = format!("--for=condition={condition}");
        let mut args = vec!["wait", &cond, "--timeout=20s"];
        let names: Vec<String> = jobs.iter().map(|j| format!("job/{j}")).collect();
        args.extend(names.iter().map(String::as_str));
        let out = self.ok(&args);
        assert_eq!(out.matches("condition met").count(), jobs.len(), "{out}");
    }
}

/// A Job manifest the simulator runs for `run_seconds`.
pub fn job_yaml(name: &str, run_seconds: &str, suspend: bool, label: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  labels:
    app: {label}
  annotations:
    sim.orchestrator.dev/run-seconds: "{run_seconds}"
spec:
  suspend: {suspend}
  backoffLimit: 0
  template:
    metadata:
      labels:
        app: {label}
    spec:
      restartPolicy: Never
      containers:
      - name: agent
        image: registry.example/agent:1.0
        command: ["/bin/agent"]
        args: ["--task", "fix-the-bug"]
        env:
        - name: TASK_ID
          value: "value-that-must-not-be-logged"
"#
    )
}
