//! The dedup record (`src/cluster/dedup.rs`) at GitHub's redelivery window:
//!
//! First, once, against the Kubernetes API simulator (printed, not timed by
//! criterion): 100,000 keys a day kept 72 hours — 72 hourly shards of
//! 4,167 keys — written through the real `Recorder` (batches of 256), then
//! the objects' count and bytes as the API server returns them, the API
//! calls of one flush carrying one key (what a lone accepted task costs),
//! and a fresh replica's start-up read of the whole record (calls, time,
//! memory).
//!
//! Then criterion: `contains` (the intake's lookup) and `record` (an
//! accepted key) with 100,000 and 1,000,000 keys held, and a shard's
//! `decode` + `merge` + `encode` (one write's CPU) at 4,167 keys. Memory
//! per key is measured with a counting allocator.
//!
//! Run: `cargo bench --bench dedup_record`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube_api_sim::{SimConfig, SimServer};
use orchestrator::cluster::dedup::{
    decode, encode, merge, shard_seconds, DedupRecord, Recorder, FLUSH_BATCH, SHARD_LABEL,
};
use orchestrator::cluster::kube_actor::KubeGate;
use orchestrator::cluster::lease::Leader;
use orchestrator::metrics::Metrics;

#[path = "support/counting.rs"]
mod counting;

const RETENTION: u64 = 259_200;
const PER_DAY: u64 = 100_000;
const HOURS: u64 = 72;

/// Pseudo-random distinct hashes (splitmix64).
fn hashes(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect()
}

/// A record holding `n` keys, and the bytes it allocated for them.
fn filled(n: usize) -> (DedupRecord, usize) {
    let keys = hashes(n, 7);
    let before = counting::live();
    let r = DedupRecord::new(Duration::from_secs(RETENTION));
    let now = chrono::Utc::now().timestamp();
    for chunk in keys.chunks(4_167) {
        r.load(now, chunk);
    }
    let bytes = counting::live() - before;
    (r, bytes)
}

