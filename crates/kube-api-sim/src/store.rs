//! The simulator's storage: every object in memory under one lock, a single
//! monotonically increasing resourceVersion counter, and a bounded history of
//! changes that watches replay from and that fans out to open watches.
//!
//! Each change is published on a broadcast channel *while the lock is held*,
//! so a watch that snapshots state and subscribes under the lock sees every
//! later change exactly once.
//!
//! Objects are kept as compressed JSON with a small index ([`Stored`]) and
//! decoded when read. What memory holds, and its bounds:
//!
//! - every stored object: its compressed JSON and index (a Job of the
//!   service's shape: about 12 KB of JSON, under 2 KB stored);
//! - the watch history: the last [`Limits::history`] changes (20,000 by
//!   default), each an index entry sharing the object's stored version, or
//!   holding the version it replaced; older resourceVersions get 410;
//! - Events: at most [`Limits::max_events`] (10,000), each for at most
//!   [`Limits::event_ttl`] (1 h, the API server's `--event-ttl`) after it was
//!   created; the oldest go first, as `DELETED` changes;
//! - pod logs: [`Limits::log_lines_per_pod`] lines per container.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::defaults;
use super::error::ApiError;
use super::resources::{Resource, EVENTS, NAMESPACES, RESOURCES};
use super::validate;

mod change;
mod delete;
mod list;
mod stored;

pub use change::{Change, Decoded, EventType};
use change::{Feed, Record};
pub use list::ListAt;
pub use stored::{Owner, Stored};

/// Limits that bound the simulator's memory.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Changes kept for watches to replay; older resourceVersions get 410
    /// (a real API server's watch cache keeps a window too).
    pub history: usize,
    /// Objects stored in total; creates beyond this fail with 500.
    pub max_objects: usize,
    /// Events kept; past this the oldest is deleted when one is created.
    pub max_events: usize,
    /// How long an Event is kept after it was created (the API server's
    /// `--event-ttl`, 1 h by default); expired ones are deleted when the
    /// next Event is written.
    pub event_ttl: Duration,
    /// Log lines kept per pod.
    pub log_lines_per_pod: usize,
    /// Broadcast buffer per watch; a watch that falls further behind is closed.
    pub watch_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            history: 20_000,
            max_objects: 200_000,
            max_events: 10_000,
            event_ttl: Duration::from_secs(3600),
            log_lines_per_pod: 1_000,
            watch_buffer: 8_192,
        }
    }
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `Background`, `Foreground` or `Orphan`; `None` uses the type's default.
    pub propagation: Option<String>,
    /// `gracePeriodSeconds`; `None` uses the object's own (a pod's
    /// `terminationGracePeriodSeconds`).
    pub grace_period_seconds: Option<i64>,
    /// The body said `orphanDependents: false` (answered 202 while pending).
    pub accepted_when_pending: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

type Key = (usize, String, String);

/// (namespace, pod) → container → lines.
type PodLogs = HashMap<(String, String), HashMap<String, LogBuf>>;

/// One container's log: the newest `log_lines_per_pod` lines, and how many
/// older ones were dropped, so a line keeps its number (a follower's
/// position) after the buffer wraps.
#[derive(Debug, Default)]
struct LogBuf {
    dropped: usize,
    lines: VecDeque<String>,
}

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Arc<Stored>>,
    history: VecDeque<Record>,
    /// Watches and continue tokens from a resourceVersion below this are expired.
    oldest_rv: u64,
    /// (owner uid, dependent) for every owner reference: garbage
    /// collection finds dependents without a scan.
    dependents: BTreeSet<(Box<str>, Key)>,
    /// The Events, by the resourceVersion that created them (their age
    /// order), with when.
    events: BTreeMap<u64, (Instant, Key)>,
}

impl Inner {
    /// Stores `obj` at `key` (a new object or a new version), indexed.
    fn put(&mut self, key: Key, obj: Arc<Stored>) {
        if let Some(old) = self.objects.insert(key.clone(), obj.clone()) {
            self.unindex(&key, &old);
        }
        for o in obj.owners.iter() {
            self.dependents.insert((o.uid.clone(), key.clone()));
        }
        if key.0 == EVENTS {
            self.events
                .entry(obj.created_rv)
                .or_insert_with(|| (Instant::now(), key));
        }
    }

