//! Failure of the API server and of the process: while the simulator answers
//! 503 the service retries within GitHub's budget and answers either 2xx
//! with the Job persisted or 503 — never 2xx without a Job; and SIGTERM with
//! requests in flight completes them (each 2xx has its Job) and exits 0.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::future::join_all;
use serde_json::json;

/// Why a delivery got no answer.
#[derive(Debug)]
enum NoAnswer {
    /// The connection was refused: the listener was closed.
    Refused,
    /// Connected, then the connection failed before a whole answer came.
    CutOff(String),
}

/// Sends one routed delivery per issue, all at once; returns
/// (issue, delivery id, answer or why there is none).
async fn burst(
    app_address: &str,
    secret: &str,
    issues: impl IntoIterator<Item = u64>,
) -> Vec<(u64, String, Result<Answer, NoAnswer>)> {
    let http = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client");
    let sends = issues.into_iter().map(|n| {
        let http = http.clone();
        let url = format!("{app_address}/webhook/github");
        let body = bytes(&issue_labeled_agent(n));
        let delivery = delivery_id();
        let sig = sign(secret, &body);
        async move {
            let resp = http
                .post(url)
                .header("content-type", "application/json")
                .header("x-github-event", "issues")
                .header("x-github-delivery", &delivery)
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await;
            let answer = match resp {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let retry_after = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let content_type = r
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    match r.text().await {
                        Ok(text) => Ok(Answer {
                            status,
                            content_type,
                            retry_after,
                            json: serde_json::from_str(&text).unwrap_or_default(),
                            text,
                        }),
                        Err(e) => Err(NoAnswer::CutOff(format!("reading the body: {e}"))),
                    }
                }
                Err(e) if e.is_connect() => Err(NoAnswer::Refused),
                Err(e) => Err(NoAnswer::CutOff(e.to_string())),
            };
            (n, delivery, answer)
        }
    });
    join_all(sends).await
}

/// Checks the contract on a burst's answers: 2xx → queued/duplicate with a
/// Job that exists; otherwise 503 with Retry-After. Returns the counts
/// (accepted, unavailable) and the accepted Job names.
async fn check_answers(
    app: &TestApp,
    answers: &[(u64, String, Result<Answer, NoAnswer>)],
) -> (usize, usize, Vec<String>) {
    let existing = app.job_names().await;
    let (mut ok, mut unavailable, mut names) = (0, 0, Vec::new());
    for (n, _, a) in answers {
        let a = a.as_ref().unwrap_or_else(|e| panic!("issue {n}: {e:?}"));
        a.assert_json();
        match a.status {
            200..=299 => {
                assert!(
                    matches!(a.status_field(), "queued" | "duplicate"),
                    "issue {n}: {}",
                    a.text
                );
                let job = a.job().expect("a 2xx names its job");
                assert!(
                    existing.contains(&job),
                    "issue {n}: answered {} but Job {job} does not exist",
                    a.status
                );
                ok += 1;
                names.push(job);
            }
            503 => {
                assert!(a.retry_after.is_some(), "issue {n}: 503 has Retry-After");
                unavailable += 1;
            }
            other => panic!("issue {n}: unexpected {other}: {}", a.text),
        }
    }
    (ok, unavailable, names)
}

/// The GitHub route's budget for persisting a task (GitHub waits 10 s).
const GITHUB_BUDGET: Duration = Duration::from_secs(9);
/// The simulator's `Retry-After` on an injected 503.
const SIM_RETRY_AFTER: Duration = Duration::from_secs(1);

