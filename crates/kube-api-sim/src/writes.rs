//! The simulator's log of write requests: every create, update, patch and
//! delete that reached a resource path, with who sent it (the field
//! manager the user agent gives) and its body, newest last. Tests read it
//! (`SimServer::writes`, `GET /_sim/writes`) to tell what a client wrote —
//! for example that it never sent a patch touching `spec.suspend` — which
//! the objects alone cannot show once a controller wrote the same field.
//!
//! Bounded: the last [`KEPT`] writes whose bodies together fit in
//! [`KEPT_BODY_BYTES`], each body cut to [`BODY_BYTES`] (a cut body is
//! kept as text). Bodies are kept as the bytes sent and decoded only when
//! the log is read, so logging a write costs a copy, not a JSON parse, and
//! a full log holds a few MiB however many objects the simulator stores.
//! Writes the simulator's own controllers make (the Job controller, the
//! Kueue emulation) are not requests and are not in it.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// Writes kept.
pub const KEPT: usize = 4096;
/// Body bytes kept per write.
pub const BODY_BYTES: usize = 16 * 1024;
/// Body bytes kept in all (the oldest writes go first past it).
pub const KEPT_BODY_BYTES: usize = 4 << 20;

/// One write request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Write {
    /// Counts from 1 over the simulator's life.
    pub seq: u64,
    /// `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    /// The resource plural, with `/status` for the status subresource.
    pub resource: String,
    pub namespace: String,
    /// The object's name (`""` for a create or a collection).
    pub name: String,
    /// The field manager (from `fieldManager`, else the user agent).
    pub manager: String,
    /// The patch type's content type for a patch, else `""`.
    pub content_type: String,
    /// The body as JSON when it parses (and was not cut), else as text.
    pub body: Value,
}

/// One write as logged: the body still as sent (cut to [`BODY_BYTES`]).
#[derive(Debug)]
struct Logged {
    seq: u64,
    verb: &'static str,
    resource: Box<str>,
    namespace: Box<str>,
    name: Box<str>,
    manager: Box<str>,
    content_type: Box<str>,
    body: Box<[u8]>,
    cut: bool,
}

impl Logged {
    fn decode(&self) -> Write {
        let body = if self.cut {
            Value::String(String::from_utf8_lossy(&self.body).into_owned())
        } else {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
        };
        Write {
            seq: self.seq,
            verb: self.verb.to_string(),
            resource: self.resource.to_string(),
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            manager: self.manager.to_string(),
            content_type: self.content_type.to_string(),
            body,
        }
    }
}

#[derive(Debug, Default)]
struct Log {
    seq: u64,
    body_bytes: usize,
    kept: VecDeque<Logged>,
}

/// The log (one per simulator).
#[derive(Debug, Default)]
pub struct Writes {
    inner: Mutex<Log>,
}

impl Writes {
    /// Logs one write.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        verb: &'static str,
        resource: &str,
        namespace: &str,
        name: &str,
        manager: &str,
        content_type: &str,
        body: &[u8],
    ) {
        let cut = body.len() > BODY_BYTES;
        let body: Box<[u8]> = body[..body.len().min(BODY_BYTES)].into();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.seq += 1;
        let seq = g.seq;
        while g.kept.len() >= KEPT
            || (!g.kept.is_empty() && g.body_bytes + body.len() > KEPT_BODY_BYTES)
        {
            if let Some(old) = g.kept.pop_front() {
                g.body_bytes -= old.body.len();
            }
        }
        g.body_bytes += body.len();
        g.kept.push_back(Logged {
            seq,
            verb,
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            manager: manager.into(),
            content_type: content_type.into(),
            body,
            cut,
        });
    }

    /// The writes kept, oldest first.
    pub fn all(&self) -> Vec<Write> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.kept.iter().map(Logged::decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_kept_as_json_and_the_log_is_bounded() {
        let w = Writes::default();
        w.record(
            "patch",
            "jobs",
            "default",
            "a",
            "m",
            "application/merge-patch+json",
            br#"{"spec":{"suspend":false}}"#,
        );
        let all = w.all();
        assert_eq!(all[0].body["spec"]["suspend"], false);
        assert_eq!(all[0].seq, 1);
        for _ in 0..KEPT {
            w.record("delete", "jobs", "default", "a", "m", "", b"");
        }
        let all = w.all();
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].seq, 2, "the oldest went first");
        let big = vec![b'x'; BODY_BYTES + 1];
        w.record("create", "jobs", "default", "", "m", "", &big);
        assert!(w
            .all()
            .last()
            .is_some_and(|x| x.body.as_str().map(str::len) == Some(BODY_BYTES)));
    }

    #[test]
    fn the_bodies_kept_are_bounded_in_bytes() {
        let w = Writes::default();
        let body = vec![b' '; BODY_BYTES];
        let n = KEPT_BODY_BYTES / BODY_BYTES;
        for _ in 0..n + 10 {
            w.record("create", "jobs", "default", "", "m", "", &body);
        }
        let all = w.all();
        assert_eq!(all.len(), n, "past the byte bound the oldest go");
        assert_eq!(all[0].seq, 11);
        assert_eq!(all.last().map(|x| x.seq), Some(n as u64 + 10));
    }
}
