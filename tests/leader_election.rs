//! Leader election with real processes: three `orchestrator serve` replicas
//! on one standalone `orchestrator sim`. Exactly one leads; when it is
//! killed (SIGKILL) a survivor admits queued work within the lease duration
//! plus the retry period; when it is stopped (SIGTERM) it releases the Lease
//! and a survivor admits within about two seconds; when the Lease calls
//! alone get slower than the renew deadline, the leader stops admitting by
//! itself and nobody else leads until the Lease is usable again. The Jobs'
//! history, recorded from the simulator's watch, never shows more admitted
//! Jobs at once than `MAX_CONCURRENT_JOBS`.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, WatchEvent, WatchParams};

const LEASE: f64 = 3.0;
const RENEW: f64 = 2.0;
const RETRY: f64 = 0.5;
const MAX_JOBS: usize = 2;
/// How long each agent pod runs in the simulator.
const RUN_SECONDS: f64 = 1.0;
/// Allowance for process scheduling on a busy machine.
const SLACK: Duration = Duration::from_millis(1500);

struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig}");
}

/// `orchestrator sim` on a free port; returns it, its URL and kubeconfig.
fn start_sim_process(dir: &std::path::Path) -> (Proc, String, std::path::PathBuf) {
    let kubeconfig = dir.join("sim.kubeconfig");
    let log = dir.join("sim.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["sim", "--listen", "127.0.0.1:0", "--default-run-seconds"])
        .arg(RUN_SECONDS.to_string())
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("sim log"))
        .spawn()
        .expect("start orchestrator sim");
    let (url, mut lines) = sim_banner(child.stdout.take().expect("stdout"));
    // Keep draining stdout so the simulator never blocks on it.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Proc { child, log }, url, kubeconfig)
}

struct Replica {
    proc: Proc,
    address: String,
}

fn start_replica(dir: &std::path::Path, kubeconfig: &std::path::Path, n: usize) -> Replica {
    let port = free_port();
    let log = dir.join(format!("replica-{n}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .env("GITHUB_WEBHOOK_SECRET", TEST_SECRET)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("POD_NAME", format!("replica-{n}"))
        .env("RUST_LOG", "info,kube=warn")
        .env("MAX_CONCURRENT_JOBS", MAX_JOBS.to_string())
        .env("LEADER_LEASE_SECONDS", LEASE.to_string())
        .env("LEADER_RENEW_DEADLINE_SECONDS", RENEW.to_string())
        .env("LEADER_RETRY_SECONDS", RETRY.to_string())
        .env("RATE_LIMIT_PER_REPO_PER_MINUTE", "10000")
        .env("RATE_LIMIT_PER_SENDER_PER_MINUTE", "10000")
        .env("SHUTDOWN_TIMEOUT_SECONDS", "5")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("replica log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start orchestrator serve");
    Replica {
        proc: Proc { child, log },
        address: format!("http://127.0.0.1:{port}"),
    }
}

/// `orchestrator_leader` of a replica (None if it does not answer).
async fn leader_gauge(http: &reqwest::Client, r: &Replica) -> Option<f64> {
    let text = http
        .get(format!("{}/metrics", r.address))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("orchestrator_leader ")?.trim().parse().ok())
}

/// The replicas' leader gauges, in order.
async fn gauges(http: &reqwest::Client, rs: &[&Replica]) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for r in rs {
        out.push(leader_gauge(http, r).await);
    }
    out
}

/// Waits until exactly one of `rs` leads; returns its index.
async fn one_leader(http: &reqwest::Client, rs: &[&Replica], limit: Duration) -> usize {
    wait_for("exactly one leader", limit, || async {
        let g = gauges(http, rs).await;
        let leaders: Vec<usize> = (0..g.len()).filter(|i| g[*i] == Some(1.0)).collect();
        let all_up = g.iter().all(Option::is_some);
        (all_up && leaders.len() == 1).then(|| leaders[0])
    })
    .await
}

