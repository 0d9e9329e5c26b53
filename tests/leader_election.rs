//! Leader election with real processes: three `orchestrator serve` replicas
//! on one standalone `orchestrator sim`. Exactly one leads; when it is
//! killed (SIGKILL) a survivor takes the Lease over only once it has stood
//! still for the lease duration — never before, read from the Lease's own
//! timestamps, so no load can make that pass or fail — and admits queued
//! work after that; when it is stopped (SIGTERM) it releases the Lease and
//! a survivor takes over sooner than the lease duration would allow
//! without the release; when the Lease calls
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
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, WatchEvent, WatchParams};

/// Lease duration: long enough that a takeover after SIGTERM (a retry
/// period after the release) is told apart from one after expiry with
/// seconds to spare on a loaded machine.
const LEASE: f64 = 4.0;
const RENEW: f64 = 2.5;
const RETRY: f64 = 0.5;
const MAX_JOBS: usize = 2;
/// How long each agent pod runs in the simulator.
const RUN_SECONDS: f64 = 1.0;
/// Timestamps in the Lease are microseconds; allow for the rounding.
const ROUNDING: f64 = 0.001;

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

/// One state of the scheduler Lease, as the simulator's watch showed it.
#[derive(Clone, Debug)]
struct LeaseRecord {
    holder: String,
    /// `acquireTime` and `renewTime`, in seconds since the epoch.
    acquired: f64,
    renewed: f64,
}

fn seconds(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>) -> f64 {
    t.map_or(0.0, |t| t.0.as_microsecond() as f64 / 1e6)
}

/// Every state of the scheduler Lease, in order.
fn watch_lease(leases: Api<Lease>) -> Arc<Mutex<Vec<LeaseRecord>>> {
    let h = Arc::new(Mutex::new(Vec::new()));
    let out = h.clone();
    tokio::spawn(async move {
        let wp = WatchParams::default()
            .fields("metadata.name=orchestrator-scheduler")
            .timeout(290);
        let Ok(stream) = leases.watch(&wp, "0").await else {
            return;
        };
        let mut stream = std::pin::pin!(stream);
        // Ends (and the waits on it time out) if the watch breaks.
        while let Some(Ok(ev)) = stream.next().await {
            let l = match ev {
                WatchEvent::Added(l) | WatchEvent::Modified(l) => l,
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Deleted(_) | WatchEvent::Error(_) => return,
            };
            let spec = l.spec.unwrap_or_default();
            out.lock().expect("lock").push(LeaseRecord {
                holder: spec.holder_identity.unwrap_or_default(),
                acquired: seconds(spec.acquire_time.as_ref()),
                renewed: seconds(spec.renew_time.as_ref()),
            });
        }
    });
    h
}

/// Waits until the Lease passes from `from` to another holder; returns the
/// last record `from` wrote and the first of the new holder.
async fn takeover(
    lease: &Arc<Mutex<Vec<LeaseRecord>>>,
    from: &str,
    limit: Duration,
) -> (Vec<LeaseRecord>, LeaseRecord) {
    wait_for(
        &format!("a takeover of the Lease from {from}"),
        limit,
        || async {
            let g = lease.lock().expect("lock");
            let last_own = g.iter().rposition(|r| r.holder == from)?;
            let new = g[last_own..]
                .iter()
                .find(|r| !r.holder.is_empty() && r.holder != from)?;
            Some((g[..=last_own].to_vec(), new.clone()))
        },
    )
    .await
}

/// How late the Lease holder's renewals came, at worst, over their period:
/// this machine's load as the replicas feel it.
fn renewal_lateness(records: &[LeaseRecord], holder: &str) -> f64 {
    let own: Vec<f64> = records
        .iter()
        .filter(|r| r.holder == holder)
        .map(|r| r.renewed)
        .collect();
    own.windows(2)
        .map(|w| w[1] - w[0] - RETRY)
        .fold(0.0, f64::max)
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
    let history = watch_history(Api::namespaced(client.clone(), "default"));
    let lease = watch_lease(Api::namespaced(client, "default"));

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
        let first_id = format!("replica-{first}");
        signal(&replicas[first].proc.child, "-KILL");
        let killed = Instant::now();
        let survivors: Vec<&Replica> = (0..3)
            .filter(|i| *i != first)
            .map(|i| &replicas[i])
            .collect();
        let (old, new) = takeover(&lease, &first_id, WAIT).await;
        let final_renewal = old.last().expect("a record of the killed holder");
        // Not before the lease: from the Lease's own timestamps (written by
        // the replicas on this machine's clock), whatever the load.
        assert!(
            new.acquired - final_renewal.renewed >= LEASE - ROUNDING,
            "{} took the Lease {:.3} s after {first_id}'s last renewal, within the {LEASE} s lease",
            new.holder,
            new.acquired - final_renewal.renewed
        );
        // Soon after: the survivors notice within a retry period, a slot
        // frees within a pod's run, plus what this machine's load adds —
        // measured as the worst lateness of the killed leader's renewals
        // (tripled), at least two seconds.
        let load = (3.0 * renewal_lateness(&old, &first_id)).max(2.0);
        let bound = Duration::from_secs_f64(LEASE + 2.0 * RETRY + RUN_SECONDS + load);
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
        let second_id = new.holder.clone();
        signal(&second_r.proc.child, "-TERM");
        let termed = Instant::now();
        let (old, new) = takeover(&lease, &second_id, WAIT).await;
        let released = lease
            .lock()
            .expect("lock")
            .iter()
            .any(|r| r.holder.is_empty());
        assert!(released, "{second_id} released the Lease on SIGTERM");
        // Sooner than an expiry could give it: the last renewal before the
        // release plus the lease duration is the earliest takeover without
        // the release (a retry period after it is the expected one; the
        // rest of the lease is the margin for load).
        let final_renewal = old.last().expect("a record of the stopped holder");
        assert!(
            new.acquired - final_renewal.renewed < LEASE,
            "{} took the Lease {:.3} s after {second_id}'s last renewal: no faster than an expiry",
            new.holder,
            new.acquired - final_renewal.renewed
        );
        let load = (3.0 * renewal_lateness(&old, &second_id)).max(2.0);
        let bound = Duration::from_secs_f64(2.0 * RETRY + RUN_SECONDS + load);
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