    /// Removes the object at `key`.
    fn take(&mut self, key: &Key) -> Option<Arc<Stored>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        if key.0 == EVENTS {
            self.events.remove(&old.created_rv);
        }
        Some(old)
    }

    fn unindex(&mut self, key: &Key, old: &Stored) {
        for o in old.owners.iter() {
            self.dependents.remove(&(o.uid.clone(), key.clone()));
        }
    }

    /// The objects with an owner reference to `uid`.
    fn dependents_of(&self, uid: &str) -> Vec<Key> {
        let from = (Box::<str>::from(uid), (0, String::new(), String::new()));
        self.dependents
            .range(from..)
            .take_while(|(u, _)| &**u == uid)
            .map(|(_, k)| k.clone())
            .collect()
    }

    fn has_dependents(&self, uid: &str) -> bool {
        let from = (Box::<str>::from(uid), (0, String::new(), String::new()));
        self.dependents
            .range(from..)
            .next()
            .is_some_and(|(u, _)| &**u == uid)
    }

    /// The object at `key`, decoded.
    fn value(&self, key: &Key) -> Option<Arc<Value>> {
        self.objects.get(key).map(|s| Arc::new(s.value()))
    }
}

/// How a watch starts.
pub enum WatchStart {
    /// Synthetic `ADDED` events for the current objects (resourceVersion unset or 0).
    Initial(Vec<Arc<Stored>>),
    /// Changes after the requested resourceVersion, replayed from history.
    Replay(Vec<Arc<Change>>),
}

