//! The Job watch over tenant namespaces: one watch per namespace (what the
//! service does, `src/cluster/metered.rs`) against one cluster-wide watch
//! (what a ClusterRole would allow), measured against the Kubernetes API
//! simulator in this process, for 1, 10, 50 and 100 namespaces holding
//! 10 managed Jobs each:
//!
//! - the initial list: API requests, time to every namespace's `InitDone`;
//! - memory held by the open watches once synced (a counting allocator:
//!   the client's streams and the simulator's watch state — both sides of
//!   each connection — not the Jobs themselves, listed already);
//! - 1,000 Job changes spread over the namespaces: time and process CPU
//!   (user + system, from `/proc/self/stat`: client and simulated API
//!   server) until the watch delivered every one.
//!
//! Each figure is printed with its ratio to the cluster-wide watch of the
//! same run. Run: `cargo bench --bench namespace_watch`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube_api_sim::{SimConfig, SimServer};
use orchestrator::cluster::jobspec::MANAGED_SELECTOR;
use orchestrator::cluster::kube_actor::KubeGate;
use orchestrator::cluster::metered::{job_events, JobEvents, WatchHealth};
use orchestrator::cluster::slim::SlimJob;
use orchestrator::metrics::Metrics;
use serde_json::json;

#[path = "support/counting.rs"]
mod counting;

const JOBS_PER_NAMESPACE: usize = 10;
const CHANGES: usize = 1_000;
/// How long any phase may take before the bench gives up.
const LIMIT: Duration = Duration::from_secs(120);

/// CPU time of this process so far (user + system), from `/proc/self/stat`.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the state).
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The list and watch requests answered so far (the metered client counts them).
fn requests(m: &Metrics, verb: &str) -> u64 {
    m.encode()
        .lines()
        .filter(|l| {
            l.starts_with("orchestrator_kube_requests_total{")
                && l.contains(&format!("verb=\"{verb}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "orchestrator"}},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "agent", "image": "busybox"}]}}}
    }))
    .expect("a Job")
}

/// A simulator with `n` namespaces of [`JOBS_PER_NAMESPACE`] suspended
/// managed Jobs each.
async fn cluster(n: usize) -> (SimServer, kube::Client, Vec<String>) {
    let sim = SimServer::start_local(SimConfig::default()).expect("the simulator starts");
    let client = sim.client().await.expect("a client");
    let namespaces: Vec<String> = (0..n).map(|i| format!("tenant-{i}")).collect();
    for ns in &namespaces {
        let body: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).expect("a namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &body)
            .await
            .expect("create a namespace");
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        for j in 0..JOBS_PER_NAMESPACE {
            jobs.create(&PostParams::default(), &job(&format!("job-{j}")))
                .await
                .expect("create a Job");
        }
    }
    (sim, client, namespaces)
}

/// What one way of watching cost.
struct Cost {
    sync: Duration,
    lists: u64,
    watches: u64,
    held: usize,
    changes: Duration,
    cpu: Duration,
}

/// The watches the simulator has open (`/_sim/stats`).
async fn open_watches(sim: &SimServer) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", sim.url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON");
    stats["open_watches"].as_u64().unwrap_or(0)
}

