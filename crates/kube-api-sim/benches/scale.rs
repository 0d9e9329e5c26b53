//! How the simulator's memory and its cost per create grow with the Jobs it
//! stores: the service's own Job (`benches/fixtures/service-job.json`,
//! captured from one task of the service, about 6 KB of JSON as sent),
//! created suspended with a Job watch open (a raw HTTP watch from the current
//! resourceVersion with the service's label selector, read and discarded), as
//! the service runs against it.
//!
//! Run: `cargo bench -p kube-api-sim --bench scale`. It prints one row per
//! milestone (1,000, 10,000, 50,000 and 100,000 stored Jobs unless
//! `SIM_SCALE_MILESTONES=1000,10000` says otherwise) and, with
//! `SIM_SCALE_JSON=path`, writes the rows as JSON (`benches/run.sh` does).
//!
//! - **memory**: the process's resident set (`VmRSS`) and glibc's live heap
//!   (`mallinfo2`), each minus the same figure after start-up and a warm-up
//!   of 200 creates, divided by the Jobs stored. Each Job brings its
//!   `Suspended` Event (the Job controller's, as on a real cluster; at most
//!   10,000 are kept) and its changes in the watch history (the last
//!   20,000), so "per Job" counts all of that.
//!   The marginal figure is the growth from the previous milestone divided
//!   by the Jobs added since.
//! - **create cost**: at each milestone the last 1,000 creates, 16 in
//!   flight (the 1,000 themselves at the first milestone), in five slices
//!   of 200, each timed until the watch has seen its last Job modified by
//!   the Job controller (status and Event written): wall time per create,
//!   and the CPU time of the simulator's threads per create (the bench's
//!   client threads are not counted), the median slice of five. Compare
//!   the ratios to the 1k row; the machine's load moves the absolute
//!   figures.
//!
//! Every wait is bounded; a run whose resident set passes 6 GiB stops there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const FIXTURE: &str = include_str!("fixtures/service-job.json");
const DEFAULT_MILESTONES: [usize; 4] = [1_000, 10_000, 50_000, 100_000];
/// Creates timed at each milestone, in slices.
const WINDOW: usize = 1_000;
const SLICE: usize = 200;
const IN_FLIGHT: usize = 16;
const WARM_UP: usize = 200;
/// Bound for one step (a fill of up to 50,000 creates included).
const STEP: Duration = Duration::from_secs(900);
/// The bench stops adding Jobs past this resident set.
const RSS_CAP: u64 = 6 << 30;
/// The thread-name prefix of the bench's own (client) runtime.
const CLIENT_THREADS: &str = "bench-client";

/// Counts the `ADDED` and `MODIFIED` events the watch has read: each
/// Job is added, then modified once by the Job controller (its
/// `Suspended` condition, written after its Event).
struct Seen {
    added: AtomicU64,
    modified: AtomicU64,
    wake: Notify,
}

/// One row of the report.
#[derive(Debug, serde::Serialize)]
struct Row {
    jobs: usize,
    rss_mb: f64,
    heap_mb: Option<f64>,
    rss_kb_per_job: f64,
    heap_kb_per_job: Option<f64>,
    marginal_rss_kb_per_job: Option<f64>,
    marginal_heap_kb_per_job: Option<f64>,
    create_wall_ms: f64,
    create_cpu_ms: f64,
    objects: usize,
    history: usize,
}

fn main() {
    let milestones: Vec<usize> = std::env::var("SIM_SCALE_MILESTONES")
        .ok()
        .map(|s| {
            s.split(',')
                .map(|m| m.trim().parse().expect("SIM_SCALE_MILESTONES: numbers"))
                .collect()
        })
        .unwrap_or_else(|| DEFAULT_MILESTONES.to_vec());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut config = SimConfig::default();
    let most = milestones.iter().copied().max().unwrap_or(0) + WINDOW + WARM_UP;
    // Room for every Job and its Event, whatever the store bounds itself.
    config.limits.max_objects = config.limits.max_objects.max(3 * most);
    let server = SimServer::start_local(config).expect("simulator");
    let rows = rt.block_on(run(&server, &milestones));
    print_rows(&server, &rows);
    let (objects, body_bytes, dict_bytes) = server.store().footprint();
    println!(
        "stored: {objects} objects, {:.0} B of compressed JSON each on average, \
         {:.1} KB of compression dictionaries",
        body_bytes as f64 / objects.max(1) as f64,
        dict_bytes as f64 / 1024.0
    );
    if let Ok(path) = std::env::var("SIM_SCALE_JSON") {
        let doc = json!({
            "bench": "kube-api-sim scale",
            "job_bytes_as_sent": job_body(0).len(),
            "stored_job_bytes": rt.block_on(stored_bytes(&server, "jobs")),
            "stored_event_bytes": rt.block_on(stored_bytes(&server, "events")),
            "window": WINDOW,
            "in_flight": IN_FLIGHT,
            "history_limit": server.store().limits.history,
            "max_events": server.store().limits.max_events,
            "event_ttl_s": server.store().limits.event_ttl.as_secs(),
            "objects": objects,
            "compressed_json_bytes": body_bytes,
            "dictionary_bytes": dict_bytes,
            "rows": rows,
        });
        let text = serde_json::to_string_pretty(&doc).expect("JSON");
        std::fs::write(&path, text).expect("write SIM_SCALE_JSON");
        println!("written {path}");
    }
    drop(rt);
    server.stop();
}

