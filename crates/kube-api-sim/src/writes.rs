//! The simulator's log of write requests: every create, update, patch and
//! delete that reached a resource path, with who sent it (the field
//! manager the user agent gives) and its body, newest last. Tests read it
//! (`SimServer::writes`, `GET /_sim/writes`) to tell what a client wrote —
//! for example that it never sent a patch touching `spec.suspend` — which
//! the objects alone cannot show once a controller wrote the same field.
//!
//! Bounded: the last [`KEPT`] writes, each body cut to [`BODY_BYTES`]
//! (a cut body is kept as text). Writes the simulator's own controllers
//! make (the Job controller, the Kueue emulation) are not requests and are
//! not in it.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// Writes kept.
pub const KEPT: usize = 4096;
/// Body bytes kept per write.
pub const BODY_BYTES: usize = 16 * 1024;

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

/// The log (one per simulator).
#[derive(Debug, Default)]
pub struct Writes {
    inner: Mutex<(u64, VecDeque<Write>)>,
}

impl Writes {
    /// Logs one write.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        manager: &str,
        content_type: &str,
        body: &[u8],
    ) {
        let body = if body.len() <= BODY_BYTES {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        } else {
            Value::String(String::from_utf8_lossy(&body[..BODY_BYTES]).into_owned())
        };
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let seq = g.0;
        if g.1.len() >= KEPT {
            g.1.pop_front();
        }
        g.1.push_back(Write {
            seq,
            verb: verb.to_string(),
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            manager: manager.to_string(),
            content_type: content_type.to_string(),
            body,
        });
    }

    /// The writes kept, oldest first.
    pub fn all(&self) -> Vec<Write> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.iter().cloned().collect()
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
}
