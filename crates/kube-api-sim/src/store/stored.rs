//! How one object is kept: its JSON, LZ4-compressed against a dictionary
//! of its resource, plus the few fields the simulator reads without
//! decoding it (name, namespace, uid, resourceVersion, labels, the
//! field-selector fields, owner references, whether it is being deleted).
//! Everything else decodes the JSON on demand.
//!
//! ```text
//!  Value ──serialize──▶ JSON ──LZ4 (dictionary: the resource's first object)──▶ body
//!    │                                                                           │
//!    └──▶ index: name, namespace, uid, rv, labels, fields, owners      decode ◀──┘
//! ```
//!
//! A Job of the service's shape is about 12 KB of JSON as stored (with
//! `managedFields` and `status`); a serde_json `Value` of it took about
//! 140 KB of heap, its compressed body takes a few hundred bytes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::resources::RESOURCES;

/// An LZ4 back-reference reaches 64 KiB back: a longer dictionary is cut
/// to its end.
const DICT_MAX: usize = 64 * 1024;
/// Objects this small are kept as plain JSON, and are not made the
/// dictionary of their resource.
const COMPRESS_MIN: usize = 128;

/// A scratch buffer kept past this is given back after use.
const SCRATCH_KEEP: usize = 256 * 1024;

thread_local! {
    /// Per-thread scratch buffers (JSON, compressed or decompressed bytes):
    /// long-lived allocations are then made at their exact size, and the
    /// large short-lived ones are not made at all (glibc's allocator got
    /// slower and slower with the holes their shrinking left).
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with the two scratch buffers, emptied.
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>) -> T) -> T {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let (a, b) = &mut *s;
        a.clear();
        b.clear();
        let out = f(a, b);
        for v in [a, b] {
            if v.capacity() > SCRATCH_KEEP {
                *v = Vec::new();
            }
        }
        out
    })
}

/// One owner reference, as garbage collection and the controllers read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: Box<str>,
    pub kind: Box<str>,
    pub name: Box<str>,
    pub controller: bool,
}

/// A stored object (one version of it).
#[derive(Debug)]
pub struct Stored {
    pub res: usize,
    /// Empty for cluster-scoped objects.
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub uid: Box<str>,
    pub rv: u64,
    /// The resourceVersion that created it (kept across updates): the
    /// order of Events for their bound.
    pub created_rv: u64,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `metadata.labels` as `key\0value\0key\0value` (label keys and
    /// values are validated: they hold no NUL).
    labels: Box<str>,
    /// The values of the resource's selectable fields
    /// ([`crate::resources::field_paths`]), `\0`-separated in that order.
    fields: Box<str>,
    pub owners: Box<[Owner]>,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Plain(Box<[u8]>),
    Lz4 {
        bytes: Box<[u8]>,
        len: u32,
        dict: Option<Arc<[u8]>>,
    },
}

/// The compression dictionaries of one store, one per resource: the JSON
/// of the first object of that resource worth compressing. Objects of one
/// type share most of their text (keys, defaults, `managedFields`), so
/// a Job of the service's shape compresses to about a twentieth.
pub struct Dictionaries(Vec<OnceLock<Arc<[u8]>>>);

impl Default for Dictionaries {
    fn default() -> Self {
        Dictionaries(RESOURCES.iter().map(|_| OnceLock::new()).collect())
    }
}

impl Dictionaries {
    /// The dictionary to compress `json` with (it becomes its resource's
    /// if that has none yet); none for an object too small to compress.
    fn for_object(&self, res: usize, json: &[u8]) -> Option<Arc<[u8]>> {
        if json.len() < COMPRESS_MIN {
            return None;
        }
        let dict = self
            .0
            .get(res)?
            .get_or_init(|| Arc::from(&json[json.len().saturating_sub(DICT_MAX)..]));
        Some(dict.clone())
    }

    /// Bytes held by the dictionaries.
    pub fn bytes(&self) -> usize {
        self.0.iter().filter_map(|d| d.get()).map(|d| d.len()).sum()
    }
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj["metadata"][key].as_str().unwrap_or("")
}

fn joined<'a>(parts: impl Iterator<Item = &'a str>) -> Box<str> {
    let mut out = String::new();
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push('\0');
        }
        out.push_str(p);
    }
    out.into_boxed_str()
}

