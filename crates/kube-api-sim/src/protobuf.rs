//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as
//! kubectl's typed commands (`create secret|configmap|job|namespace`) send
//! them, decoded into the JSON the rest of the simulator works with.
//!
//! The wire form is the API server's: the magic bytes `k8s\0`, then a
//! `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` holds the
//! object's protobuf encoding. The messages are described by the official
//! Kubernetes `.proto` files vendored under `proto/` (see `proto/README.md`),
//! compiled once at first use with `protox` and read with `prost-reflect`'s
//! dynamic messages; the JSON mapping follows the Go types' JSON encoding
//! (Time as RFC 3339, Quantity and IntOrString as scalars, bytes as base64,
//! empty strings omitted as `omitempty` does). Answers stay JSON, which every
//! client that sends protobuf also accepts.

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use std::sync::OnceLock;

use base64::Engine;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage, Value as PValue,
};
use serde_json::{json, Map, Value};

use super::error::ApiError;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// The vendored `.proto` files, by the import name they use.
const FILES: &[(&str, &str)] = &[
    (
        "apimachinery/pkg/runtime/schema/generated.proto",
        include_str!("../proto/apimachinery/pkg/runtime/schema/generated.proto"),
    ),
    (
        "apimachinery/pkg/runtime/generated.proto",
        include_str!("../proto/apimachinery/pkg/runtime/generated.proto"),
    ),
    (
        "apimachinery/pkg/util/intstr/generated.proto",
        include_str!("../proto/apimachinery/pkg/util/intstr/generated.proto"),
    ),
    (
        "apimachinery/pkg/api/resource/generated.proto",
        include_str!("../proto/apimachinery/pkg/api/resource/generated.proto"),
    ),
    (
        "apimachinery/pkg/apis/meta/v1/generated.proto",
        include_str!("../proto/apimachinery/pkg/apis/meta/v1/generated.proto"),
    ),
    (
        "api/core/v1/generated.proto",
        include_str!("../proto/api/core/v1/generated.proto"),
    ),
    (
        "api/batch/v1/generated.proto",
        include_str!("../proto/api/batch/v1/generated.proto"),
    ),
    (
        "api/coordination/v1/generated.proto",
        include_str!("../proto/api/coordination/v1/generated.proto"),
    ),
];

/// Serves the vendored files to the compiler.
struct Embedded;

impl protox::file::FileResolver for Embedded {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match FILES.iter().find(|(n, _)| *n == name) {
            Some((n, src)) => protox::file::File::from_source(n, src),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// The compiled descriptors (compiled on first use; an error is kept too).
fn pool() -> Result<&'static DescriptorPool, ApiError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut compiler = protox::Compiler::with_file_resolver(Embedded);
        compiler.include_imports(true);
        for (name, _) in FILES {
            compiler.open_file(name).map_err(|e| e.to_string())?;
        }
        Ok(compiler.descriptor_pool())
    })
    .as_ref()
    .map_err(|e| ApiError::internal(format!("protobuf descriptors failed to compile: {e}")))
}

/// The proto package of an `apiVersion` this simulator serves.
fn package(api_version: &str) -> Option<&'static str> {
    match api_version {
        "v1" => Some("api.core.v1"),
        "batch/v1" => Some("api.batch.v1"),
        "coordination.k8s.io/v1" => Some("api.coordination.v1"),
        "meta.k8s.io/v1" => Some("apimachinery.pkg.apis.meta.v1"),
        _ => None,
    }
}

fn bad(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the body of the request could not be decoded as protobuf: {msg}"
    ))
}

/// Decodes a Kubernetes protobuf body into the object's JSON form (with
/// `apiVersion` and `kind` from the envelope).
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let pool = pool()?;
    let unknown_desc = message(pool, "apimachinery.pkg.runtime.Unknown")?;
    let unknown = DynamicMessage::decode(unknown_desc, rest).map_err(bad)?;
    let field_str = |m: &DynamicMessage, name: &str| -> String {
        m.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let type_meta = match unknown.get_field_by_name("typeMeta") {
        Some(v) => v.as_message().cloned().ok_or_else(|| bad("typeMeta"))?,
        None => return Err(bad("no typeMeta")),
    };
    let api_version = field_str(&type_meta, "apiVersion");
    let kind = field_str(&type_meta, "kind");
    let encoding = field_str(&unknown, "contentEncoding");
    if !encoding.is_empty() {
        return Err(bad(format!("unsupported content encoding {encoding:?}")));
    }
    let raw = unknown
        .get_field_by_name("raw")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let pkg = package(&api_version).ok_or_else(|| {
        bad(format!(
            "no kind {kind:?} is registered for version {api_version:?}"
        ))
    })?;
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad(format!("invalid kind {kind:?}")));
    }
    let desc = message(pool, &format!("{pkg}.{kind}")).map_err(|_| {
        bad(format!(
            "no kind {kind:?} is registered for version {api_version:?}"
        ))
    })?;
    let msg = DynamicMessage::decode(desc, raw.as_ref()).map_err(bad)?;
    let mut v = to_json(&msg);
    if !v.is_object() {
        v = json!({});
    }
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    Ok(v)
}

