//! The dedup record: which dedup keys were accepted within the last
//! `DEDUP_RETENTION_SECONDS`, kept in the API server (no database), shared
//! by every replica and surviving restarts. It answers for Tasks whose Job
//! is already deleted (Kubernetes' `ttlSecondsAfterFinished`, the
//! cancelled-Job sweep): while a Job exists, its deterministic name's
//! `409 AlreadyExists` deduplicates; after, only this record does.
//!
//! Format: time shards, ConfigMaps named `orchestrator-dedup-<start>`
//! (`20261207t200000`, UTC; a full shard spills into `…-1`, `…-2`) labelled
//! [`SHARD_LABEL`] = start (Unix seconds), annotated [`SHARD_END`], holding
//! one `binaryData` entry `keys`: the sorted, distinct 8-byte big-endian
//! prefixes of SHA-256(dedup key) ([`key_hash`], [`encode`]), 8 bytes a key.
//! The Job name is not stored: it is derived from the Task
//! (`Task::job_name`), so the intake recomputes it.
//! A shard covers [`shard_seconds`] (an hour at the default retention) and
//! expires `retention` after its end.
//!
//! Writes: [`DedupRecord::record`] notes an accepted key in memory at once
//! and queues it; the [`Recorder`] (a supervised task) writes the queue
//! every [`FLUSH_EVERY`] or at [`FLUSH_BATCH`] keys: per shard a GET, a
//! merge ([`merge`]) and a `replace` bound to the resourceVersion read (or a
//! create); a conflict (another replica wrote the shard) reads and merges
//! again. A failed write keeps the keys queued for the next round.
//!
//! Reads: every [`refresh_every`] each replica lists the shards' metadata
//! (label selector) and GETs only the shards whose resourceVersion changed
//! since it read them, merging their keys into its in-memory map; the Lease
//! holder deletes shards past the retention. `/ready` waits for the first
//! load ([`DedupRecord::loaded`]).
//!
//! Backfill: at each refresh the Lease holder also records the dedup key
//! of every Job in the watch store that the record does not know — keys a
//! replica accepted but could not write before it stopped or died, and Jobs
//! made before the record existed — so a key is lost only if its Job is
//! deleted before any replica wrote it.
//!
//! A 64-bit prefix: with 300,000 keys held, a new key collides with one of
//! them with probability 300,000 / 2^64 ≈ 1.6·10^-14.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use sha2::{Digest, Sha256};

use super::gate::{KubeError, KubeGate};
use super::lease::Leader;
use super::store::JobStore;
use crate::metrics::Metrics;

/// Name prefix of the shards.
pub const SHARD_PREFIX: &str = "orchestrator-dedup-";
/// Label on every shard: the start of the time it covers (Unix seconds).
pub const SHARD_LABEL: &str = "orchestrator.dev/dedup-shard";
/// Annotation of a shard: the end of the time it covers (Unix seconds).
pub const SHARD_END: &str = "orchestrator.dev/dedup-shard-end";
/// The `binaryData` key of a shard's records.
pub const KEYS: &str = "keys";
/// Bytes a key takes in a shard.
pub const RECORD_BYTES: usize = 8;
/// Most keys one shard ConfigMap holds (960,000 bytes, under Kubernetes'
/// 1 MiB object limit with room for the base64 and metadata); more spill
/// into the next part.
pub const SHARD_CAPACITY: usize = 120_000;
/// Most parts of one shard (so at most 7.68 million keys a shard).
const MAX_PARTS: usize = 64;
/// How often queued keys are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Queued keys that start a write before [`FLUSH_EVERY`].
pub const FLUSH_BATCH: usize = 256;
/// Most keys queued for writing; beyond this the oldest are dropped
/// (counted as `dropped`: their Jobs still exist, the API server's `409`
/// covers them until they are deleted).
const MAX_QUEUED: usize = 1_000_000;
/// Reads and writes of one flush or refresh finish within this.
const CALL_BUDGET: Duration = Duration::from_secs(20);
/// Conflicting writes of one shard before the round gives up (the keys stay
/// queued for the next one).
const CONFLICT_TRIES: usize = 8;

