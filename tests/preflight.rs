//! Preflight checks against the embedded cluster: a missing namespace makes
//! `/ready` 503 naming it (and is logged once, not every period), tasks are
//! answered `namespace_missing`, and creating the namespace with kubectl
//! brings `/ready` back to 200 without a restart; a failing Job create is
//! logged with the Job's name; `orchestrator doctor` prints the same checks.
//! The service's log is captured to assert on it.

mod api_support;
mod common;
#[path = "../crates/kube-api-sim/tests/tool_support/mod.rs"]
mod tool_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use api_support::*;
use common::*;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube_api_sim::authz::{rules_from_manifests, TokenGrant};
use kube_api_sim::{SimConfig, SimServer};
use orchestrator::cluster::permissions::{KUEUE, REQUIRED};
use serde_json::{json, Value};

/// A short check period, so many rounds fail within a few seconds.
const PERIOD: &str = "0.1";
const NS: &str = "claude-jobs";

/// Everything the service logged in this test binary (all tests).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,kube=warn,hyper=warn",
            ))
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines containing every one of `words`.
fn lines_with(words: &[&str]) -> Vec<String> {
    let text = logs()
        .lock()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_string)
        .collect()
}

/// Requests the simulator answered for `verb` on `resource` (any status).
fn requests(sim: &SimServer, verb: &str, resource: &str) -> u64 {
    let counts = sim.state().faults.counts();
    counts
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["verb"] == verb && c["resource"] == resource)
                .filter_map(|c| c["count"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

async fn ready(app: &TestApp) -> Answer {
    app.get("/ready").await
}

/// Runs kubectl against the simulator (fresh cache dir, bounded).
async fn kubectl(sim: &SimServer, dir: &Path, args: &[&str]) -> std::process::Output {
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .expect("write the kubeconfig");
    let mut cmd = tokio::process::Command::new(tool_support::tool("kubectl"));
    cmd.arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--request-timeout=10s")
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    bounded("kubectl", WAIT, cmd.output())
        .await
        .expect("kubectl runs (install it or set KUBECTL)")
}

#[tokio::test]
async fn a_missing_namespace_is_named_by_ready_and_tasks_until_kubectl_creates_it() {
    logs();
    let sim = start_sim(0.3);
    let app = start_app_on(
        sim.clone(),
        &[
            ("KUBERNETES_NAMESPACE", NS),
            ("PREFLIGHT_INTERVAL_SECONDS", PERIOD),
            ("API_TOKENS", API_TOKENS),
        ],
    )
    .await;

    let missing = format!("namespace \"{NS}\" does not exist");
    let r = wait_for("/ready naming the missing namespace", WAIT, || async {
        let r = ready(&app).await;
        let named = r.json["failed"]
            .as_array()
            .is_some_and(|f| f.iter().any(|m| m == missing.as_str()));
        named.then_some(r)
    })
    .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        r.json["reason"]
            .as_str()
            .is_some_and(|s| s.contains(&missing)),
        "{}",
        r.text
    );
    let check = r.json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == "namespace"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(check["result"], "failed", "{}", r.text);
    assert!(check["fix"]
        .as_str()
        .is_some_and(|f| f.contains("kubectl create namespace claude-jobs")));
    assert_eq!(app.get("/health").await.status, 200, "the process is alive");

    // Many failing rounds (and lease retries) later, the log has named the
    // namespace only when the check started failing.
    // (Each round asks for a dry-run Lease create; the Lease loop first
    // reads its Lease.)
    let start = requests(&sim, "create", "leases");
    wait_for(
        "60 more preflight rounds",
        Duration::from_secs(60),
        || async { (requests(&sim, "create", "leases") >= start + 60).then_some(()) },
    )
    .await;
    wait_for(
        "a second lease attempt",
        Duration::from_secs(30),
        || async { (requests(&sim, "get", "leases") >= 2).then_some(()) },
    )
    .await;
    let warned: Vec<String> = lines_with(&[NS])
        .into_iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(
        (1..=2).contains(&warned.len()),
        "the missing namespace is logged once or twice, not every period: {warned:#?}"
    );
    assert!(warned.iter().any(|l| l.contains(&missing)), "{warned:#?}");
    assert!(
        lines_with(&["preflight check failed", &missing]).len() == 1,
        "one line for the failing check"
    );
    for l in &warned {
        assert!(
            !l.contains("ErrorResponse") && !l.contains("Status {"),
            "no Debug dumps: {l}"
        );
    }

    // A task is answered with our code and words.
    let r = submit_task(
        &app,
        &task("a task before the namespace exists", "acme/ns"),
        Some("ns-1"),
    )
    .await;
    let body = r.expect(503, "a task while the namespace is missing");
    assert_eq!(body["error"], "namespace_missing", "{}", r.text);
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains(NS)),
        "{}",
        r.text
    );
    let failed = wait_for("the Job create failure in the log", WAIT, || async {
        lines_with(&["Failed to create Kubernetes Job", NS]).pop()
    })
    .await;
    assert!(
        failed.contains("not found"),
        "the API server's reason: {failed}"
    );

    // The operator creates the namespace; no restart.
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = kubectl(&sim, dir.path(), &["create", "namespace", NS]).await;
    assert!(
        out.status.success(),
        "kubectl create namespace: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("/ready 200 after the namespace exists", WAIT, || async {
        (ready(&app).await.status == 200).then_some(())
    })
    .await;
    let r = submit_task(
        &app,
        &task("a task after the namespace exists", "acme/ns"),
        Some("ns-1"),
    )
    .await;
    assert_eq!(
        r.expect(202, "the same task again")["status"],
        "queued",
        "{}",
        r.text
    );
    let recovered = wait_for("the recovery in the log", WAIT, || async {
        let l = lines_with(&["preflight check passes again", NS]);
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_job_create_failing_with_500_is_logged_with_the_jobs_name() {
    logs();
    let app = spawn_app(&[
        ("API_TOKENS", API_TOKENS),
        ("PREFLIGHT_INTERVAL_SECONDS", PERIOD),
    ])
    .await;
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "create", "resource": "jobs", "rate": 1.0, "status": 500}]}),
    )
    .await;
    let doc = task("a task the API server refuses", "acme/fault");
    let r = submit_task(&app, &doc, Some("fault-500")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    let line = wait_for("the failure in the log", WAIT, || async {
        lines_with(&["Failed to create Kubernetes Job", "namespace=default"]).pop()
    })
    .await;
    clear_faults(&app.sim).await;
    // The same task (same Idempotency-Key) now becomes its Job: that is
    // the name the failure was logged with. (Until the first attempt has
    // let go of the key, a retry shares its answer.)
    let r = wait_for("the task accepted after the fault", WAIT, || async {
        let r = submit_task(&app, &doc, Some("fault-500")).await;
        (r.status == 202).then_some(r)
    })
    .await;
    let name = job_of(&r);
    assert!(
        line.contains(&format!("job={name} ")),
        "the Job's name {name}: {line}"
    );
    assert!(line.contains("namespace=default"), "{line}");
    assert!(line.contains("500"), "the API server's reason: {line}");
    app.stop().await.expect("a clean stop");
}