fn message(pool: &DescriptorPool, name: &str) -> Result<MessageDescriptor, ApiError> {
    pool.get_message_by_name(name)
        .ok_or_else(|| ApiError::internal(format!("protobuf message {name} is not known")))
}

/// A message in the Go types' JSON form; `Value::Null` means "omit".
fn to_json(msg: &DynamicMessage) -> Value {
    let name = msg.descriptor().full_name().to_string();
    let int = |field: &str| -> i64 {
        match msg.get_field_by_name(field).as_deref() {
            Some(PValue::I64(n)) => *n,
            Some(PValue::I32(n)) => i64::from(*n),
            _ => 0,
        }
    };
    let string = |field: &str| -> String {
        msg.get_field_by_name(field)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    match name.as_str() {
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            let (secs, nanos) = (int("seconds"), int("nanos"));
            if secs == 0 && nanos == 0 {
                return Value::Null;
            }
            let t = chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32);
            return match t {
                Some(t) if name.ends_with("MicroTime") => {
                    json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                }
                Some(t) => json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                None => Value::Null,
            };
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            let ns = int("duration");
            return json!(format!("{}s", ns as f64 / 1e9));
        }
        "apimachinery.pkg.api.resource.Quantity" => return json!(string("string")),
        "apimachinery.pkg.util.intstr.IntOrString" => {
            return if int("type") == 1 {
                json!(string("strVal"))
            } else {
                json!(int("intVal"))
            };
        }
        "apimachinery.pkg.runtime.RawExtension" | "apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            let raw = msg
                .get_field_by_name("raw")
                .and_then(|v| v.as_bytes().cloned())
                .unwrap_or_default();
            return serde_json::from_slice(&raw).unwrap_or(Value::Null);
        }
        _ => {}
    }
    let mut out = Map::new();
    for (field, value) in msg.fields() {
        let v = value_json(value);
        if !v.is_null() {
            out.insert(field.json_name().to_string(), v);
        }
    }
    // Go encodes ObjectMeta's `generation` even when 0; JSON omits it.
    if name == "apimachinery.pkg.apis.meta.v1.ObjectMeta"
        && out.get("generation") == Some(&json!(0))
    {
        out.remove("generation");
    }
    Value::Object(out)
}

fn value_json(v: &PValue) -> Value {
    match v {
        PValue::Bool(b) => json!(b),
        PValue::I32(n) => json!(n),
        PValue::I64(n) => json!(n),
        PValue::U32(n) => json!(n),
        PValue::U64(n) => json!(n),
        PValue::F32(n) => json!(n),
        PValue::F64(n) => json!(n),
        // Go's `omitempty` drops empty strings; none of the served types
        // gives an empty string a meaning of its own.
        PValue::String(s) if s.is_empty() => Value::Null,
        PValue::String(s) => json!(s),
        PValue::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::EnumNumber(n) => json!(n),
        PValue::Message(m) => to_json(m),
        PValue::List(items) => Value::Array(
            items
                .iter()
                .map(|i| match value_json(i) {
                    // A list keeps its positions.
                    Value::Null => json!(""),
                    v => v,
                })
                .collect(),
        ),
        PValue::Map(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                // Map values keep empty strings (`--from-literal=k=`).
                let v = match v {
                    PValue::String(s) => json!(s),
                    v => value_json(v),
                };
                out.insert(key, v);
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body `kubectl create configmap c1 --from-literal=x=y` sent
    /// (kubectl 1.32, captured from the wire).
    const CONFIGMAP: &[u8] = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x1c\x0a\x12\x0a\x02c1\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12\x06\x0a\x01x\x12\x01y\x1a\x00\x22\x00";

    #[test]
    fn decodes_a_configmap_as_kubectl_sends_it() {
        let v = decode(CONFIGMAP).expect("decodes");
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["metadata"], json!({"name": "c1"}));
        assert_eq!(v["data"], json!({"x": "y"}));
    }

    #[test]
    fn refuses_bodies_without_the_prefix_or_of_unknown_kinds() {
        assert_eq!(decode(b"{}").unwrap_err().code, 400);
        let mut body = CONFIGMAP.to_vec();
        // Rename the kind to "ConfigMaX".
        let at = body
            .windows(9)
            .position(|w| w == b"ConfigMap")
            .expect("kind");
        body[at + 8] = b'X';
        let e = decode(&body).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("ConfigMaX"), "{}", e.message);
    }
}
