//! Unknown fields, as the API server treats them (`fieldValidation`): the
//! real server decodes bodies into typed structs, so a field its schema does
//! not know is never stored. `Strict` rejects the request (400 "strict
//! decoding error"), `Warn` (the default) drops the field and says so in a
//! `Warning` header, `Ignore` drops it silently.
//!
//! Unknown fields are found by a round trip through the `k8s-openapi` type
//! of the resource: a key of the body that the typed value does not give back
//! is unknown. A body the typed decoder rejects is let through unchecked
//! (the typed decoder is stricter than Go's in places, e.g. numeric
//! quantities), so this check never refuses what the real server accepts.

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use std::fmt::Write;

use actix_web::http::header::{HeaderValue, WARNING};
use actix_web::HttpResponse;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::resources::{self, RESOURCES};

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Option<Value> {
    let typed = T::deserialize(v).ok()?;
    serde_json::to_value(&typed).ok()
}

/// Collects paths (`spec.template.spec.containers[0].foo`) present in
/// `input` but not in `typed`; `path` is the current one (restored on
/// return).
fn diff(input: &Value, typed: &Value, path: &mut String, out: &mut Vec<String>) {
    let len = path.len();
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                if len > 0 {
                    path.push('.');
                }
                path.push_str(k);
                match t.get(k) {
                    None if !v.is_null() => out.push(path.clone()),
                    None => {}
                    Some(tv) => diff(v, tv, path, out),
                }
                path.truncate(len);
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                let _ = write!(path, "[{n}]");
                diff(iv, tv, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The unknown fields of `obj`, a body for resource type `res`.
pub fn unknown_fields(res: usize, obj: &Value) -> Vec<String> {
    let r = &RESOURCES[res];
    // The typed decoders want the type's kind and apiVersion; a body that
    // has them is read as it is.
    let typed_meta = obj["kind"] == r.kind && obj["apiVersion"] == r.api_version().as_str();
    let owned;
    let body = if typed_meta {
        obj
    } else {
        let mut b = obj.clone();
        b["kind"] = Value::from(r.kind);
        b["apiVersion"] = Value::from(r.api_version());
        owned = b;
        &owned
    };
    let typed = match res {
        resources::NAMESPACES => round_trip::<Namespace>(body),
        resources::PODS => round_trip::<Pod>(body),
        resources::CONFIGMAPS => round_trip::<ConfigMap>(body),
        resources::EVENTS => round_trip::<Event>(body),
        resources::SECRETS => round_trip::<Secret>(body),
        resources::JOBS => round_trip::<Job>(body),
        resources::LEASES => round_trip::<Lease>(body),
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(t) = typed {
        diff(body, &t, &mut String::new(), &mut out);
    }
    out
}

fn remove_path(v: &mut Value, path: &str) {
    let mut cur = v;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if parts.peek().is_none() && indexes.is_empty() {
            if let Some(m) = cur.as_object_mut() {
                m.remove(key);
            }
            return;
        }
        let Some(next) = cur.get_mut(key) else { return };
        cur = next;
        for ix in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            let Some(next) = ix.parse::<usize>().ok().and_then(|i| cur.get_mut(i)) else {
                return;
            };
            cur = next;
        }
    }
}

/// Applies `mode` to a body: an error for `Strict`, otherwise the unknown
/// fields are dropped and (for `Warn`) returned as warning texts.
pub fn check(res: usize, obj: &mut Value, mode: FieldValidation) -> Result<Vec<String>, ApiError> {
    let unknown = unknown_fields(res, obj);
    apply_mode(res, obj, unknown, mode)
}

fn apply_mode(
    res: usize,
    obj: &mut Value,
    unknown: Vec<String>,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let r = &RESOURCES[res];
    let texts: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field {p:?}"))
        .collect();
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
            r.kind,
            r.version,
            r.kind,
            texts.join(", ")
        )));
    }
    for p in &unknown {
        remove_path(obj, p);
    }
    Ok(if mode == FieldValidation::Warn {
        texts
    } else {
        Vec::new()
    })
}

/// [`check`] for a patch result: only fields the patch brought in count (an
/// unknown field already stored is not the patch's doing).
pub fn check_patched(
    res: usize,
    current: &Value,
    patched: &mut Value,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let before = unknown_fields(res, current);
    let mut added = unknown_fields(res, patched);
    added.retain(|p| !before.contains(p));
    apply_mode(res, patched, added, mode)
}

/// Adds one `Warning: 299 - "<text>"` header per text, as the API server does.
pub fn with_warnings(mut resp: HttpResponse, texts: &[String]) -> HttpResponse {
    for t in texts {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {t:?}")) {
            resp.headers_mut().append(WARNING, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_job_fields_are_found_with_their_paths_and_dropped() {
        let mut job = json!({"metadata": {"name": "j", "bogus": 1}, "spec": {"suspend": true, "typo": null,
            "template": {"spec": {"containers": [{"name": "a", "image": "x", "imagePolicy": "Always"}]}}}});
        let found = unknown_fields(resources::JOBS, &job);
        assert_eq!(
            found,
            [
                "metadata.bogus",
                "spec.template.spec.containers[0].imagePolicy"
            ]
        );
        let e = check(resources::JOBS, &mut job.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .contains(r#"strict decoding error: unknown field "metadata.bogus""#),
            "{}",
            e.message
        );
        let warnings = check(resources::JOBS, &mut job, FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(job["metadata"].get("bogus").is_none());
        assert!(job["spec"]["template"]["spec"]["containers"][0]
            .get("imagePolicy")
            .is_none());
        assert_eq!(job["spec"]["suspend"], true);
    }

    #[test]
    fn known_fields_and_undecodable_bodies_pass() {
        let cm = json!({"metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}, "immutable": false});
        assert!(unknown_fields(resources::CONFIGMAPS, &cm).is_empty());
        let odd = json!({"metadata": {"name": "p"}, "spec": {"containers": "not-a-list", "x": 1}});
        assert!(unknown_fields(resources::PODS, &odd).is_empty());
    }
}