/// Runs `orchestrator doctor` with `args`.
async fn doctor(args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    cmd.arg("doctor")
        .args(args)
        .env_remove("KUBERNETES_NAMESPACE")
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = bounded("orchestrator doctor", WAIT, cmd.output())
        .await
        .expect("the CLI runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn doctor_prints_the_checks_and_exits_by_the_outcome() {
    let sim = start_sim(0.3);
    let dir = tempfile::tempdir().expect("a temp dir");
    let kc = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kc).expect("write the kubeconfig");
    let kc = kc.to_string_lossy().into_owned();

    let (code, out, err) = doctor(&["--kubeconfig", &kc, "--namespace", NS]).await;
    assert_eq!(code, 1, "a failed check: {out}{err}");
    assert!(
        out.contains(&format!("FAILED  namespace \"{NS}\" does not exist")),
        "{out}"
    );
    assert!(
        out.contains("fix: create it (kubectl create namespace claude-jobs)"),
        "{out}"
    );

    let (code, out, err) = doctor(&["--kubeconfig", &kc, "--namespace", "default", "--json"]).await;
    assert_eq!(code, 0, "all good: {out}{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    let ns = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == "namespace"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(ns["result"], "ok", "{out}");

    // The API server goes away: exit 3, naming where it was.
    let url = sim.url();
    drop(sim);
    let (code, out, err) = doctor(&["--kubeconfig", &kc]).await;
    assert_eq!(code, 3, "unreachable: {out}{err}");
    assert!(
        out.contains(&format!(
            "API server unreachable at {url}: connection refused"
        )),
        "{out}"
    );

    let (code, _, err) = doctor(&["--namespace", "Not_A_Label"]).await;
    assert_eq!(code, 2, "{err}");
}

fn role_rules() -> Vec<PolicyRule> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/role.yaml");
    let text = std::fs::read_to_string(path).expect("k8s/role.yaml");
    rules_from_manifests(&text).expect("the Role's rules")
}

