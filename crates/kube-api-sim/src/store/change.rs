//! What a write publishes: [`Change`]s to watches and subscribers (a
//! broadcast channel, which drops a receiver that falls too far behind),
//! [`Record`]s to the watch history, and the written objects to the
//! [`Feed`] of the cluster's own controllers, which keeps every one until
//! taken (up to a bound past which its reader re-reads everything).

use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use super::Stored;

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

/// One change, as sent to watches and subscribers.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub res: usize,
    pub namespace: String,
    pub kind: EventType,
    /// The new state (for `Deleted`, the last state with the deletion's
    /// rv); it dereferences to the decoded object.
    pub object: Decoded,
    /// The previous state, so a watch with a selector can turn a change that
    /// leaves its selection into `DELETED` and one that enters it into `ADDED`.
    pub old: Option<Arc<Stored>>,
}

impl Change {
    pub(super) fn of(r: &Record) -> Change {
        Change {
            rv: r.rv,
            res: r.object.res,
            namespace: r.object.namespace.to_string(),
            kind: r.kind,
            object: Decoded::new(r.object.clone()),
            old: r.old.clone(),
        }
    }

    /// The object's JSON, decompressed once for all the watches that send it.
    pub fn object_json(&self) -> &bytes::Bytes {
        self.object.json()
    }
}

/// A stored object, decoded on first use (and then kept with the change).
pub struct Decoded {
    stored: Arc<Stored>,
    value: OnceLock<Value>,
    json: OnceLock<bytes::Bytes>,
}

impl Decoded {
    pub fn new(stored: Arc<Stored>) -> Self {
        Decoded {
            stored,
            value: OnceLock::new(),
            json: OnceLock::new(),
        }
    }

    /// The stored form: its index answers without decoding.
    pub fn stored(&self) -> &Arc<Stored> {
        &self.stored
    }

    /// The object's JSON.
    pub fn json(&self) -> &bytes::Bytes {
        self.json
            .get_or_init(|| bytes::Bytes::from(self.stored.json().into_owned()))
    }
}

impl Deref for Decoded {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.value.get_or_init(|| self.stored.value())
    }
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Decoded({}/{} rv {})",
            self.stored.namespace, self.stored.name, self.stored.rv
        )
    }
}

/// One change as the history keeps it: the stored versions, never decoded.
pub(super) struct Record {
    pub rv: u64,
    pub kind: EventType,
    pub object: Arc<Stored>,
    pub old: Option<Arc<Stored>>,
}

/// Written objects queued for the simulated cluster's controllers: every
/// write is there until taken (a broadcast receiver that lags loses
/// changes, and re-reading every object after that costs time that grows
/// with the store). Off until [`Feed::follow`].
#[derive(Default)]
pub(super) struct Feed {
    queue: Mutex<FeedQueue>,
    ready: tokio::sync::Notify,
}

#[derive(Default)]
struct FeedQueue {
    on: bool,
    items: Vec<Arc<Stored>>,
    /// Items were dropped: the reader must look at everything again.
    overflowed: bool,
}

/// Bound of the feed (a reader this far behind re-reads everything).
const FEED_MAX: usize = 1 << 20;

impl Feed {
    pub(super) fn follow(&self) {
        self.lock().on = true;
    }

    pub(super) fn push(&self, obj: &Arc<Stored>) {
        let mut q = self.lock();
        if !q.on {
            return;
        }
        if q.items.len() >= FEED_MAX {
            q.items.clear();
            q.overflowed = true;
        }
        q.items.push(obj.clone());
        drop(q);
        self.ready.notify_one();
    }

    /// The objects written since the last call, and whether some were
    /// dropped.
    pub(super) fn take(&self) -> (Vec<Arc<Stored>>, bool) {
        let mut q = self.lock();
        let overflowed = std::mem::take(&mut q.overflowed);
        (std::mem::take(&mut q.items), overflowed)
    }

    pub(super) async fn ready(&self) {
        self.ready.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}