/// The key's hash as the record stores it: the first 8 bytes of
/// SHA-256(key), big-endian.
pub fn key_hash(key: &str) -> u64 {
    let d = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// How long one shard covers: a 24th of the retention, between 1 s and an
/// hour (an hour at the default 72 h: 73 shards at most).
pub fn shard_seconds(retention_seconds: u64) -> i64 {
    (retention_seconds / 24).clamp(1, 3600) as i64
}

/// The shard name of the shard starting at `start` (Unix seconds), part
/// `part`.
pub fn shard_name(start: i64, part: usize) -> String {
    let t = chrono::DateTime::from_timestamp(start, 0).unwrap_or_default();
    let base = format!("{SHARD_PREFIX}{}", t.format("%Y%m%dt%H%M%S"));
    if part == 0 {
        base
    } else {
        format!("{base}-{part}")
    }
}

/// `keys` (sorted, distinct) as a shard's bytes.
pub fn encode(keys: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * RECORD_BYTES);
    for k in keys {
        out.extend_from_slice(&k.to_be_bytes());
    }
    out
}

/// A shard's bytes as sorted, distinct keys (a trailing partial record is
/// ignored, unsorted input is sorted).
pub fn decode(bytes: &[u8]) -> Vec<u64> {
    let mut keys: Vec<u64> = bytes
        .chunks_exact(RECORD_BYTES)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_be_bytes(b)
        })
        .collect();
    if !keys.is_sorted_by(|a, b| a < b) {
        keys.sort_unstable();
        keys.dedup();
    }
    keys
}

/// The sorted union of two sorted, distinct key lists.
pub fn merge(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The in-memory side of the record, shared by the source actors, the
/// HTTP routes and the [`Recorder`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DedupRecord {
    inner: Arc<Mutex<Inner>>,
    loaded: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    retention: i64,
    width: i64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Key hash → when it may be forgotten (Unix seconds).
    known: HashMap<u64, u32>,
    /// Accepted keys not yet written: (hash, start of their shard).
    queued: Vec<(u64, i64)>,
}

impl DedupRecord {
    /// An empty record keeping keys for `retention`.
    pub fn new(retention: Duration) -> Self {
        let secs = retention.as_secs().max(1);
        DedupRecord {
            inner: Arc::default(),
            loaded: Arc::default(),
            wake: Arc::default(),
            retention: secs as i64,
            width: shard_seconds(secs),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The start of the shard covering `t`.
    fn shard_start(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.width)
    }

    /// When keys of the shard starting at `start` (and ending at `end`) may
    /// be forgotten.
    fn forget_at(&self, end: i64) -> u32 {
        (end + self.retention).clamp(0, u32::MAX as i64) as u32
    }

    /// Whether `key` was accepted within the retention (as of `now`, Unix
    /// seconds).
    pub fn contains(&self, key: &str, now: i64) -> bool {
        self.contains_hash(key_hash(key), now)
    }

    /// [`contains`](Self::contains) by hash.
    pub fn contains_hash(&self, h: u64, now: i64) -> bool {
        self.lock()
            .known
            .get(&h)
            .is_some_and(|&until| i64::from(until) > now)
    }

    /// Notes that `key` was accepted (its Job exists) at `now` and queues it
    /// for writing; a key already known is not written again.
    pub fn record(&self, key: &str, now: i64) {
        let h = key_hash(key);
        let start = self.shard_start(now);
        let until = self.forget_at(start + self.width);
        let mut inner = self.lock();
        if inner.known.get(&h).is_some_and(|&u| i64::from(u) > now) {
            return;
        }
        inner.known.insert(h, until);
        inner.queued.push((h, start));
        let wake = inner.queued.len() >= FLUSH_BATCH;
        drop(inner);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Takes the queued keys, grouped by shard start.
    fn take_queued(&self) -> BTreeMap<i64, Vec<u64>> {
        let queued = std::mem::take(&mut self.lock().queued);
        let mut by_shard: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
        for (h, start) in queued {
            by_shard.entry(start).or_default().push(h);
        }
        by_shard
    }

    /// Puts keys a failed write did not store back in the queue; returns
    /// how many were dropped because the queue is full.
    fn requeue(&self, start: i64, keys: &[u64]) -> usize {
        let mut inner = self.lock();
        inner.queued.extend(keys.iter().map(|&h| (h, start)));
        let over = inner.queued.len().saturating_sub(MAX_QUEUED);
        if over > 0 {
            inner.queued.drain(..over);
        }
        over
    }

    /// Merges the keys (hashes) of a shard ending at `end` (what a read of
    /// the shard does; public for the bench).
    pub fn load(&self, end: i64, keys: &[u64]) {
        let until = self.forget_at(end);
        let mut inner = self.lock();
        inner.known.reserve(keys.len());
        for &h in keys {
            let e = inner.known.entry(h).or_insert(until);
            *e = (*e).max(until);
        }
    }

    /// Forgets keys past the retention.
    fn expire(&self, now: i64) {
        let mut inner = self.lock();
        inner.known.retain(|_, until| i64::from(*until) > now);
        if inner.known.capacity() > 2 * inner.known.len() + 1024 {
            inner.known.shrink_to_fit();
        }
    }

    /// Keys held in memory.
    pub fn len(&self) -> usize {
        self.lock().known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().known.is_empty()
    }

    /// Keys queued for writing.
    pub fn queued(&self) -> usize {
        self.lock().queued.len()
    }

    /// Whether the shards were read once since start (`/ready` waits).
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// How long a shard covers.
    pub fn shard_width(&self) -> i64 {
        self.width
    }

    /// How long keys are kept (seconds).
    pub fn retention(&self) -> i64 {
        self.retention
    }
}

/// How often the shards are read again: every 30 s, or every shard width
/// when that is shorter (a short retention in tests), at least 0.5 s.
pub fn refresh_every(record: &DedupRecord) -> Duration {
    Duration::from_secs(30)
        .min(Duration::from_secs(record.width as u64))
        .max(Duration::from_millis(500))
}

/// Writes and reads the shards for one replica (a supervised task,
/// [`Recorder::run`]). All calls go through the gate's share for
/// bookkeeping ([`KubeGate::for_reads`]), so Job creates keep at least
/// half of the rate.
pub struct Recorder {
    api: Api<ConfigMap>,
    gate: KubeGate,
    record: DedupRecord,
    leader: Leader,
    metrics: Arc<Metrics>,
    /// Shards read: name → resourceVersion.
    seen: HashMap<String, String>,
    /// The watch store, for the Lease holder's backfill.
    store: Option<JobStore>,
}

/// What became of one write round of one shard.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Every key is in the shard (created, merged, or already there).
    Stored,
}

impl Recorder {
    pub fn new(
        gate: &KubeGate,
        namespace: &str,
        record: DedupRecord,
        leader: Leader,
        metrics: Arc<Metrics>,
    ) -> Self {
        Recorder {
            api: Api::namespaced(gate.client(), namespace),
            gate: gate.for_reads(),
            record,
            leader,
            metrics,
            seen: HashMap::new(),
            store: None,
        }
    }

