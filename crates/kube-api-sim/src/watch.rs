//! Watch streams and followed pod logs: chunked `application/json`, one JSON
//! event per line, as the API server sends them.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::error::ApiError;
use super::resources::RESOURCES;
use super::selector::{FieldSelector, LabelSelector};
use super::server::SimState;
use super::store::{Change, EventType, Stored, WatchStart};

/// What a watch asked for.
pub struct WatchRequest {
    pub res: usize,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `resourceVersion`: None when unset, Some(0) for `"0"`.
    pub resource_version: Option<u64>,
    pub bookmarks: bool,
    /// Start with synthetic `ADDED` events for the current state.
    pub initial_events: bool,
    /// `sendInitialEvents=true`: end them with a BOOKMARK annotated
    /// `k8s.io/initial-events-end` (when bookmarks are allowed).
    pub initial_events_end: bool,
    pub timeout: Option<Duration>,
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Ev<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let mut buf = serde_json::to_vec(&Ev { kind, object }).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

/// `{"type":KIND,"object":…}` around an object's JSON, one line.
fn event_bytes(kind: &str, object: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(object.len() + 32);
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    buf.extend_from_slice(object);
    buf.extend_from_slice(b"}\n");
    Bytes::from(buf)
}

impl WatchRequest {
    fn selected(&self, obj: &Stored) -> bool {
        self.labels.matches_stored(obj) && self.fields.matches_stored(obj)
    }

    /// The event (if any) this watch sees for a change.
    fn translate(&self, c: &Change) -> Option<Bytes> {
        if c.res != self.res
            || self
                .namespace
                .as_deref()
                .is_some_and(|ns| ns != c.namespace)
        {
            return None;
        }
        let now = self.selected(c.object.stored());
        let before = c.old.as_deref().is_some_and(|o| self.selected(o));
        let kind = match (c.kind, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            (EventType::Deleted, b, n) if b || n => "DELETED",
            _ => return None,
        };
        // Around the change's JSON, shared by every watch that sends it.
        Some(event_bytes(kind, c.object_json()))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let r = &RESOURCES[self.res];
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": meta}),
        )
    }
}

/// Counts an open watch for `/_sim/stats` while alive.
struct WatchGuard(Arc<SimState>);
impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::Relaxed);
    }
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> HttpResponse {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-cache, private"))
        .streaming(stream)
}

/// The API server ends a watch without `timeoutSeconds` after a random time
/// between its minimum request timeout (30 min) and twice that; so does the
/// simulator, which also bounds watches whose client vanished silently.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1800);

fn default_timeout() -> Duration {
    MIN_REQUEST_TIMEOUT + Duration::from_secs(rand::random_range(0..=MIN_REQUEST_TIMEOUT.as_secs()))
}

/// Folds the changes already queued for a new watch into its snapshot, so the
/// initial `ADDED` events and the first resourceVersion it reports describe
/// one consistent state. Returns the objects, that resourceVersion, and the
/// first change past it (already taken off the channel), if any.
fn settle_initial(
    state: &SimState,
    objs: Vec<Arc<Stored>>,
    changes: &mut broadcast::Receiver<Arc<Change>>,
    w: &WatchRequest,
) -> (Vec<Arc<Stored>>, u64, Option<Arc<Change>>) {
    let key = |o: &Stored| (o.namespace.to_string(), o.name.to_string());
    let mut by_key: BTreeMap<(String, String), Arc<Stored>> =
        objs.into_iter().map(|o| (key(&o), o)).collect();
    // Every change up to `rv` was broadcast before the store released the
    // lock `current_rv` takes, so all of them are queued by now.
    let rv = state.store.current_rv();
    let mut next = None;
    while let Ok(c) = changes.try_recv() {
        if c.rv > rv {
            next = Some(c);
            break;
        }
        if c.res != w.res || w.namespace.as_deref().is_some_and(|ns| ns != c.namespace) {
            continue;
        }
        let o = c.object.stored();
        match c.kind {
            EventType::Deleted => by_key.remove(&key(o)),
            _ => by_key.insert(key(o), o.clone()),
        };
    }
    (by_key.into_values().collect(), rv, next)
}