fn job_body(i: usize) -> Vec<u8> {
    let mut job: Value = serde_json::from_str(FIXTURE).expect("fixture");
    let meta = job["metadata"].as_object_mut().expect("fixture metadata");
    meta.remove("generateName");
    meta.insert("name".into(), json!(format!("task-{i:07}")));
    serde_json::to_vec(&job).expect("JSON")
}

async fn run(server: &SimServer, milestones: &[usize]) -> Vec<Row> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("HTTP client");
    let url = format!("{}/apis/batch/v1/namespaces/default/jobs", server.url());
    let mut created = 0usize;
    create(&http, &url, &mut created, WARM_UP).await;
    settle(server).await;
    let seen = Arc::new(Seen {
        added: AtomicU64::new(0),
        modified: AtomicU64::new(0),
        wake: Notify::new(),
    });
    let rv = server.store().current_rv();
    let watch = tokio::spawn(watcher(server.addr(), rv, seen.clone()));
    let warm = created;
    let (rss0, heap0) = (rss_bytes(), heap_bytes());
    let mut rows: Vec<Row> = Vec::new();
    for &m in milestones {
        let to_go = (m + warm).saturating_sub(created);
        let window = to_go.min(WINDOW);
        create(&http, &url, &mut created, to_go - window).await;
        done(server, &seen, created - warm).await;
        // The window in slices, each timed until the controller has
        // written its last Job's status; the median slice is reported
        // (a slice that met another process's burst on this shared
        // machine is not).
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        let mut left = window;
        while left > 0 {
            let n = left.min(SLICE);
            let (cpu0, t0) = (sim_cpu(), Instant::now());
            create(&http, &url, &mut created, n).await;
            wait_watch(&seen, (created - warm) as u64).await;
            let (cpu, wall) = (sim_cpu() - cpu0, t0.elapsed());
            walls.push(wall.as_secs_f64() * 1000.0 / n as f64);
            cpus.push(cpu.as_secs_f64() * 1000.0 / n as f64);
            settle(server).await;
            left -= n;
        }
        let jobs = created - warm;
        let (rss, heap) = (rss_bytes(), heap_bytes());
        let per =
            |now: u64, base: u64, n: usize| now.saturating_sub(base) as f64 / 1024.0 / n as f64;
        let prev = rows.last();
        let (objects, history) = server.store().sizes();
        let row = Row {
            jobs,
            rss_mb: rss as f64 / 1048576.0,
            heap_mb: heap.map(|h| h as f64 / 1048576.0),
            rss_kb_per_job: per(rss, rss0, jobs),
            heap_kb_per_job: heap.zip(heap0).map(|(h, h0)| per(h, h0, jobs)),
            marginal_rss_kb_per_job: prev
                .map(|p| per(rss, (p.rss_mb * 1048576.0) as u64, jobs - p.jobs)),
            marginal_heap_kb_per_job: prev.and_then(|p| {
                let ph = (p.heap_mb? * 1048576.0) as u64;
                heap.map(|h| per(h, ph, jobs - p.jobs))
            }),
            create_wall_ms: median(&mut walls),
            create_cpu_ms: median(&mut cpus),
            objects,
            history,
        };
        eprintln!("scale: {row:?}");
        rows.push(row);
        if rss > RSS_CAP {
            eprintln!(
                "scale: resident set past {} GiB: stopping here",
                RSS_CAP >> 30
            );
            break;
        }
    }
    watch.abort();
    rows
}