    /// Backfills from `store` while this replica holds the Lease.
    pub fn with_store(mut self, store: JobStore) -> Self {
        self.store = Some(store);
        self
    }

    /// On the Lease holder: queues the dedup key of every Job in the (synced)
    /// watch store the record does not know. Returns how many.
    pub fn backfill(&self) -> usize {
        let Some(store) = self.store.as_ref().filter(|s| s.is_ready()) else {
            return 0;
        };
        if !(self.leader.is_leader() && self.record.loaded()) {
            return 0;
        }
        let now = now_unix();
        let missing = store.filtered(|r| {
            r.dedup_key
                .as_deref()
                .is_some_and(|k| !self.record.contains(k, now))
        });
        for r in &missing {
            if let Some(k) = r.dedup_key.as_deref() {
                self.record.record(k, now);
            }
        }
        if !missing.is_empty() {
            tracing::info!(
                keys = missing.len(),
                "dedup record: keys of existing Jobs queued"
            );
        }
        missing.len()
    }

    /// Loads the shards, then writes queued keys every [`FLUSH_EVERY`] (or
    /// when [`FLUSH_BATCH`] wait) and reads the shards every
    /// [`refresh_every`]. Never ends by itself.
    pub async fn run(mut self) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(refresh_every(&self.record));
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wake = self.record.wake.clone();
        loop {
            tokio::select! {
                _ = refresh.tick() => self.refresh().await,
                _ = flush.tick() => self.flush().await,
                () = wake.notified() => self.flush().await,
            }
        }
    }

    /// Writes every queued key; keys a write could not store are queued
    /// again.
    pub async fn flush(&mut self) {
        let by_shard = self.record.take_queued();
        for (start, mut keys) in by_shard {
            keys.sort_unstable();
            keys.dedup();
            match self.write(start, &keys).await {
                Ok(Written::Stored) => {
                    self.metrics.dedup().write("ok");
                }
                Err(e) => {
                    tracing::warn!(error = %e, keys = keys.len(), "writing the dedup record failed; will retry");
                    self.metrics.dedup().write("failed");
                    let dropped = self.record.requeue(start, &keys);
                    if dropped > 0 {
                        self.metrics.dedup().write_n("dropped", dropped as u64);
                    }
                }
            }
        }
        self.metrics.dedup().set_keys(self.record.len());
    }

