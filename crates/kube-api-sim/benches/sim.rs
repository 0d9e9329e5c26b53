//! How fast the in-process API server simulator is, so that load benches can
//! show it is not their bottleneck.
//!
//! Run: `cargo bench --bench sim -- --warm-up-time 1 --measurement-time 5`.
//!
//! - `creates/job_*` and `creates/configmap_*`: creates through the real
//!   `kube` client, one at a time (latency-bound) and 16 in flight; the
//!   ConfigMap figures are the baseline (no Job validation, defaulting or
//!   controller work). Criterion prints creates per second as `elem/s`.
//! - `fanout/one_event_to_1000_watchers`: 1,000 raw HTTP watches stay open on
//!   the jobs collection; one iteration creates one Job and ends when every
//!   watcher has read its `ADDED` event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::Api;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const WATCHERS: usize = 1_000;
/// Bound for any single step; a bench that stalls fails instead of hanging.
const STEP: Duration = Duration::from_secs(30);

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))
    .expect("job fixture")
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("configmap fixture")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("bench step timed out after {STEP:?}: {what}"))
}

/// Creates `iters` objects with `in_flight` requests at a time.
async fn create_many<F, Fut>(iters: u64, in_flight: usize, create: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    futures::stream::iter(0..iters)
        .map(&create)
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
    start.elapsed()
}

/// A simulator whose object limit does not end a long measurement: criterion
/// may run ~100k creates per function, and each suspended Job also gets an
/// Event, while the default `Limits::max_objects` is 200,000.
fn simulator() -> SimServer {
    let mut config = SimConfig::default();
    config.limits.max_objects = 2_000_000;
    SimServer::start_local(config).expect("simulator")
}

fn creates(c: &mut Criterion) {
    let rt = runtime();
    let pp = &PostParams::default();
    let mut g = c.benchmark_group("creates");
    g.throughput(Throughput::Elements(1));
    for in_flight in [1, 16] {
        // A fresh simulator per function keeps the store size comparable.
        let server = simulator();
        let jobs = &Api::<Job>::default_namespaced(rt.block_on(server.client()).expect("client"));
        g.bench_function(format!("job_{in_flight}_in_flight"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(create_many(iters, in_flight, move |_| async move {
                    let r = bounded("create job", jobs.create(pp, &job(&unique("job")))).await;
                    r.expect("create job");
                }))
            })
        });
        server.stop();
        let server = simulator();
        let cms =
            &Api::<ConfigMap>::default_namespaced(rt.block_on(server.client()).expect("client"));
        g.bench_function(format!("configmap_{in_flight}_in_flight"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(create_many(iters, in_flight, move |_| async move {
                    let cm = config_map(&unique("cm"));
                    let r = bounded("create configmap", cms.create(pp, &cm)).await;
                    r.expect("create configmap");
                }))
            })
        });
        server.stop();
    }
    g.finish();
}

/// Counts `ADDED` events across all watchers and wakes the bench on each.
struct Seen {
    added: AtomicU64,
    wake: Notify,
}

/// Opens one raw HTTP/1.1 watch and counts the `ADDED` events it reads.
/// Each event is one chunk, so its text is contiguous in the byte stream.
async fn raw_watcher(addr: std::net::SocketAddr, seen: Arc<Seen>, opened: Arc<Seen>) {
    const MARK: &[u8] = b"{\"type\":\"ADDED\"";
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /apis/batch/v1/namespaces/default/jobs?watch=true HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send watch");
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut headers_done = false;
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if !headers_done {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            assert!(buf.starts_with(b"HTTP/1.1 200"), "watch refused");
            headers_done = true;
            buf.drain(..end + 4);
            opened.added.fetch_add(1, Ordering::Relaxed);
            opened.wake.notify_one();
        }
        let mut from = 0;
        while let Some(p) = buf[from..].windows(MARK.len()).position(|w| w == MARK) {
            from += p + MARK.len();
            seen.added.fetch_add(1, Ordering::Relaxed);
            seen.wake.notify_one();
        }
        // Keep a tail that may hold the start of a split marker.
        let keep = buf.len().saturating_sub(from).min(MARK.len() - 1);
        buf.drain(..buf.len() - keep);
    }
}

async fn wait_for(seen: &Seen, target: u64, what: &str) {
    bounded(what, async {
        while seen.added.load(Ordering::Relaxed) < target {
            seen.wake.notified().await;
        }
    })
    .await
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    let server = simulator();
    let jobs: Api<Job> = Api::default_namespaced(rt.block_on(server.client()).expect("client"));
    let new_seen = || {
        Arc::new(Seen {
            added: AtomicU64::new(0),
            wake: Notify::new(),
        })
    };
    let (seen, opened) = (new_seen(), new_seen());
    let tasks: Vec<_> = (0..WATCHERS)
        .map(|_| rt.spawn(raw_watcher(server.addr(), seen.clone(), opened.clone())))
        .collect();
    rt.block_on(wait_for(&opened, WATCHERS as u64, "1,000 watches to open"));
    let mut delivered = 0u64;
    let pp = PostParams::default();
    let mut g = c.benchmark_group("fanout");
    g.sample_size(20);
    g.bench_function("one_event_to_1000_watchers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let r = bounded("create job", jobs.create(&pp, &job(&unique("fan")))).await;
                    r.expect("create job");
                    delivered += WATCHERS as u64;
                    wait_for(&seen, delivered, "ADDED at every watcher").await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.finish();
    let stats: serde_json::Value = rt.block_on(async {
        let url = format!("{}/_sim/stats", server.url());
        let resp = reqwest::get(url).await.expect("stats");
        resp.json().await.expect("stats JSON")
    });
    println!(
        "fanout: open watches at the end: {} (of {WATCHERS})",
        stats["open_watches"]
    );
    for t in tasks {
        t.abort();
    }
    drop(rt);
    server.stop();
}

criterion_group!(benches, creates, fanout);
criterion_main!(benches);