/// Creates `n` more Jobs, `IN_FLIGHT` at a time.
async fn create(http: &reqwest::Client, url: &str, created: &mut usize, n: usize) {
    let from = *created;
    let step = tokio::time::timeout(
        STEP,
        futures::stream::iter(from..from + n)
            .map(|i| async move {
                let resp = http
                    .post(url)
                    .header("Content-Type", "application/json")
                    .body(job_body(i))
                    .send()
                    .await
                    .expect("create request");
                let code = resp.status().as_u16();
                let body = resp.bytes().await.expect("create answer");
                assert_eq!(
                    code,
                    201,
                    "create answered {code}: {}",
                    String::from_utf8_lossy(&body)
                );
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<()>>(),
    )
    .await;
    step.unwrap_or_else(|_| panic!("{n} creates took longer than {STEP:?}"));
    *created += n;
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Waits until the watch has seen `jobs` Jobs added and modified by the
/// controller, then until the simulator is idle.
async fn done(server: &SimServer, seen: &Seen, jobs: usize) {
    wait_watch(seen, jobs as u64).await;
    settle(server).await;
}

/// Waits until the simulator is idle: its resourceVersion has not moved for
/// 100 ms (the Job controller has written every status and Event).
async fn settle(server: &SimServer) {
    let deadline = Instant::now() + STEP;
    let mut last = server.store().current_rv();
    let mut quiet = 0;
    while quiet < 4 {
        assert!(Instant::now() < deadline, "the simulator did not settle");
        tokio::time::sleep(Duration::from_millis(25)).await;
        let rv = server.store().current_rv();
        quiet = if rv == last { quiet + 1 } else { 0 };
        last = rv;
    }
}

/// Waits until the watch has seen `target` Jobs added and modified.
async fn wait_watch(seen: &Seen, target: u64) {
    let behind = || {
        seen.added.load(Ordering::Relaxed) < target
            || seen.modified.load(Ordering::Relaxed) < target
    };
    let waited = tokio::time::timeout(STEP, async {
        while behind() {
            seen.wake.notified().await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| {
        panic!(
            "the watch saw {} of {target} Jobs added, {} modified",
            seen.added.load(Ordering::Relaxed),
            seen.modified.load(Ordering::Relaxed)
        )
    });
}

/// A raw HTTP watch of the service's Jobs from `rv`, counting `ADDED`
/// and `MODIFIED`.
async fn watcher(addr: std::net::SocketAddr, rv: u64, seen: Arc<Seen>) {
    const MARKS: [(&[u8], bool); 2] = [
        (b"{\"type\":\"ADDED\"", true),
        (b"{\"type\":\"MODIFIED\"", false),
    ];
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /apis/batch/v1/namespaces/default/jobs?watch=true&allowWatchBookmarks=true\
         &resourceVersion={rv}&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dorchestrator \
         HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send watch");
    let mut buf = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // Each event is one line (chunk sizes are lines of their own);
        // count the events whose line is whole.
        let mut from = 0;
        while let Some(p) = buf[from..].iter().position(|b| *b == b'\n') {
            let line = &buf[from..from + p];
            for (mark, added) in MARKS {
                if line.starts_with(mark) {
                    let counter = if added { &seen.added } else { &seen.modified };
                    counter.fetch_add(1, Ordering::Relaxed);
                    seen.wake.notify_one();
                }
            }
            from += p + 1;
        }
        buf.drain(..from);
    }
}

/// The size of the newest stored object of `plural` as the server sends it.
async fn stored_bytes(server: &SimServer, plural: &str) -> usize {
    let group = if plural == "jobs" {
        "apis/batch/v1"
    } else {
        "api/v1"
    };
    let url = format!(
        "{}/{group}/namespaces/default/{plural}?limit=1",
        server.url()
    );
    let list: Value = reqwest::get(url)
        .await
        .expect("list")
        .json()
        .await
        .expect("list JSON");
    serde_json::to_vec(&list["items"][0]).map_or(0, |v| v.len())
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes glibc's allocator holds for live allocations.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_bytes() -> Option<u64> {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    Some((m.uordblks + m.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_bytes() -> Option<u64> {
    None
}

/// CPU time (user + system) of every thread but the bench's own client's.
fn sim_cpu() -> Duration {
    let tick = 1.0 / 100.0; // USER_HZ
    let mut secs = 0.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for t in tasks.flatten() {
        let path = t.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(CLIENT_THREADS) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields 14 and 15 of stat (utime, stime); `rest` starts at field 3.
        secs += (ticks(11) + ticks(12)) * tick;
    }
    Duration::from_secs_f64(secs)
}

fn print_rows(server: &SimServer, rows: &[Row]) {
    println!(
        "kube-api-sim scale: the service's Job ({} B as sent), suspended, a Job watch open; \
         history limit {} changes",
        job_body(0).len(),
        server.store().limits.history
    );
    println!(
        "{:>8} {:>9} {:>9} {:>10} {:>11} {:>10} {:>11} {:>10} {:>10} {:>9} {:>8}",
        "jobs",
        "RSS MB",
        "heap MB",
        "RSS KB/j",
        "heap KB/j",
        "+RSS KB/j",
        "+heap KB/j",
        "wall ms/c",
        "CPU ms/c",
        "objects",
        "history"
    );
    let base = rows.first();
    for r in rows {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:>8} {:>9.1} {:>9} {:>10.1} {:>11} {:>10} {:>11} {:>10.3} {:>9.3} {:>9} {:>8}",
            r.jobs,
            r.rss_mb,
            opt(r.heap_mb),
            r.rss_kb_per_job,
            opt(r.heap_kb_per_job),
            opt(r.marginal_rss_kb_per_job),
            opt(r.marginal_heap_kb_per_job),
            r.create_wall_ms,
            r.create_cpu_ms,
            r.objects,
            r.history,
        );
    }
    if let (Some(b), Some(l)) = (base, rows.last()) {
        println!(
            "create cost at {} vs {} Jobs: wall {:.2}x, CPU {:.2}x",
            l.jobs,
            b.jobs,
            l.create_wall_ms / b.create_wall_ms,
            l.create_cpu_ms / b.create_cpu_ms
        );
    }
}