#[tokio::test]
async fn while_the_api_server_fails_job_creates_with_503_every_2xx_has_its_job_and_the_rest_get_503(
) {
    let app = spawn_app(&[]).await;
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "create", "resource": "jobs", "rate": 0.6, "status": 503}]}),
    )
    .await;
    let answers = burst(&app.address, &app.secret, 1..=20).await;
    let stats = sim_stats(&app.sim).await;
    let (ok, unavailable, _) = check_answers(&app, &answers).await;
    assert_eq!(ok + unavailable, 20);
    let failed = answered(&stats, "create", "jobs", Some(503));
    let created = answered(&stats, "create", "jobs", Some(201));
    eprintln!(
        "with a 60% create error rate: {ok} accepted, {unavailable} unavailable; \
         the simulator answered {created} creates and failed {failed}"
    );
    // Retries show in the simulator: more create attempts than deliveries,
    // and one successful create per Job.
    assert!(
        created + failed > 20 && failed > unavailable as u64,
        "the service retried failed creates: {created} created, {failed} failed, {unavailable} unavailable"
    );
    assert_eq!(
        created as usize,
        app.jobs().await.len(),
        "one create per Job"
    );
    // A delivery answered 503 spent its budget on attempts about a
    // Retry-After apart: at least half the budget's worth of them (the
    // rest is margin for a loaded machine).
    let min_attempts = GITHUB_BUDGET.as_secs() / SIM_RETRY_AFTER.as_secs() / 2;
    assert!(
        failed >= min_attempts * unavailable as u64,
        "each of {unavailable} unavailable deliveries tried at least {min_attempts} times; {failed} failed creates in all"
    );
    // With at least that many attempts each, a delivery fails with
    // probability 0.6^4 ≈ 13 % at worst (0.6^8 ≈ 1.7 % at the usual eight
    // or nine); more than 7 of 20 failing has probability < 0.5 %, while
    // without retries about 12 of 20 fail.
    assert!(
        unavailable <= 7,
        "retries within the budget get most creates through: {unavailable} of 20 unavailable"
    );
    clear_faults(&app.sim).await;
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn while_the_api_server_is_down_for_two_seconds_requests_are_retried_and_every_2xx_has_its_job(
) {
    let app = spawn_app(&[]).await;
    set_faults(&app.sim, json!({"down_for_seconds": 2, "latency_ms": 50})).await;
    let answers = burst(&app.address, &app.secret, 1..=10).await;
    let (ok, unavailable, names) = check_answers(&app, &answers).await;
    eprintln!("with a 2 s outage: {ok} accepted, {unavailable} unavailable");
    assert_eq!(
        (ok, unavailable),
        (10, 0),
        "a two-second outage fits in the {GITHUB_BUDGET:?} budget of every delivery"
    );
    clear_faults(&app.sim).await;
    // The accepted Jobs run to completion once the API server is back.
    for name in &names {
        app.wait_complete(name, Duration::from_secs(60)).await;
    }
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn when_the_api_server_stays_down_past_the_budget_the_answer_is_503_and_a_redelivery_later_succeeds(
) {
    let app = spawn_app(&[]).await;
    set_faults(&app.sim, json!({"down_for_seconds": 15})).await;
    let answers = burst(&app.address, &app.secret, [1, 2, 3]).await;
    // Back up, so the assertions can list Jobs.
    clear_faults(&app.sim).await;
    let (ok, unavailable, _) = check_answers(&app, &answers).await;
    assert_eq!((ok, unavailable), (0, 3), "nothing is accepted while down");
    // GitHub redelivers with the same delivery id; now it goes through.
    for (n, delivery, _) in &answers {
        let a = app
            .deliver("issues", delivery, bytes(&issue_labeled_agent(*n)))
            .await;
        assert_eq!((a.status, a.status_field()), (202, "queued"), "{}", a.text);
    }
    assert_eq!(app.jobs().await.len(), 3);
    app.stop().await.expect("a clean stop");
}

/// The real binary, `orchestrator serve`, against `sim`. Its log is kept
/// and shown only if the test fails (tests are quiet when they pass).
struct Binary {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Binary {
    async fn start(sim: &kube_api_sim::SimServer, env: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().expect("a temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
        cmd.arg("serve")
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", &kubeconfig)
            .env("GITHUB_WEBHOOK_SECRET", TEST_SECRET)
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start orchestrator serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (child.stderr.take().expect("stderr"), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = format!("http://127.0.0.1:{port}");
        let mut bin = Binary {
            child,
            address,
            log,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let url = format!("{}/ready", bin.address);
        wait_for("the binary to be ready", WAIT, || {
            let http = http.clone();
            let url = url.clone();
            let exited = bin.child.try_wait().ok().flatten();
            async move {
                if let Some(status) = exited {
                    panic!("orchestrator serve exited early: {status}");
                }
                let r = http.get(url).send().await.ok()?;
                (r.status().as_u16() == 200).then_some(())
            }
        })
        .await;
        bin
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig}");
    }

    /// Waits (bounded) for the process to exit; returns its status.
    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        wait_for("the process to exit", limit, || {
            let s = child.try_wait().expect("try_wait");
            async move { s }
        })
        .await
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("orchestrator serve's log:\n{log}");
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Managed Jobs by the delivery id that made them.
async fn jobs_by_delivery(sim: &kube_api_sim::SimServer) -> BTreeMap<String, String> {
    let client = sim.client().await.expect("client");
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> =
        kube::Api::namespaced(client, "default");
    bounded(
        "list jobs",
        WAIT,
        jobs.list(&kube::api::ListParams::default().labels(MANAGED)),
    )
    .await
    .expect("list jobs")
    .items
    .into_iter()
    .filter_map(|j| {
        let delivery = j
            .metadata
            .annotations
            .as_ref()?
            .get("orchestrator.dev/delivery-id")?
            .clone();
        Some((delivery, j.metadata.name?))
    })
    .collect()
}

#[tokio::test]
async fn sigterm_with_requests_in_flight_answers_each_one_that_reached_it_each_2xx_has_its_job_and_the_exit_code_is_0(
) {
    let sim = start_sim(0.3);
    let mut bin = Binary::start(&sim, &[("SHUTDOWN_TIMEOUT_SECONDS", "10")]).await;
    // Every API call takes a second, so deliveries stay in flight.
    set_faults(&sim, json!({"latency_ms": 1000})).await;
    let address = bin.address.clone();
    let before = tokio::spawn(async move { burst(&address, TEST_SECRET, 1..=5).await });
    // All five reached the service (it is creating their Jobs), and at
    // least one is still in flight when the signal comes.
    wait_for(
        "the five deliveries to be creating their Jobs",
        WAIT,
        || async {
            let s = sim_stats(&sim).await;
            let flying = in_flight(&s, "create", "jobs");
            let started = answered(&s, "create", "jobs", None) + flying;
            (started >= 5 && flying >= 1).then_some(())
        },
    )
    .await;
    bin.signal("-TERM");
    // Deliveries after the signal race the closing listener.
    let mut after = Vec::new();
    for wave in 0..3u64 {
        let address = bin.address.clone();
        let issues = (wave * 5 + 6)..=(wave * 5 + 10);
        after.push(tokio::spawn(async move {
            burst(&address, TEST_SECRET, issues).await
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = bounded("the deliveries sent before SIGTERM", WAIT, before)
        .await
        .expect("the burst task");
    let mut late = Vec::new();
    for w in after {
        late.extend(
            bounded("the deliveries sent after SIGTERM", WAIT, w)
                .await
                .expect("the burst task"),
        );
    }
    let status = bin.wait_exit(Duration::from_secs(10 + 10)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );

    clear_faults(&sim).await;
    let jobs = jobs_by_delivery(&sim).await;
    for (n, delivery, a) in &before {
        let a = a.as_ref().unwrap_or_else(|e| {
            panic!("issue {n} reached the service before SIGTERM but got no answer: {e:?}")
        });
        assert_eq!(
            (a.status, a.status_field()),
            (202, "queued"),
            "issue {n}: {}",
            a.text
        );
        assert_eq!(
            jobs.get(delivery),
            a.job().as_ref(),
            "issue {n}: its Job exists"
        );
    }
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, delivery, a) in &late {
        let outcome = match a {
            Ok(a) if (200..300).contains(&a.status) => {
                assert_eq!(
                    jobs.get(delivery),
                    a.job().as_ref(),
                    "issue {n}: its Job exists"
                );
                "2xx"
            }
            Ok(a) => {
                assert_eq!(a.status, 503, "issue {n}: {}", a.text);
                "503"
            }
            Err(NoAnswer::Refused) => "refused",
            // Reset while queued in the kernel, before the service took it.
            Err(NoAnswer::CutOff(e)) => {
                assert!(
                    !jobs.contains_key(delivery),
                    "issue {n} was cut off ({e}) after the service made its Job"
                );
                "reset before it was accepted"
            }
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    // No Job without its 2xx answer.
    let accepted: BTreeSet<&String> = before
        .iter()
        .chain(&late)
        .filter(|(_, _, a)| a.as_ref().is_ok_and(|a| (200..300).contains(&a.status)))
        .map(|(_, d, _)| d)
        .collect();
    let made: BTreeSet<&String> = jobs.keys().collect();
    assert_eq!(
        made, accepted,
        "a Job exists exactly for each 2xx answer ({outcomes:?})"
    );
}

#[tokio::test]
async fn sigterm_while_the_api_server_is_down_still_exits_0_within_the_shutdown_timeout() {
    let sim = start_sim(0.3);
    let mut bin = Binary::start(&sim, &[("SHUTDOWN_TIMEOUT_SECONDS", "3")]).await;
    // Every call is answered 503 (as while down), Job creates after a
    // second: a delivery's attempts are sequential, so three creates in
    // flight at once are the three deliveries, each inside the service.
    set_faults(
        &sim,
        json!({
            "errors": [{"rate": 1.0, "status": 503}],
            "latency_rules": [{"verb": "create", "resource": "jobs", "ms": 1000}]
        }),
    )
    .await;
    let address = bin.address.clone();
    let deliveries = tokio::spawn(async move { burst(&address, TEST_SECRET, 1..=3).await });
    wait_for(
        "the three deliveries to be creating their Jobs",
        WAIT,
        || async { (in_flight(&sim_stats(&sim).await, "create", "jobs") >= 3).then_some(()) },
    )
    .await;
    bin.signal("-TERM");
    // The grace period, plus the bounded Lease release, plus slack.
    let status = bin.wait_exit(Duration::from_secs(3 + 2 + 5)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    let answers = bounded("the deliveries", WAIT, deliveries)
        .await
        .expect("the burst task");
    // Each reached the service before the signal: none is accepted, and
    // each is answered 503 before the grace ends, though its own 9 s budget
    // would have kept it retrying past the 3 s grace (never cut off).
    for (n, _, a) in &answers {
        match a {
            Ok(a) => assert_eq!(
                a.status, 503,
                "issue {n}: nothing is accepted while down: {}",
                a.text
            ),
            Err(e) => panic!("issue {n} got no answer: {e:?}"),
        }
    }
    clear_faults(&sim).await;
    assert!(
        jobs_by_delivery(&sim).await.is_empty(),
        "no Job was made while down"
    );
}

#[tokio::test]
async fn sigint_stops_the_service_like_sigterm() {
    let sim = start_sim(0.3);
    let mut bin = Binary::start(&sim, &[("SHUTDOWN_TIMEOUT_SECONDS", "5")]).await;
    let answers = burst(&bin.address, TEST_SECRET, [1]).await;
    assert!(matches!(&answers[0].2, Ok(a) if a.status == 202));
    bin.signal("-INT");
    let status = bin.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

/// Runs `orchestrator serve` to its exit; returns (exit code, stderr).
async fn serve_exits(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    cmd.arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = bounded("orchestrator serve to exit", WAIT, cmd.output())
        .await
        .expect("run orchestrator serve");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn start_up_refuses_a_bad_value_without_a_secret_or_without_a_cluster_and_on_a_busy_port() {
    let port = free_port().to_string();
    let (code, err) = serve_exits(&[
        ("GITHUB_WEBHOOK_SECRET", TEST_SECRET),
        ("SERVER_PORT", &port),
        ("MAX_CONCURRENT_JOBS", "lots"),
    ])
    .await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains("MAX_CONCURRENT_JOBS"),
        "names the variable: {err}"
    );
    assert!(!err.contains(TEST_SECRET), "no secret in errors: {err}");

    let (code, err) = serve_exits(&[("SERVER_PORT", &port)]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("GITHUB_WEBHOOK_SECRET"), "{err}");

    let (code, err) = serve_exits(&[
        ("GITHUB_WEBHOOK_SECRET", TEST_SECRET),
        ("SERVER_PORT", &port),
        ("KUBECONFIG", "/nonexistent/kubeconfig"),
    ])
    .await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains("Error: Failed to initialize Kubernetes client"),
        "{err}"
    );
    assert!(err.contains("--embedded-cluster"), "with the hints: {err}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_port = busy.local_addr().expect("addr").port().to_string();
    let (code, err) = serve_exits(&[
        ("GITHUB_WEBHOOK_SECRET", TEST_SECRET),
        ("SERVER_PORT", &busy_port),
    ])
    .await;
    assert_ne!(code, Some(0));
    assert!(err.contains("Address already in use"), "{err}");
    assert!(err.contains("SERVER_PORT"), "with the hint: {err}");
}

#[tokio::test]
async fn after_a_crash_mid_queue_a_new_process_runs_the_remaining_tasks_and_none_twice() {
    let sim = start_sim(1.0);
    let recorder = Recorder::start(&sim);
    let env = [("MAX_CONCURRENT_JOBS", "1")];
    let mut bin = Binary::start(&sim, &env).await;
    let answers = burst(&bin.address, TEST_SECRET, 601..=603).await;
    let mut names = Vec::new();
    for (n, _, a) in &answers {
        let a = a.as_ref().unwrap_or_else(|e| panic!("issue {n}: {e:?}"));
        assert_eq!(a.status, 202, "issue {n}: {}", a.text);
        names.push(a.job().expect("job"));
    }
    // Mid-queue: a Job admitted and running (its pod runs for a second),
    // the others still queued behind MAX_CONCURRENT_JOBS=1.
    let jobs_api: kube::Api<k8s_openapi::api::batch::v1::Job> =
        kube::Api::namespaced(sim.client().await.expect("client"), "default");
    // (running, queued) among the burst's Jobs.
    let running_and_queued = || async {
        let list = jobs_api
            .list(&kube::api::ListParams::default().labels(MANAGED))
            .await
            .ok()?;
        let ours: Vec<_> = list
            .items
            .iter()
            .filter(|j| j.metadata.name.as_ref().is_some_and(|n| names.contains(n)))
            .collect();
        let queued = ours.iter().filter(|j| suspended(j)).count();
        let running = ours
            .iter()
            .filter(|j| !suspended(j) && !has_condition(j, "Complete"))
            .count();
        Some((running, queued))
    };
    wait_for("a Job running while others wait", WAIT, || async {
        running_and_queued()
            .await
            .filter(|&(running, queued)| running >= 1 && queued >= 1)
    })
    .await;
    bin.signal("-KILL");
    let status = bin.wait_exit(WAIT).await;
    assert_eq!(status.code(), None, "killed by a signal");
    let (_, queued) = running_and_queued().await.expect("list jobs");
    assert!(queued >= 1, "Jobs were still queued when the process died");
    // A new process: it waits out the dead holder's Lease, then admits.
    let app = spawn_app_on(sim.clone(), &env).await;
    for name in &names {
        app.wait_complete(name, Duration::from_secs(90)).await;
    }
    let per_job = recorder.pods_per_job().await;
    for name in &names {
        assert_eq!(per_job.get(name), Some(&1), "{name} ran exactly once");
    }
    let (max_running, max_active) = recorder.max_running().await;
    assert!(
        max_running <= 1 && max_active <= 1,
        "{max_running}/{max_active}"
    );
    app.stop().await.expect("a clean stop");
}