type Grant = (String, String, String, Option<String>);

/// (group, resource[/subresource], verb, name) for every grant of `rules`.
fn grants(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for r in rules {
        let names: Vec<Option<String>> = match r.resource_names.as_deref() {
            Some(n) if !n.is_empty() => n.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        for g in r.api_groups.as_deref().unwrap_or_default() {
            for res in r.resources.as_deref().unwrap_or_default() {
                for v in &r.verbs {
                    for n in &names {
                        out.insert((g.clone(), res.clone(), v.clone(), n.clone()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn the_checked_permissions_are_exactly_the_roles_rules() {
    let checked: BTreeSet<Grant> = REQUIRED
        .iter()
        .chain(KUEUE)
        .map(|p| {
            let res = match p.subresource {
                Some(sub) => format!("{}/{sub}", p.resource),
                None => p.resource.to_string(),
            };
            (
                p.group.to_string(),
                res,
                p.verb.to_string(),
                p.name.map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        checked,
        grants(&role_rules()),
        "REQUIRED and KUEUE vs k8s/role.yaml"
    );
}

const SA_TOKEN: &str = "service-account-token-of-the-preflight-test";

#[tokio::test]
async fn a_permission_the_role_lacks_is_named_by_ready_with_verb_and_resource() {
    logs();
    // The Role without `create` on Jobs.
    let mut rules = role_rules();
    for r in &mut rules {
        if r.resources.as_deref() == Some(&["jobs".to_string()][..]) {
            r.verbs.retain(|v| v != "create");
        }
    }
    let grant = TokenGrant {
        namespace: Some("default".into()),
        ..TokenGrant::with_rules(
            SA_TOKEN,
            "system:serviceaccount:default:orchestrator",
            rules,
        )
    };
    let sim = Arc::new(
        SimServer::start_local(SimConfig {
            token: Some("admin-token-of-the-preflight-test".into()),
            grants: vec![grant],
            default_run_seconds: 0.3,
            ..SimConfig::default()
        })
        .expect("the simulator starts"),
    );
    let kubeconfig = sim.kubeconfig_for_token(Some(SA_TOKEN));
    let app = start_app_with_kubeconfig(
        sim.clone(),
        kubeconfig,
        &[("PREFLIGHT_INTERVAL_SECONDS", PERIOD)],
    )
    .await;
    let denied = "cannot create jobs.batch in namespace \"default\"";
    let r = wait_for("/ready naming the missing permission", WAIT, || async {
        let r = ready(&app).await;
        let named = r.json["failed"]
            .as_array()
            .is_some_and(|f| f.iter().any(|m| m == denied));
        (r.status == 503 && named).then_some(r)
    })
    .await;
    assert_eq!(
        r.json["failed"],
        json!([denied]),
        "only that one: {}",
        r.text
    );
    let checks = r.json["checks"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&Value> = checks.iter().filter(|c| c["result"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{}", r.text);
    assert_eq!(failed[0]["verb"], "create", "{}", r.text);
    assert_eq!(failed[0]["resource"], "jobs.batch", "{}", r.text);
    assert!(
        failed[0]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("k8s/")),
        "{}",
        r.text
    );
    // Every other permission of the Role (the named Lease ones too) passes.
    let ok = checks
        .iter()
        .filter(|c| c["check"] == "permission" && c["result"] == "ok")
        .count();
    assert_eq!(ok, REQUIRED.len() - 1, "{}", r.text);
    let namespace = checks.iter().find(|c| c["check"] == "namespace");
    assert_eq!(
        namespace.map(|c| &c["result"]),
        Some(&json!("ok")),
        "{}",
        r.text
    );
    let line = wait_for("the failure in the log", WAIT, || async {
        lines_with(&["preflight check failed", denied]).pop()
    })
    .await;
    assert!(
        line.contains("verb=\"create\"") && line.contains("resource=\"jobs.batch\""),
        "{line}"
    );
    app.stop().await.expect("a clean stop");
}

/// `/ready` answers anyone who reaches the service: it says which check
/// fails and how to fix it, but names no internal address (the API
/// server's URL, its IP and port); the log keeps them.
#[tokio::test]
async fn ready_names_the_failing_check_but_not_the_api_servers_address() {
    logs();
    let sim = start_sim(0.3);
    let app = start_app_on(
        sim.clone(),
        &[
            ("KUBERNETES_NAMESPACE", "ready-without-addresses"),
            ("PREFLIGHT_INTERVAL_SECONDS", PERIOD),
        ],
    )
    .await;
    let missing = "namespace \"ready-without-addresses\" does not exist";
    let r = wait_for("/ready naming the missing namespace", WAIT, || async {
        let r = ready(&app).await;
        let named = r.json["failed"]
            .as_array()
            .is_some_and(|f| f.iter().any(|m| m == missing));
        named.then_some(r)
    })
    .await;
    assert_eq!(r.status, 503, "{}", r.text);
    let addr = sim.addr();
    for hidden in [
        sim.url(),
        addr.to_string(),
        addr.ip().to_string(),
        format!(":{}", addr.port()),
    ] {
        assert!(!r.text.contains(&hidden), "{hidden} in {}", r.text);
    }
    let api = r.json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == "api_server"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(api["result"], "ok", "{}", r.text);
    assert!(
        api["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("API server answers")),
        "{}",
        r.text
    );
    app.stop().await.expect("a clean stop");
}

/// Without a kubeconfig, `doctor` points at the simulator kubeconfig
/// `serve --embedded-cluster` left in the current directory, and the hint
/// works as printed.
#[tokio::test]
async fn doctor_without_a_kubeconfig_names_the_simulator_kubeconfig_it_sees() {
    let sim = start_sim(0.3);
    let dir = tempfile::tempdir().expect("a temp dir");
    let home = tempfile::tempdir().expect("an empty home");
    sim.write_kubeconfig(&dir.path().join("orchestrator-sim-8080.kubeconfig"))
        .expect("write the kubeconfig");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"));
        cmd.arg("doctor")
            .args(args)
            .current_dir(dir.path())
            .env("HOME", home.path())
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_NAMESPACE")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        async move {
            let out = bounded("orchestrator doctor", WAIT, cmd.output())
                .await
                .expect("the CLI runs");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        }
    };
    let (code, out) = run(&[]).await;
    assert_eq!(code, 2, "{out}");
    let hint = "orchestrator doctor --kubeconfig orchestrator-sim-8080.kubeconfig";
    assert!(out.contains(hint), "{out}");
    let (code, out) = run(&["--kubeconfig", "orchestrator-sim-8080.kubeconfig"]).await;
    assert_eq!(code, 0, "the hint works: {out}");
}