/// Consumes `events` until `expect_inits` namespaces (or the one
/// cluster-wide watch) finished their list and the simulator has that
/// many watches open; then makes [`CHANGES`] Job changes and consumes
/// until each was delivered.
async fn measure(
    mut events: JobEvents,
    expect_inits: usize,
    sim: &SimServer,
    client: &kube::Client,
    namespaces: &[String],
    metrics: &Metrics,
) -> Cost {
    let before = counting::live();
    let t = Instant::now();
    let mut done: HashSet<Arc<str>> = HashSet::new();
    while done.len() < expect_inits {
        let next = tokio::time::timeout(LIMIT, events.next()).await;
        let Ok(Some((ns, ev))) = next else {
            panic!("the watch ended or stalled before its list");
        };
        if let Ok(watcher::Event::InitDone) = ev {
            done.insert(ns);
        }
    }
    let sync = t.elapsed();
    // The watch requests follow the lists: wait until all are open (the
    // stream is polled meanwhile, so they make progress).
    let until = Instant::now() + LIMIT;
    while open_watches(sim).await < expect_inits as u64 {
        assert!(Instant::now() < until, "the watches did not open");
        let _ = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
    }
    let held = counting::live().saturating_sub(before);
    let (lists, watches) = (requests(metrics, "list"), requests(metrics, "watch"));
    let pp = PatchParams::default();
    let (t, c) = (Instant::now(), cpu());
    let mut seen = 0;
    for i in 0..CHANGES {
        let ns = &namespaces[i % namespaces.len()];
        let name = format!("job-{}", (i / namespaces.len()) % JOBS_PER_NAMESPACE);
        let patch =
            Patch::Merge(json!({"metadata": {"annotations": {"bench/change": i.to_string()}}}));
        Api::<Job>::namespaced(client.clone(), ns)
            .patch(&name, &pp, &patch)
            .await
            .expect("patch a Job");
        // Drain what already arrived (bounded: the watch keeps up).
        while let Some(Some((_, Ok(watcher::Event::Apply(_))))) =
            futures::FutureExt::now_or_never(events.next())
        {
            seen += 1;
        }
    }
    while seen < CHANGES {
        let next = tokio::time::timeout(LIMIT, events.next()).await;
        match next {
            Ok(Some((_, Ok(watcher::Event::Apply(_))))) => seen += 1,
            Ok(Some(_)) => {}
            _ => panic!("the watch stalled after {seen} of {CHANGES} changes"),
        }
    }
    Cost {
        sync,
        lists,
        watches,
        held,
        changes: t.elapsed(),
        cpu: cpu().saturating_sub(c),
    }
}

/// The service's way: one metered watch per namespace.
async fn per_namespace(n: usize) -> Cost {
    let (sim, client, namespaces) = cluster(n).await;
    let kc = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let metrics = Metrics::new();
    let gate = KubeGate::new(client.clone(), 100_000, 100_000, metrics.clone());
    let health = Arc::new(WatchHealth::default());
    let events = job_events(&gate, config, &namespaces, health).expect("the watch");
    let cost = measure(events, n, &sim, &client, &namespaces, &metrics).await;
    sim.stop();
    cost
}

/// One watch over every namespace (`Api::all`, a ClusterRole's reach), on
/// the same metered client, its events tagged alike.
async fn cluster_wide(n: usize) -> Cost {
    let (sim, client, namespaces) = cluster(n).await;
    let kc = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    // A plain client with the same config (no rate bound is hit at these
    // rates): one list and one watch request.
    let plain = kube::Client::try_from(config).expect("client");
    let api: Api<SlimJob> = Api::all(plain);
    let cfg = watcher::Config::default()
        .labels(MANAGED_SELECTOR)
        .timeout(orchestrator::cluster::metered::WATCH_TIMEOUT_SECONDS);
    let all: Arc<str> = "".into();
    let events: JobEvents = watcher(api, cfg)
        .default_backoff()
        .map(move |e| (all.clone(), e))
        .boxed();
    let mut cost = measure(events, 1, &sim, &client, &namespaces, &Metrics::new()).await;
    (cost.lists, cost.watches) = (1, 1);
    sim.stop();
    cost
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "namespace_watch: {JOBS_PER_NAMESPACE} Jobs per namespace, {CHANGES} changes; per-namespace watches (the service) vs one cluster-wide watch"
    );
    println!(
        "{:>10} | {:>26} | {:>8} | {:>22} | {:>24} | {:>22}",
        "namespaces",
        "mode",
        "requests",
        "sync ms (ratio)",
        "held KB (ratio)",
        "changes: ms / CPU ms"
    );
    for n in [1usize, 10, 50, 100] {
        let wide = rt.block_on(cluster_wide(n));
        let per = rt.block_on(per_namespace(n));
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        for (mode, c) in [
            ("cluster-wide (1 watch)", &wide),
            ("per namespace (N watches)", &per),
        ] {
            println!(
                "{:>10} | {:>26} | {:>8} | {:>10.1} ({:>6.2}x) | {:>12.1} ({:>6.2}x) | {:>8.0} / {:>8.0}",
                n,
                mode,
                format!("{}+{}", c.lists, c.watches),
                c.sync.as_secs_f64() * 1e3,
                ratio(c.sync.as_secs_f64(), wide.sync.as_secs_f64()),
                c.held as f64 / 1024.0,
                ratio(c.held as f64, wide.held as f64),
                c.changes.as_secs_f64() * 1e3,
                c.cpu.as_secs_f64() * 1e3,
            );
        }
    }
}