/// The Kubernetes calls counted so far (all verbs and outcomes).
fn kube_calls(m: &Metrics) -> u64 {
    m.encode()
        .lines()
        .filter(|l| l.starts_with("orchestrator_kube_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn on_the_simulator() {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return eprintln!("no runtime: {e}"),
    };
    rt.block_on(async {
        let sim = SimServer::start_local(SimConfig::default()).expect("the simulator starts");
        let client = sim.client().await.expect("a client");
        let metrics = Metrics::new();
        let gate = KubeGate::new(client.clone(), 100_000, 100_000, metrics.clone());
        let record = DedupRecord::new(Duration::from_secs(RETENTION));
        let width = shard_seconds(RETENTION);
        let writer = Recorder::new(
            &gate,
            "default",
            record.clone(),
            Leader::new("bench"),
            metrics.clone(),
        );
        let per_shard = (PER_DAY / 24) as usize + 1;
        let now = chrono::Utc::now().timestamp();
        let first = now - now.rem_euclid(width) - (HOURS as i64 - 1) * width;
        let started = Instant::now();
        for h in 0..HOURS {
            let keys = hashes(per_shard, 1_000 + h);
            for batch in keys.chunks(FLUSH_BATCH) {
                let mut b = batch.to_vec();
                b.sort_unstable();
                writer
                    .write(first + h as i64 * width, &b)
                    .await
                    .expect("a shard write");
            }
        }
        let wrote = started.elapsed();
        let batches = HOURS as usize * per_shard.div_ceil(FLUSH_BATCH);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let list = api
            .list(&ListParams::default().labels(SHARD_LABEL))
            .await
            .expect("list the shards");
        let objects = list.items.len();
        let json: usize = list
            .items
            .iter()
            .map(|c| serde_json::to_vec(c).map(|v| v.len()).unwrap_or(0))
            .sum();
        let binary: usize = list
            .items
            .iter()
            .filter_map(|c| c.binary_data.as_ref()?.get("keys").map(|b| b.0.len()))
            .sum();
        let keys = binary / 8;
        println!("dedup_record on the simulator: {keys} keys ({PER_DAY}/day × {HOURS} h) in {objects} shard objects");
        println!(
            "  bytes: {binary} B of records ({:.1} MB), {json} B as JSON objects with metadata ({:.1} MB; etcd stores binaryData raw in protobuf, so ≈ records + {} B metadata)",
            binary as f64 / 1e6,
            json as f64 / 1e6,
            objects * 350,
        );
        println!(
            "  writes: {batches} batches of ≤{FLUSH_BATCH} keys, {:.1} ms each (GET + update of a shard up to {:.0} KB)",
            wrote.as_secs_f64() * 1e3 / batches as f64,
            per_shard as f64 * 8.0 / 1e3
        );
        // One flush carrying one key, into a full hour's shard.
        let before = kube_calls(&metrics);
        let lone = hashes(100, 99);
        let t = Instant::now();
        for k in &lone {
            writer
                .write(first + (HOURS as i64 - 1) * width, &[*k])
                .await
                .expect("a write");
        }
        let per = (kube_calls(&metrics) - before) as f64 / lone.len() as f64;
        println!(
            "  a flush carrying one key: {per:.1} API calls, {:.1} ms (at 100,000/day ≈ 1.2 keys/s, about one flush a second; ≥256 keys/s: 2 calls per 256 keys)",
            t.elapsed().as_secs_f64() * 1e3 / lone.len() as f64
        );
        // A fresh replica's start: list the shards' metadata, GET each.
        let fresh = DedupRecord::new(Duration::from_secs(RETENTION));
        let fresh_metrics = Metrics::new();
        let fresh_gate = KubeGate::new(client, 100_000, 100_000, fresh_metrics.clone());
        let mut reader = Recorder::new(
            &fresh_gate,
            "default",
            fresh.clone(),
            Leader::new("bench-2"),
            fresh_metrics.clone(),
        );
        let mem = counting::live();
        let t = Instant::now();
        reader.refresh().await;
        let took = t.elapsed();
        let held = counting::live().saturating_sub(mem);
        println!(
            "  a replica's start-up read: {} keys, {} API calls, {:.0} ms, {:.1} MB held ({:.1} B a key)",
            fresh.len(),
            kube_calls(&fresh_metrics),
            took.as_secs_f64() * 1e3,
            held as f64 / 1e6,
            held as f64 / fresh.len().max(1) as f64
        );
        let t = Instant::now();
        reader.refresh().await;
        println!(
            "  a periodic refresh with nothing changed: {} API calls in all so far (one metadata list), {:.1} ms",
            kube_calls(&fresh_metrics),
            t.elapsed().as_secs_f64() * 1e3
        );
    });
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("dedup_record");
    let now = chrono::Utc::now().timestamp();
    for n in [100_000usize, 1_000_000] {
        let (r, bytes) = filled(n);
        println!(
            "dedup_record: {n} keys held in {:.1} MB ({:.1} B a key)",
            bytes as f64 / 1e6,
            bytes as f64 / n as f64
        );
        let keys: Vec<String> = (0..1024).map(|i| format!("github:delivery:{i}")).collect();
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("contains_miss", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(r.contains(black_box(&keys[i]), now))
            })
        });
        let hit = hashes(1, 7)[0];
        g.bench_with_input(BenchmarkId::new("contains_hit_hash", n), &n, |b, _| {
            b.iter(|| black_box(r.contains_hash(black_box(hit), now)))
        });
        let mut k = 0u64;
        g.bench_with_input(BenchmarkId::new("record_new_key", n), &n, |b, _| {
            b.iter(|| {
                k += 1;
                r.record(&format!("github:new:{k}"), now)
            })
        });
    }
    let shard = {
        let mut s = hashes(4_167, 3);
        s.sort_unstable();
        s
    };
    let bytes = encode(&shard);
    let add = {
        let mut a = hashes(256, 4);
        a.sort_unstable();
        a
    };
    g.bench_function("shard_decode_merge_encode_4167", |b| {
        b.iter(|| black_box(encode(&merge(&decode(black_box(&bytes)), &add))))
    });
    g.finish();
}

criterion_group!(benches, lookups);

fn main() {
    on_the_simulator();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