/// A page of a list (stored objects: [`Stored::value`] decodes one).
pub struct ListPage {
    pub items: Vec<Arc<Stored>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

impl ListPage {
    /// The items, decoded.
    pub fn values(&self) -> Vec<Arc<Value>> {
        self.items.iter().map(|s| Arc::new(s.value())).collect()
    }
}

/// The whole simulated cluster state.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
    /// Pod logs: (namespace, pod) → container → lines.
    logs: Mutex<PodLogs>,
    /// The compression dictionary of each resource.
    dicts: stored::Dictionaries,
    /// Written objects for the controllers ([`Store::follow_writes`]).
    feed: Feed,
    pub limits: Limits,
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn random_suffix() -> String {
    // The alphabet the API server uses for generateName (no vowels, no look-alikes).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Parses a resourceVersion given by a client. A malformed one is a 500
/// with the storage layer's message on a real API server (1.32; see
/// kubernetes/kubernetes#139485), so it is here too.
pub fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .map_err(|e| ApiError::invalid_resource_version(s, &e))
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

/// Whether anything but metadata, status and type changed (what bumps
/// `metadata.generation`), compared in place.
fn spec_changed(old: &Value, new: &Value) -> bool {
    const NOT_SPEC: [&str; 4] = ["metadata", "status", "kind", "apiVersion"];
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    // (Both maps iterate in key order.)
    let spec = |k: &(&String, &Value)| !NOT_SPEC.contains(&k.0.as_str());
    !a.iter().filter(spec).eq(b.iter().filter(spec))
}

impl Store {
    pub fn new(limits: Limits) -> Arc<Self> {
        let (tx, _) = broadcast::channel(limits.watch_buffer.max(16));
        let store = Arc::new(Store {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                oldest_rv: 0,
                dependents: BTreeSet::new(),
                events: BTreeMap::new(),
            }),
            tx,
            logs: Mutex::new(HashMap::new()),
            dicts: stored::Dictionaries::default(),
            feed: Feed::default(),
            limits,
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let created = store.create(NAMESPACES, "", json!({"metadata": {"name": ns}}), false);
            debug_assert!(created.is_ok());
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every
        // mutation is a single insert/remove), so recover from poisoning.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Number of stored objects and retained changes.
    pub fn sizes(&self) -> (usize, usize) {
        let g = self.lock();
        (g.objects.len(), g.history.len())
    }

    /// What the stored objects take: (objects, bytes of their compressed
    /// JSON, bytes of the compression dictionaries). Scans every object.
    pub fn footprint(&self) -> (usize, usize, usize) {
        let g = self.lock();
        let bodies = g.objects.values().map(|o| o.body_bytes()).sum();
        (g.objects.len(), bodies, self.dicts.bytes())
    }

    /// Drops the retained history: watches and continue tokens from any
    /// older resourceVersion now get 410 `Expired`.
    pub fn compact(&self) {
        let mut g = self.lock();
        g.history.clear();
        g.oldest_rv = g.rv;
    }

    fn publish(&self, g: &mut Inner, record: Record) {
        self.feed.push(&record.object);
        if self.tx.receiver_count() > 0 {
            // (A receiver that goes meanwhile is fine.)
            let _ = self.tx.send(Arc::new(Change::of(&record)));
        }
        g.history.push_back(record);
        while g.history.len() > self.limits.history {
            if let Some(old) = g.history.pop_front() {
                g.oldest_rv = old.rv;
            }
        }
    }

    /// Encodes a version of the object at `key` for storage.
    fn encode(&self, key: &Key, obj: &Value, rv: u64, created_rv: u64) -> Arc<Stored> {
        Arc::new(Stored::encode(
            key.0,
            &key.1,
            obj,
            rv,
            created_rv,
            &self.dicts,
        ))
    }

    /// Deletes the Events past [`Limits::max_events`] and those older than
    /// [`Limits::event_ttl`], oldest first.
    fn expire_events(&self, g: &mut Inner) {
        let now = Instant::now();
        while let Some((_, (at, key))) = g.events.first_key_value() {
            let over = g.events.len() > self.limits.max_events;
            if !over && now.duration_since(*at) < self.limits.event_ttl {
                break;
            }
            let key = key.clone();
            if self.remove_locked(g, &key).is_none() {
                g.events.pop_first();
            }
        }
    }

    fn not_found(res: &Resource, name: &str) -> ApiError {
        ApiError::not_found(res.plural, res.group, name)
    }

    fn check_namespace(g: &Inner, res: &Resource, ns: &str) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        if g.objects
            .contains_key(&(NAMESPACES, String::new(), ns.to_string()))
        {
            Ok(())
        } else {
            Err(ApiError::not_found("namespaces", "", ns))
        }
    }

    /// What creates check beyond [`Self::check_namespace`]: the namespace
    /// must not be terminating (the NamespaceLifecycle admission plugin).
    fn check_namespace_open(
        g: &Inner,
        res: &Resource,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        Self::check_namespace(g, res, ns)?;
        if !res.namespaced {
            return Ok(());
        }
        let terminating = g
            .objects
            .get(&(NAMESPACES, String::new(), ns.to_string()))
            .is_some_and(|n| n.deleting);
        if terminating {
            return Err(ApiError::namespace_terminating(
                res.plural, res.group, name, ns,
            ));
        }
        Ok(())
    }

    fn key(res_id: usize, ns: &str, name: &str) -> Key {
        let ns = if RESOURCES[res_id].namespaced { ns } else { "" };
        (res_id, ns.to_string(), name.to_string())
    }

    /// `GET` one object.
    pub fn get(&self, res_id: usize, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[res_id];
        let stored = self
            .lock()
            .objects
            .get(&Self::key(res_id, ns, name))
            .cloned()
            .ok_or_else(|| Self::not_found(res, name))?;
        // Decoded without the lock held.
        Ok(Arc::new(stored.value()))
    }

    /// Starts a watch: returns how it begins and a receiver for later changes.
    pub fn watch(
        &self,
        res_id: usize,
        ns: Option<&str>,
        from_rv: Option<u64>,
    ) -> Result<(WatchStart, broadcast::Receiver<Arc<Change>>), ApiError> {
        let g = self.lock();
        let rx = self.tx.subscribe();
        let in_scope = |res: usize, ons: &str| res == res_id && ns.is_none_or(|n| n == ons);
        let start = match from_rv {
            None | Some(0) => WatchStart::Initial(
                g.objects
                    .range(
                        (res_id, String::new(), String::new())
                            ..(res_id + 1, String::new(), String::new()),
                    )
                    .filter(|((r, ons, _), _)| in_scope(*r, ons))
                    .map(|(_, v)| v.clone())
                    .collect(),
            ),
            Some(rv) => {
                if rv < g.oldest_rv {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        g.oldest_rv
                    )));
                }
                WatchStart::Replay(
                    g.history
                        .iter()
                        .filter(|c| c.rv > rv && in_scope(c.object.res, &c.object.namespace))
                        .map(|c| Arc::new(Change::of(c)))
                        .collect(),
                )
            }
        };
        Ok((start, rx))
    }

    /// `CREATE`.
    pub fn create(
        &self,
        res_id: usize,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[res_id];
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        check_type_meta(res, &obj)?;
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        if res.namespaced {
            match meta_str(&obj, "namespace") {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                }
                _ => obj["metadata"]["namespace"] = json!(ns),
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => match meta_str(&obj, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => format!("{prefix}{}", random_suffix()),
                None => String::new(),
            },
        };
        // The uid is set before validation, as the real registry's
        // `FillObjectMetaSystemFields` does: a Job's generated selector and
        // labels are checked with it.
        obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        let mut causes = validate::all(res, res_id, &name, &obj);
        causes.extend(validate::create_only(res_id, &obj));
        if !causes.is_empty() {
            return Err(ApiError::invalid(res.kind, res.group, &name, causes));
        }
        let mut g = self.lock();
        // Admission runs before a generateName is expanded.
        Self::check_namespace_open(&g, res, ns, meta_str(&obj, "name").unwrap_or(""))?;
        let key = Self::key(res_id, ns, &name);
        if g.objects.contains_key(&key) {
            return Err(ApiError::already_exists(res.plural, res.group, &name));
        }
        if g.objects.len() >= self.limits.max_objects {
            return Err(ApiError::internal(
                "etcdserver: mvcc: database space exceeded (simulator object limit)",
            ));
        }
        obj["kind"] = json!(res.kind);
        obj["apiVersion"] = json!(res.api_version());
        {
            let meta = &mut obj["metadata"];
            meta["name"] = json!(name);
            meta["creationTimestamp"] = json!(now_rfc3339());
            if let Some(m) = meta.as_object_mut() {
                m.remove("deletionTimestamp");
                m.remove("deletionGracePeriodSeconds");
                m.remove("resourceVersion");
                m.remove("selfLink");
            }
            if res.has_generation {
                meta["generation"] = json!(1);
            }
        }
        defaults::on_create(res_id, &mut obj);
        if dry_run {
            return Ok(Arc::new(obj));
        }
        g.rv += 1;
        let rv = g.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = self.encode(&key, &obj, rv, rv);
        let obj = Arc::new(obj);
        g.put(key, stored.clone());
        self.publish(
            &mut g,
            Record {
                rv,
                kind: EventType::Added,
                object: stored,
                old: None,
            },
        );
        if res_id == EVENTS {
            self.expire_events(&mut g);
        }
        Ok(obj)
    }

    /// `UPDATE` (PUT) of the object or (with `status_only`) its status.
    pub fn update(
        &self,
        res_id: usize,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[res_id];
        let mut g = self.lock();
        let key = Self::key(res_id, ns, name);
        let old = g.value(&key).ok_or_else(|| Self::not_found(res, name))?;
        self.update_locked(&mut g, &key, old, body, status_only, dry_run)
    }

    /// Reads, modifies and writes one object under the lock: `f` gets the
    /// current object and returns the new body (or an error). Used by
    /// patches and by the Job controller, so read-modify-write is atomic.
    pub fn modify(
        &self,
        res_id: usize,
        ns: &str,
        name: &str,
        status_only: bool,
        dry_run: bool,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[res_id];
        let mut g = self.lock();
        let key = Self::key(res_id, ns, name);
        let cur = g.value(&key).ok_or_else(|| Self::not_found(res, name))?;
        let mut body = f(&cur)?;
        // A patch that does not mention resourceVersion is unconditional.
        if body.pointer("/metadata/resourceVersion").is_none() {
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert(
                    "resourceVersion".into(),
                    cur["metadata"]["resourceVersion"].clone(),
                );
            }
        }
        self.update_locked(&mut g, &key, cur, body, status_only, dry_run)
    }

    /// A write by the simulated cluster's own components, without an
    /// update's validation: what a subresource such as `pods/binding` or
    /// `namespaces/finalize` stores (the scheduler's `spec.nodeName`, the
    /// namespace controller's `spec.finalizers`). Removes the object if that
    /// completes its deletion.
    pub fn system_write(
        &self,
        res_id: usize,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Arc<Value>> {
        let mut g = self.lock();
        let key = Self::key(res_id, ns, name);
        let cur = g.value(&key)?;
        let mut new = (*cur).clone();
        f(&mut new);
        if new == *cur {
            return Some(cur);
        }
        Some(self.write_locked(&mut g, &key, new))
    }

    /// The namespaced objects in namespace `ns` (resource, name).
    pub fn namespace_contents(&self, ns: &str) -> Vec<(usize, String, bool)> {
        let g = self.lock();
        g.objects
            .iter()
            .filter(|((r, ons, _), _)| RESOURCES[*r].namespaced && ons == ns)
            .map(|((r, _, n), o)| (*r, n.clone(), o.deleting))
            .collect()
    }

    /// An update of the object at `key`, whose current state is `old`.
    fn update_locked(
        &self,
        g: &mut Inner,
        key: &Key,
        old: Arc<Value>,
        mut body: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let (res_id, name) = (key.0, key.2.as_str());
        let res = &RESOURCES[res_id];
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        check_type_meta(res, &body)?;
        match meta_str(&body, "name") {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            _ => {}
        }
        if let Some(rv) = meta_str(&body, "resourceVersion").filter(|s| !s.is_empty()) {
            if Some(rv) != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        if let Some(uid) = meta_str(&body, "uid").filter(|s| !s.is_empty()) {
            if Some(uid) != meta_str(&old, "uid") {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    name,
                    "Precondition failed: UID in precondition does not match the UID in record",
                ));
            }
        }
        let mut new = if status_only {
            let mut n = (*old).clone();
            n["status"] = body.get("status").cloned().unwrap_or(json!({}));
            n
        } else {
            if !body.get("metadata").is_some_and(Value::is_object) {
                body["metadata"] = json!({});
            }
            if res.has_status {
                match old.get("status") {
                    Some(s) => body["status"] = s.clone(),
                    None => {
                        if let Some(m) = body.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old["metadata"].get(k) {
                    Some(v) => body["metadata"][k] = v.clone(),
                    None => {
                        if let Some(m) = body["metadata"].as_object_mut() {
                            m.remove(k);
                        }
                    }
                }
            }
            body
        };
        new["kind"] = json!(res.kind);
        new["apiVersion"] = json!(res.api_version());
        if !status_only {
            defaults::on_update(res_id, &mut new);
        }
        // A status write keeps metadata and spec as stored (already
        // valid); like the real server's status strategies it is checked
        // for what it changes (the status rules live in `immutable`).
        let mut causes = if status_only {
            Vec::new()
        } else {
            validate::all(res, res_id, name, &new)
        };
        causes.extend(validate::immutable(res_id, &old, &new));
        if !causes.is_empty() {
            return Err(ApiError::invalid(res.kind, res.group, name, causes));
        }
        if res.has_generation && !status_only && spec_changed(&old, &new) {
            let gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(gen + 1);
        }
        // No-op updates do not bump the resourceVersion.
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        // (A status write changed nothing else.)
        let unchanged = if status_only {
            new.get("status") == old.get("status")
        } else {
            new == *old
        };
        if unchanged {
            return Ok(old);
        }
        if dry_run {
            return Ok(Arc::new(new));
        }
        Ok(self.write_locked(g, key, new))
    }

    /// Stores a new state of an existing object (rv bump, `MODIFIED`), and
    /// removes it if it is being deleted and has no finalizers left.
    fn write_locked(&self, g: &mut Inner, key: &Key, mut new: Value) -> Arc<Value> {
        let finalizing = finalized(key.0, &new);
        g.rv += 1;
        let rv = g.rv;
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let old = g.objects.get(key).cloned();
        let created_rv = old.as_ref().map_or(rv, |o| o.created_rv);
        let stored = self.encode(key, &new, rv, created_rv);
        let new = Arc::new(new);
        g.put(key.clone(), stored.clone());
        self.publish(
            g,
            Record {
                rv,
                kind: EventType::Modified,
                object: stored,
                old,
            },
        );
        if finalizing {
            self.remove_locked(g, key);
        }
        new
    }

    /// Appends lines to a pod container's log (the fake kubelet's output).
    pub fn append_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        lines: impl IntoIterator<Item = String>,
    ) {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let buf = logs
            .entry((ns.to_string(), pod.to_string()))
            .or_default()
            .entry(container.to_string())
            .or_default();
        for l in lines {
            buf.lines.push_back(l);
            while buf.lines.len() > self.limits.log_lines_per_pod {
                buf.lines.pop_front();
                buf.dropped += 1;
            }
        }
    }

    /// A pod container's log lines numbered `from` on (the first line ever
    /// printed is 0; lines the buffer dropped are skipped).
    pub fn logs(&self, ns: &str, pod: &str, container: &str, from: usize) -> Vec<String> {
        self.logs_since(ns, pod, container, from).1
    }

    /// [`Self::logs`] and the number of the first line returned (more than
    /// `from` when the buffer dropped lines a reader had not read).
    pub fn logs_since(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        from: usize,
    ) -> (usize, Vec<String>) {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(&(ns.to_string(), pod.to_string()))
            .and_then(|c| c.get(container))
            .map(|b| {
                let first = from.max(b.dropped);
                let lines = b.lines.iter().skip(first - b.dropped).cloned().collect();
                (first, lines)
            })
            .unwrap_or((from, Vec::new()))
    }

    /// A pod container's kept log lines and the number of the first.
    pub fn log_window(&self, ns: &str, pod: &str, container: &str) -> (usize, Vec<String>) {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(&(ns.to_string(), pod.to_string()))
            .and_then(|c| c.get(container))
            .map(|b| (b.dropped, b.lines.iter().cloned().collect()))
            .unwrap_or_default()
    }

    /// Subscribes to all later changes. A receiver that falls
    /// [`Limits::watch_buffer`] changes behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Starts queueing every written object (each new version, and the
    /// last state of a removed one) for [`Store::written`]: how the
    /// simulated cluster's controllers follow the store without ever
    /// missing a write.
    pub fn follow_writes(&self) {
        self.feed.follow();
    }

    /// The objects written since the last call, oldest first, and whether
    /// some were dropped (the reader was a million writes behind: it must
    /// look at every object again).
    pub fn written(&self) -> (Vec<Arc<Stored>>, bool) {
        self.feed.take()
    }

    /// Waits until something was written since [`Store::written`] last
    /// answered (at once if it was meanwhile).
    pub async fn wait_written(&self) {
        self.feed.ready().await
    }
}

/// Whether an object being deleted may go now: its grace period is over
/// (`deletionGracePeriodSeconds` 0), no finalizers are left, and for a
/// namespace its `spec.finalizers` are done too (the API server's
/// `shouldDeleteDuringUpdate` and the namespace registry's rule).
fn finalized(res_id: usize, obj: &Value) -> bool {
    let meta = &obj["metadata"];
    let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
    meta.get("deletionTimestamp").is_some()
        && meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0
        && empty(&meta["finalizers"])
        && (res_id != NAMESPACES || empty(&obj["spec"]["finalizers"]))
}

fn check_type_meta(res: &Resource, obj: &Value) -> Result<(), ApiError> {
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if !k.is_empty() && k != res.kind {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({k}) does not match the resource ({})",
                res.kind
            )));
        }
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if !av.is_empty() && av != res.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                res.api_version()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
