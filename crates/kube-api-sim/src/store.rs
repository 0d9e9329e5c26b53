//! The simulator's storage: every object in memory under one lock, a single
//! monotonically increasing resourceVersion counter, and a bounded history of
//! changes that watches replay from and that fans out to open watches.
//!
//! Each change is published on a broadcast channel *while the lock is held*,
//! so a watch that snapshots state and subscribes under the lock sees every
//! later change exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::defaults;
use super::error::ApiError;
use super::resources::{Resource, NAMESPACES, RESOURCES};
use super::validate;

mod delete;
mod list;

pub use list::ListAt;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to watches.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub res: usize,
    pub namespace: String,
    pub kind: EventType,
    /// The new state (for `Deleted`, the last state with the deletion's rv).
    pub object: Arc<Value>,
    /// The previous state, so a watch with a selector can turn a change that
    /// leaves its selection into `DELETED` and one that enters it into `ADDED`.
    pub old: Option<Arc<Value>>,
    /// `object` as JSON, serialised once for all the watches that send it.
    pub json: std::sync::OnceLock<bytes::Bytes>,
}

impl Change {
    /// The object's JSON, serialised on first use.
    pub fn object_json(&self) -> &bytes::Bytes {
        self.json.get_or_init(|| {
            bytes::Bytes::from(serde_json::to_vec(&*self.object).unwrap_or_default())
        })
    }
}

/// Limits that bound the simulator's memory.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Changes kept for watches to replay; older resourceVersions get 410.
    pub history: usize,
    /// Objects stored in total; creates beyond this fail with 500.
    pub max_objects: usize,
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
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Arc<Change>>,
    /// Watches and continue tokens from a resourceVersion below this are expired.
    oldest_rv: u64,
}

/// How a watch starts.
pub enum WatchStart {
    /// Synthetic `ADDED` events for the current objects (resourceVersion unset or 0).
    Initial(Vec<Arc<Value>>),
    /// Changes after the requested resourceVersion, replayed from history.
    Replay(Vec<Arc<Change>>),
}

/// A page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// The whole simulated cluster state.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
    /// Pod logs: (namespace, pod) → container → lines.
    logs: Mutex<PodLogs>,
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
            }),
            tx,
            logs: Mutex::new(HashMap::new()),
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

    /// Drops the retained history: watches and continue tokens from any
    /// older resourceVersion now get 410 `Expired`.
    pub fn compact(&self) {
        let mut g = self.lock();
        g.history.clear();
        g.oldest_rv = g.rv;
    }

    fn publish(&self, g: &mut Inner, change: Change) {
        let change = Arc::new(change);
        g.history.push_back(change.clone());
        while g.history.len() > self.limits.history {
            if let Some(old) = g.history.pop_front() {
                g.oldest_rv = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(change);
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
            .is_some_and(|n| n["metadata"].get("deletionTimestamp").is_some());
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
        let g = self.lock();
        g.objects
            .get(&Self::key(res_id, ns, name))
            .cloned()
            .ok_or_else(|| Self::not_found(res, name))
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
                        .filter(|c| c.rv > rv && in_scope(c.res, &c.namespace))
                        .cloned()
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
        let obj = Arc::new(obj);
        g.objects.insert(key, obj.clone());
        self.publish(
            &mut g,
            Change {
                rv,
                res: res_id,
                namespace: ns_of(res, ns),
                kind: EventType::Added,
                object: obj.clone(),
                old: None,
                json: Default::default(),
            },
        );
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
        let mut g = self.lock();
        self.update_locked(&mut g, res_id, ns, name, body, status_only, dry_run)
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
        let cur = g
            .objects
            .get(&Self::key(res_id, ns, name))
            .cloned()
            .ok_or_else(|| Self::not_found(res, name))?;
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
        self.update_locked(&mut g, res_id, ns, name, body, status_only, dry_run)
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
        let cur = g.objects.get(&key).cloned()?;
        let mut new = (*cur).clone();
        f(&mut new);
        if new == *cur {
            return Some(cur);
        }
        Some(self.write_locked(&mut g, &key, new, cur))
    }

    /// The namespaced objects in namespace `ns` (resource, name).
    pub fn namespace_contents(&self, ns: &str) -> Vec<(usize, String, bool)> {
        let g = self.lock();
        g.objects
            .iter()
            .filter(|((r, ons, _), _)| RESOURCES[*r].namespaced && ons == ns)
            .map(|((r, _, n), o)| {
                (
                    *r,
                    n.clone(),
                    o["metadata"].get("deletionTimestamp").is_some(),
                )
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn update_locked(
        &self,
        g: &mut Inner,
        res_id: usize,
        ns: &str,
        name: &str,
        mut body: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[res_id];
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        check_type_meta(res, &body)?;
        let key = Self::key(res_id, ns, name);
        let old = g
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Self::not_found(res, name))?;
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
        Ok(self.write_locked(g, &key, new, old))
    }

    /// Stores a new state of an existing object (rv bump, `MODIFIED`), and
    /// removes it if it is being deleted and has no finalizers left.
    fn write_locked(
        &self,
        g: &mut Inner,
        key: &Key,
        mut new: Value,
        old: Arc<Value>,
    ) -> Arc<Value> {
        let finalizing = finalized(key.0, &new);
        g.rv += 1;
        let rv = g.rv;
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let new = Arc::new(new);
        g.objects.insert(key.clone(), new.clone());
        self.publish(
            g,
            Change {
                rv,
                res: key.0,
                namespace: key.1.clone(),
                kind: EventType::Modified,
                object: new.clone(),
                old: Some(old),
                json: Default::default(),
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

    /// Subscribes to all later changes (for the controller and log follow).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
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

fn ns_of(res: &Resource, ns: &str) -> String {
    if res.namespaced {
        ns.to_string()
    } else {
        String::new()
    }
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