/// Serves a watch. An expired resourceVersion is a 200 stream holding one
/// `ERROR` event with a 410 `Expired` Status, as the real server answers.
pub fn serve(state: Arc<SimState>, w: WatchRequest) -> HttpResponse {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // Without initial events, a watch starts at its resourceVersion, or at
    // the newest one when it gave none (`sendInitialEvents=false`).
    let from = match (w.initial_events, w.resource_version) {
        (true, _) => None,
        (false, Some(rv)) if rv > 0 => Some(rv),
        (false, _) => Some(state.store.current_rv()),
    };
    let started = state.store.watch(w.res, w.namespace.as_deref(), from);
    let (start, mut changes) = match started {
        Ok(s) => s,
        Err(e) => {
            state
                .faults
                .record_stream_error("watch", RESOURCES[w.res].plural, e.code);
            let _ = tx.try_send(event_line("ERROR", &e.to_status()));
            return stream_response(rx);
        }
    };
    state.open_watches.fetch_add(1, Ordering::Relaxed);
    let guard = WatchGuard(state.clone());
    let opened = tokio::time::Instant::now();
    let timeout_at = opened
        + w.timeout
            .filter(|t| !t.is_zero())
            .unwrap_or_else(default_timeout);
    let mut close_fault = state.faults.watch_close_changes();
    let bookmark_every = state
        .config
        .bookmark_interval
        .max(Duration::from_millis(10));
    actix_web::rt::spawn(async move {
        let _guard = guard;
        let mut last_rv = from.unwrap_or(0);
        let mut pending = None;
        match start {
            WatchStart::Initial(objs) => {
                let (objs, rv, next) = settle_initial(&state, objs, &mut changes, &w);
                pending = next;
                for o in objs {
                    if w.selected(&o) && tx.send(event_bytes("ADDED", &o.json())).await.is_err() {
                        return;
                    }
                }
                last_rv = last_rv.max(rv);
                if w.initial_events_end
                    && w.bookmarks
                    && tx.send(w.bookmark(last_rv, true)).await.is_err()
                {
                    return;
                }
            }
            WatchStart::Replay(list) => {
                for c in list {
                    last_rv = c.rv;
                    if let Some(b) = w.translate(&c) {
                        if tx.send(b).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if let Some(c) = pending {
            last_rv = c.rv;
            if let Some(b) = w.translate(&c) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            // The fault may change while the watch is open; it counts from
            // when the watch opened.
            let close_at = close_fault
                .borrow_and_update()
                .map_or(timeout_at, |d| timeout_at.min(opened + d));
            tokio::select! {
                r = changes.recv() => match r {
                    Ok(c) => {
                        last_rv = c.rv;
                        if let Some(b) = w.translate(&c) {
                            if tx.send(b).await.is_err() { return; }
                        }
                    }
                    // Too slow to keep up, or the store is gone: end the
                    // stream; the client re-watches from its last version.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if w.bookmarks && tx.send(w.bookmark(last_rv, false)).await.is_err() { return; }
                }
                _ = tokio::time::sleep_until(close_at) => return,
                r = close_fault.changed() => if r.is_err() { return },
                // The client went away (the HTTP layer dropped the body).
                _ = tx.closed() => return,
            }
        }
    });
    stream_response(rx)
}

/// Streams a container's log lines as they are written, until the pod ends.
pub fn follow_logs(
    state: Arc<SimState>,
    ns: String,
    pod: String,
    container: String,
    from: usize,
) -> HttpResponse {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    actix_web::rt::spawn(async move {
        // The number of the next line to send (lines keep their numbers
        // when the log's buffer drops old ones).
        let mut sent = from;
        loop {
            // Lines dropped before they were sent are lost, as when a
            // real kubelet rotates the log under a slow reader.
            let (first, lines) = state.store.logs_since(&ns, &pod, &container, sent);
            sent = first;
            for l in lines {
                sent += 1;
                if tx.send(Bytes::from(format!("{l}\n"))).await.is_err() {
                    return;
                }
            }
            let done = match state.store.get(super::resources::PODS, &ns, &pod) {
                Ok(p) => matches!(
                    p["status"]["phase"].as_str(),
                    Some("Succeeded") | Some("Failed")
                ),
                Err(_) => true,
            };
            if done {
                for l in state.store.logs(&ns, &pod, &container, sent) {
                    let _ = tx.send(Bytes::from(format!("{l}\n"))).await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(stream)
}

/// Renders an error as the API server does: a `Status` body.
pub fn error_response(e: &ApiError) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(e.code)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponse::build(code);
    if let Some(s) = e.retry_after {
        b.insert_header(("Retry-After", s.to_string()));
    }
    b.content_type("application/json").json(e.to_status())
}