async fn deliver(http: &reqwest::Client, r: &Replica, issue: u64) -> u16 {
    let body = bytes(&issue_labeled_agent(issue));
    http.post(format!("{}/webhook/github", r.address))
        .header("x-github-event", "issues")
        .header("x-github-delivery", delivery_id())
        .header("x-hub-signature-256", sign(TEST_SECRET, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map(|a| a.status().as_u16())
        .unwrap_or(0)
}

/// What the simulator's Job watch showed: admissions (suspend → false) with
/// when they were seen, and the most Jobs admitted and unfinished at once.
#[derive(Default)]
struct History {
    /// Job → (admitted, finished).
    jobs: BTreeMap<String, (bool, bool)>,
    admissions: Vec<Instant>,
    max_active: usize,
    broken: Option<String>,
}

fn record(h: &mut History, job: &Job) {
    let name = job.metadata.name.clone().unwrap_or_default();
    let admitted = !suspended(job);
    let finished = has_condition(job, "Complete") || has_condition(job, "Failed");
    let before = h.jobs.insert(name, (admitted, finished));
    if admitted && !before.is_some_and(|(a, _)| a) {
        h.admissions.push(Instant::now());
    }
    let active = h.jobs.values().filter(|(a, f)| *a && !*f).count();
    h.max_active = h.max_active.max(active);
}

fn watch_history(jobs: Api<Job>) -> Arc<Mutex<History>> {
    let h = Arc::new(Mutex::new(History::default()));
    let out = h.clone();
    tokio::spawn(async move {
        let wp = WatchParams::default().labels(MANAGED).timeout(290);
        let stream = match jobs.watch(&wp, "0").await {
            Ok(s) => s,
            Err(e) => {
                out.lock().expect("lock").broken = Some(e.to_string());
                return;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let mut g = out.lock().expect("lock");
            match ev {
                Ok(WatchEvent::Added(j) | WatchEvent::Modified(j)) => record(&mut g, &j),
                Ok(WatchEvent::Deleted(j)) => {
                    g.jobs
                        .remove(j.metadata.name.as_deref().unwrap_or_default());
                }
                Ok(WatchEvent::Bookmark(_)) => {}
                Ok(WatchEvent::Error(e)) => g.broken = Some(e.message),
                Err(e) => g.broken = Some(e.to_string()),
            }
        }
        out.lock().expect("lock").broken = Some("the watch ended".into());
    });
    h
}

/// Waits for an admission seen after `since`, within `limit`.
async fn admission_after(h: &Arc<Mutex<History>>, since: Instant, what: &str, limit: Duration) {
    wait_for(what, limit, || async {
        let g = h.lock().expect("lock");
        g.admissions.iter().any(|t| *t > since).then_some(())
    })
    .await;
}

#[tokio::test]
async fn three_replicas_one_leader_through_kill_term_and_slow_lease_calls() {
    init_logging();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (sim, url, kubeconfig) = start_sim_process(dir.path());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config"),
    )
    .expect("client");
    let history = watch_history(Api::namespaced(client, "default"));

    let replicas: Vec<Replica> = (0..3)
        .map(|n| start_replica(dir.path(), &kubeconfig, n))
        .collect();
    let result = async {
        let all: Vec<&Replica> = replicas.iter().collect();
        let first = one_leader(&http, &all, WAIT).await;

        // Queue more work than can run at once.
        let start = Instant::now();
        let mut issue = 0;
        for _ in 0..8 {
            issue += 1;
            assert_eq!(
                deliver(&http, &replicas[(issue as usize) % 3], issue).await,
                202
            );
        }
        admission_after(&history, start, "a first admission", WAIT).await;

        // SIGKILL: nothing released; a survivor takes over once the Lease
        // has stood still for its duration.
        signal(&replicas[first].proc.child, "-KILL");
        let killed = Instant::now();
        let survivors: Vec<&Replica> = (0..3)
            .filter(|i| *i != first)
            .map(|i| &replicas[i])
            .collect();
        let bound = Duration::from_secs_f64(LEASE + RETRY + RUN_SECONDS) + SLACK;
        admission_after(&history, killed, "a survivor to admit after SIGKILL", bound).await;
        let second = one_leader(&http, &survivors, WAIT).await;
        let second_r = survivors[second];
        let last: Vec<&Replica> = survivors
            .iter()
            .copied()
            .filter(|r| !std::ptr::eq(*r, second_r))
            .collect();

        // More work, then SIGTERM: the Lease is released at once.
        for _ in 0..6 {
            issue += 1;
            assert_eq!(deliver(&http, last[0], issue).await, 202);
        }
        admission_after(
            &history,
            Instant::now(),
            "admissions by the second leader",
            WAIT,
        )
        .await;
        signal(&second_r.proc.child, "-TERM");
        let termed = Instant::now();
        let bound = Duration::from_secs_f64(RETRY + RUN_SECONDS) + SLACK;
        admission_after(
            &history,
            termed,
            "the last replica to admit after SIGTERM",
            bound,
        )
        .await;
        one_leader(&http, &last, WAIT).await;

        // Lease calls slower than the renew deadline: the leader steps
        // down by itself and nobody leads while it lasts.
        for _ in 0..6 {
            issue += 1;
            assert_eq!(deliver(&http, last[0], issue).await, 202);
        }
        let faults = http
            .put(format!("{url}/_sim/faults"))
            .json(&serde_json::json!({"latency_rules": [{"resource": "leases", "ms": ((RENEW + 2.0) * 1000.0) as u64}]}))
            .send()
            .await
            .expect("PUT /_sim/faults");
        assert_eq!(faults.status().as_u16(), 200);
        wait_for("the leader to step down", WAIT, || async {
            (leader_gauge(&http, last[0]).await == Some(0.0)).then_some(())
        })
        .await;
        let stepped_down = Instant::now();
        // While the Lease is slow, no admission happens (give it a whole
        // lease duration to misbehave).
        tokio::time::sleep(Duration::from_secs_f64(LEASE)).await;
        {
            let g = history.lock().expect("lock");
            let late: Vec<_> = g.admissions.iter().filter(|t| **t > stepped_down).collect();
            assert!(
                late.is_empty(),
                "{} admissions without a leader",
                late.len()
            );
        }
        assert_eq!(leader_gauge(&http, last[0]).await, Some(0.0));
        let cleared = http
            .delete(format!("{url}/_sim/faults"))
            .send()
            .await
            .expect("DELETE /_sim/faults");
        assert!(cleared.status().is_success());
        one_leader(&http, &last, WAIT).await;
        admission_after(
            &history,
            stepped_down,
            "admissions once the Lease is usable",
            WAIT,
        )
        .await;

        let g = history.lock().expect("lock");
        assert_eq!(g.broken, None, "the history watch broke");
        assert!(
            g.max_active <= MAX_JOBS,
            "{} Jobs admitted at once, limit {MAX_JOBS}",
            g.max_active
        );
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    if let Err(panic) = outcome {
        for (n, r) in replicas.iter().enumerate() {
            eprintln!("---- replica-{n} log\n{}", r.proc.log());
        }
        eprintln!("---- sim log\n{}", sim.log());
        std::panic::resume_unwind(panic);
    }
}