    /// Adds `keys` (sorted, distinct) to the shard starting at `start`.
    pub async fn write(&self, start: i64, keys: &[u64]) -> Result<Written, KubeError> {
        let deadline = Instant::now() + CALL_BUDGET;
        let end = start + self.record.width;
        let mut keys = keys.to_vec();
        for part in 0..MAX_PARTS {
            let name = shard_name(start, part);
            let mut tries = 0;
            loop {
                let got = self
                    .gate
                    .call(deadline, "get", || self.api.get_opt(&name))
                    .await?;
                let r = match got {
                    None => {
                        if keys.len() > SHARD_CAPACITY {
                            // A new part takes what fits; the rest spills.
                            let rest = keys.split_off(SHARD_CAPACITY);
                            self.create(deadline, &name, start, end, &keys).await?;
                            keys = rest;
                            break;
                        }
                        self.create(deadline, &name, start, end, &keys).await
                    }
                    Some(mut cm) => {
                        let stored = stored_keys(&cm);
                        keys.retain(|k| stored.binary_search(k).is_err());
                        if keys.is_empty() {
                            return Ok(Written::Stored);
                        }
                        if stored.len() + keys.len() > SHARD_CAPACITY {
                            // Full: the keys not in it go to the next part.
                            break;
                        }
                        let merged = merge(&stored, &keys);
                        cm.binary_data
                            .get_or_insert_with(Default::default)
                            .insert(KEYS.into(), ByteString(encode(&merged)));
                        // Bound to the resourceVersion read (kept in `cm`).
                        let pp = PostParams::default();
                        self.gate
                            .once(deadline, "update", || self.api.replace(&name, &pp, &cm))
                            .await
                            .map(drop)
                    }
                };
                match r {
                    Ok(()) => return Ok(Written::Stored),
                    Err(KubeError::Conflict(_) | KubeError::AlreadyExists)
                        if tries < CONFLICT_TRIES =>
                    {
                        // Another replica wrote the shard: read and merge again.
                        self.metrics.dedup().write("conflict");
                        tries += 1;
                    }
                    Err(e @ KubeError::Unavailable(_)) if Instant::now() < deadline => {
                        tracing::debug!(error = %e, "dedup shard write retried");
                        tries += 1;
                        if tries > CONFLICT_TRIES {
                            return Err(e);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(KubeError::Invalid(format!(
            "the dedup shard {} is full ({MAX_PARTS} parts)",
            shard_name(start, 0)
        )))
    }

    async fn create(
        &self,
        deadline: Instant,
        name: &str,
        start: i64,
        end: i64,
        keys: &[u64],
    ) -> Result<(), KubeError> {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(
                    [
                        (
                            "app.kubernetes.io/managed-by".to_string(),
                            "orchestrator".to_string(),
                        ),
                        (SHARD_LABEL.to_string(), start.to_string()),
                    ]
                    .into(),
                ),
                annotations: Some([(SHARD_END.to_string(), end.to_string())].into()),
                ..Default::default()
            },
            binary_data: Some([(KEYS.to_string(), ByteString(encode(keys)))].into()),
            ..Default::default()
        };
        let pp = PostParams::default();
        self.gate
            .once(deadline, "create", || self.api.create(&pp, &cm))
            .await
            .map(drop)
    }

    /// Reads the shards that changed since the last read into memory,
    /// forgets keys past the retention and, on the Lease holder, deletes
    /// expired shards.
    pub async fn refresh(&mut self) {
        match self.read_shards().await {
            Ok(()) => self.record.loaded.store(true, Ordering::SeqCst),
            Err(e) => tracing::warn!(error = %e, "reading the dedup record failed; will retry"),
        }
        self.record.expire(now_unix());
        self.backfill();
        self.metrics.dedup().set_keys(self.record.len());
    }

    async fn read_shards(&mut self) -> Result<(), KubeError> {
        let deadline = Instant::now() + CALL_BUDGET;
        let lp = ListParams::default().labels(SHARD_LABEL);
        let list = self
            .gate
            .call(deadline, "list", || self.api.list_metadata(&lp))
            .await?;
        let now = now_unix();
        let mut present = HashMap::new();
        for meta in list.items {
            let m = meta.metadata;
            let Some(name) = m.name.clone() else { continue };
            let end = shard_end(&m, self.record.width);
            if end + self.record.retention <= now {
                if self.leader.is_leader() {
                    self.delete(deadline, &name).await;
                }
                continue;
            }
            let rv = m.resource_version.clone().unwrap_or_default();
            if self.seen.get(&name) == Some(&rv) {
                present.insert(name, rv);
                continue;
            }
            let Some(cm) = self
                .gate
                .call(deadline, "get", || self.api.get_opt(&name))
                .await?
            else {
                continue;
            };
            let end = shard_end(&cm.metadata, self.record.width);
            self.record.load(end, &stored_keys(&cm));
            present.insert(name, cm.metadata.resource_version.unwrap_or_default());
        }
        self.seen = present;
        Ok(())
    }

    async fn delete(&self, deadline: Instant, name: &str) {
        let dp = DeleteParams::default();
        match self
            .gate
            .call(deadline, "delete", || self.api.delete(name, &dp))
            .await
        {
            Ok(_) | Err(KubeError::NotFound) => {
                tracing::info!(shard = name, "deleted an expired dedup shard");
            }
            Err(e) => {
                tracing::warn!(shard = name, error = %e, "deleting an expired dedup shard failed")
            }
        }
    }
}

/// A shard's keys (none if it has no `keys` entry).
fn stored_keys(cm: &ConfigMap) -> Vec<u64> {
    cm.binary_data
        .as_ref()
        .and_then(|d| d.get(KEYS))
        .map(|b| decode(&b.0))
        .unwrap_or_default()
}

/// A shard's end: its annotation, else its label's start plus `width`
/// (unreadable: already ended, so it expires after the retention).
fn shard_end(m: &ObjectMeta, width: i64) -> i64 {
    let ann = m
        .annotations
        .as_ref()
        .and_then(|a| a.get(SHARD_END))
        .and_then(|v| v.parse::<i64>().ok());
    let label = m
        .labels
        .as_ref()
        .and_then(|l| l.get(SHARD_LABEL))
        .and_then(|v| v.parse::<i64>().ok())
        .map(|s| s + width);
    ann.or(label).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_8_bytes_a_key_sorted_and_round_trips() {
        let keys = vec![1u64, 42, u64::MAX];
        let bytes = encode(&keys);
        assert_eq!(bytes.len(), 3 * RECORD_BYTES);
        assert_eq!(&bytes[8..16], &42u64.to_be_bytes());
        assert_eq!(decode(&bytes), keys);
        // A trailing partial record is ignored; unsorted input is sorted.
        let mut odd = encode(&[9, 3, 3]);
        odd.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode(&odd), vec![3, 9]);
    }

    #[test]
    fn merge_is_the_sorted_union() {
        assert_eq!(merge(&[1, 3, 5], &[2, 3, 6]), vec![1, 2, 3, 5, 6]);
        assert_eq!(merge(&[], &[7]), vec![7]);
        assert_eq!(merge(&[7], &[]), vec![7]);
    }

    #[test]
    fn the_hash_is_the_first_8_bytes_of_sha256() {
        // SHA-256("abc") = ba7816bf 8f01cfea …
        assert_eq!(key_hash("abc"), 0xba78_16bf_8f01_cfea);
        assert_ne!(key_hash("k"), key_hash("k#retry-1"));
    }

    #[test]
    fn shard_names_and_widths() {
        assert_eq!(shard_seconds(259_200), 3600);
        assert_eq!(shard_seconds(2), 1);
        assert_eq!(shard_seconds(3600), 150);
        // 2026-12-07 20:00:00 UTC
        assert_eq!(
            shard_name(1_796_673_600, 0),
            "orchestrator-dedup-20261207t200000"
        );
        assert_eq!(
            shard_name(1_796_673_600, 2),
            "orchestrator-dedup-20261207t200000-2"
        );
    }

    #[test]
    fn recorded_keys_are_known_until_the_retention_after_their_shard_ends() {
        let r = DedupRecord::new(Duration::from_secs(259_200));
        let t = 1_796_673_600 + 10;
        r.record("github:delivery:1", t);
        assert!(r.contains("github:delivery:1", t));
        assert!(!r.contains("github:delivery:2", t));
        assert_eq!(r.queued(), 1);
        // Recorded again: not queued again.
        r.record("github:delivery:1", t + 1);
        assert_eq!(r.queued(), 1);
        let end = 1_796_673_600 + 3600;
        assert!(r.contains("github:delivery:1", end + 259_200 - 1));
        assert!(!r.contains("github:delivery:1", end + 259_200));
        r.expire(end + 259_200);
        assert!(r.is_empty());
    }

    #[test]
    fn loading_merges_and_keeps_the_later_expiry() {
        let r = DedupRecord::new(Duration::from_secs(100));
        r.load(1_000, &[1, 2]);
        r.load(2_000, &[2, 3]);
        assert!(r.contains_hash(1, 1_099));
        assert!(!r.contains_hash(1, 1_100));
        assert!(r.contains_hash(2, 2_099));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn a_failed_write_puts_the_keys_back_in_the_queue() {
        let r = DedupRecord::new(Duration::from_secs(100));
        r.record("a", 10);
        r.record("b", 10);
        let taken = r.take_queued();
        assert_eq!(r.queued(), 0);
        let (start, keys) = taken.into_iter().next().expect("one shard");
        assert_eq!(r.requeue(start, &keys), 0);
        assert_eq!(r.queued(), 2);
    }
}

/// Against the simulator: the writes of two replicas to one shard.
#[cfg(test)]
mod sim_tests {
    use super::*;
    use kube_api_sim::{SimConfig, SimServer};

    async fn replica(sim: &SimServer, record: DedupRecord) -> (Recorder, Arc<Metrics>) {
        let client = sim.client().await.expect("a client on the simulator");
        let metrics = Metrics::new();
        let gate = KubeGate::new(client, 1000, 1000, metrics.clone());
        let leader = Leader::new("test");
        (
            Recorder::new(&gate, "default", record, leader, metrics.clone()),
            metrics,
        )
    }

    async fn shard(sim: &SimServer, name: &str) -> Vec<u64> {
        let api: Api<ConfigMap> = Api::namespaced(sim.client().await.expect("client"), "default");
        let cm = api.get(name).await.expect("the shard exists");
        stored_keys(&cm)
    }

    #[tokio::test]
    async fn two_replicas_writing_one_shard_at_once_both_keep_their_keys() {
        let sim = SimServer::start_local(SimConfig::default()).expect("the simulator starts");
        let retention = Duration::from_secs(259_200);
        let (a, ma) = replica(&sim, DedupRecord::new(retention)).await;
        let (b, mb) = replica(&sim, DedupRecord::new(retention)).await;
        let start = 1_796_673_600;
        let mut all = Vec::new();
        for round in 0..20u64 {
            let ka = [1_000 + 2 * round];
            let kb = [1_001 + 2 * round];
            let (ra, rb) = tokio::join!(a.write(start, &ka), b.write(start, &kb));
            assert_eq!(ra, Ok(Written::Stored));
            assert_eq!(rb, Ok(Written::Stored));
            all.extend(ka);
            all.extend(kb);
        }
        all.sort_unstable();
        assert_eq!(
            shard(&sim, &shard_name(start, 0)).await,
            all,
            "every key of both"
        );
        let conflicts = ma.dedup().writes("conflict") + mb.dedup().writes("conflict");
        assert!(
            conflicts > 0,
            "the replicas' writes met (re-read and merged)"
        );
    }

    #[tokio::test]
    async fn a_key_one_replica_records_is_known_to_another_after_its_refresh() {
        let sim = SimServer::start_local(SimConfig::default()).expect("the simulator starts");
        let retention = Duration::from_secs(259_200);
        let (ra, rb) = (DedupRecord::new(retention), DedupRecord::new(retention));
        let (mut a, _) = replica(&sim, ra.clone()).await;
        let (mut b, _) = replica(&sim, rb.clone()).await;
        b.refresh().await;
        assert!(rb.loaded());
        let now = now_unix();
        ra.record("github:delivery:x", now);
        a.flush().await;
        assert_eq!(ra.queued(), 0, "written");
        assert!(!rb.contains("github:delivery:x", now));
        b.refresh().await;
        assert!(rb.contains("github:delivery:x", now));
        // Written again by the first (nothing new): the shard is unchanged.
        let before = shard(&sim, &shard_name(ra.shard_start(now), 0)).await;
        a.write(ra.shard_start(now), &[key_hash("github:delivery:x")])
            .await
            .expect("written");
        assert_eq!(
            shard(&sim, &shard_name(ra.shard_start(now), 0)).await,
            before
        );
    }
}