impl Stored {
    /// Encodes `obj` (its `metadata.resourceVersion` already set to `rv`).
    pub fn encode(
        res: usize,
        namespace: &str,
        obj: &Value,
        rv: u64,
        created_rv: u64,
        dicts: &Dictionaries,
    ) -> Stored {
        let body = with_scratch(|json, out| {
            if serde_json::to_writer(&mut *json, obj).is_err() {
                json.clear();
            }
            let plain = |json: &[u8]| Body::Plain(Box::from(json));
            let (Some(dict), Ok(len)) = (dicts.for_object(res, json), u32::try_from(json.len()))
            else {
                return plain(json);
            };
            out.resize(lz4_flex::block::get_maximum_output_size(json.len()), 0);
            match lz4_flex::block::compress_into_with_dict(json, out, &dict) {
                Ok(n) if n < json.len() => Body::Lz4 {
                    bytes: Box::from(&out[..n]),
                    len,
                    dict: Some(dict),
                },
                _ => plain(json),
            }
        });
        let labels = obj["metadata"]["labels"].as_object();
        let labels = joined(
            labels
                .into_iter()
                .flatten()
                .flat_map(|(k, v)| [k.as_str(), v.as_str().unwrap_or("")]),
        );
        let values: Vec<String> = crate::resources::field_paths(res)
            .iter()
            .map(|p| crate::selector::field_value(obj, p))
            .collect();
        let owners = obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| Owner {
                uid: o["uid"].as_str().unwrap_or("").into(),
                kind: o["kind"].as_str().unwrap_or("").into(),
                name: o["name"].as_str().unwrap_or("").into(),
                controller: o["controller"] == true,
            })
            .collect();
        Stored {
            res,
            namespace: namespace.into(),
            name: meta_str(obj, "name").into(),
            uid: meta_str(obj, "uid").into(),
            rv,
            created_rv,
            deleting: obj["metadata"].get("deletionTimestamp").is_some(),
            labels,
            fields: joined(values.iter().map(String::as_str)),
            owners,
            body,
        }
    }

    /// The object's JSON.
    pub fn json(&self) -> Cow<'_, [u8]> {
        match &self.body {
            Body::Plain(b) => Cow::Borrowed(b),
            Body::Lz4 { bytes, len, dict } => {
                let dict = dict.as_deref().unwrap_or(&[]);
                match lz4_flex::block::decompress_with_dict(bytes, *len as usize, dict) {
                    Ok(v) => Cow::Owned(v),
                    Err(e) => {
                        // Only a bug in the simulator could get here.
                        tracing::error!(error = %e, name = %self.name, "stored object does not decompress");
                        Cow::Borrowed(b"{}")
                    }
                }
            }
        }
    }

    /// The object, decoded.
    pub fn value(&self) -> Value {
        let decoded = match &self.body {
            Body::Plain(b) => serde_json::from_slice(b),
            Body::Lz4 { bytes, len, dict } => with_scratch(|out, _| {
                out.resize(*len as usize, 0);
                let dict = dict.as_deref().unwrap_or(&[]);
                match lz4_flex::block::decompress_into_with_dict(bytes, out, dict) {
                    Ok(n) => serde_json::from_slice(&out[..n]),
                    // Only a bug in the simulator could get here.
                    Err(e) => Err(serde::de::Error::custom(e)),
                }
            }),
        };
        decoded.unwrap_or_else(|e| {
            tracing::error!(error = %e, name = %self.name, "stored object does not decode");
            Value::Object(Default::default())
        })
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        let mut parts = self.labels.split('\0');
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            if k == key {
                return Some(v);
            }
        }
        None
    }

    /// A selectable field's value (one of the resource's field paths, or
    /// `metadata.name` / `metadata.namespace`), as a field selector compares it.
    pub fn field(&self, path: &str) -> Option<&str> {
        match path {
            "metadata.name" => return Some(&self.name),
            "metadata.namespace" => return Some(&self.namespace),
            _ => {}
        }
        let i = crate::resources::field_paths(self.res)
            .iter()
            .position(|p| *p == path)?;
        self.fields.split('\0').nth(i)
    }

    /// Whether `uid` owns this object.
    pub fn owned_by(&self, uid: &str) -> bool {
        self.owners.iter().any(|o| &*o.uid == uid)
    }

    /// Bytes the body takes (compressed or not).
    pub fn body_bytes(&self) -> usize {
        match &self.body {
            Body::Plain(b) => b.len(),
            Body::Lz4 { bytes, .. } => bytes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{JOBS, PODS};
    use serde_json::json;

    fn job(name: &str) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": "u-1", "resourceVersion": "7",
                "labels": {"app": "web", "tier": "front"},
                "ownerReferences": [{"uid": "o-1", "kind": "CronJob", "name": "c", "controller": true}]},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox",
                "command": ["sh", "-c", "echo a fairly long command line to be worth compressing"]}]}}},
            "status": {"succeeded": 1}})
    }

    #[test]
    fn an_object_round_trips_and_its_index_answers_without_decoding() {
        let dicts = Dictionaries::default();
        let first = Stored::encode(JOBS, "default", &job("a"), 7, 7, &dicts);
        let second = Stored::encode(JOBS, "default", &job("b"), 8, 8, &dicts);
        assert_eq!(first.value(), job("a"));
        assert_eq!(second.value(), job("b"));
        // The second compresses against the first.
        assert!(second.body_bytes() * 4 < serde_json::to_vec(&job("b")).unwrap().len());
        assert_eq!(
            (&*second.name, &*second.namespace, &*second.uid),
            ("b", "default", "u-1")
        );
        assert_eq!(second.label("tier"), Some("front"));
        assert_eq!(second.label("front"), None);
        assert_eq!(second.field("status.successful"), Some("1"));
        assert_eq!(second.field("metadata.name"), Some("b"));
        assert_eq!(second.field("spec.nodeName"), None);
        assert!(second.owned_by("o-1") && !second.owned_by("u-1"));
        assert!(second.owners[0].controller);
        assert!(!second.deleting);
    }

    #[test]
    fn small_objects_stay_plain_and_other_resources_have_their_own_dictionary() {
        let dicts = Dictionaries::default();
        let tiny = json!({"metadata": {"name": "p"}});
        let s = Stored::encode(PODS, "ns", &tiny, 1, 1, &dicts);
        assert_eq!(s.value(), tiny);
        assert_eq!(dicts.bytes(), 0);
        let big = Stored::encode(JOBS, "default", &job("a"), 1, 1, &dicts);
        assert_eq!(big.value(), job("a"));
        assert_eq!(s.field("status.phase"), Some(""));
        assert_eq!(dicts.bytes(), serde_json::to_vec(&job("a")).unwrap().len());
    }
}
