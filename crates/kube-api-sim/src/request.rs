//! Reading a request: query parameters, bodies (size limit, JSON or YAML),
//! `dryRun` and delete options.

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use actix_web::{web, HttpRequest};
use futures::StreamExt;
use serde_json::Value;

use super::error::ApiError;
use super::http::MAX_BODY_BYTES;
use super::store::DeleteOptions;

pub(super) fn query_map(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

pub(super) async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            let mut e = ApiError::bad_request(format!(
                "Request entity too large: limit is {MAX_BODY_BYTES}"
            ));
            e.code = 413;
            e.reason = "RequestEntityTooLarge";
            return Err(e);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

pub(super) fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Decodes a create/update body: JSON, YAML, or Kubernetes protobuf (what
/// kubectl's typed `create` commands send).
pub(super) fn decode_object(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(req);
    let base = ct.split(';').next().unwrap_or("").trim();
    let v: Value = match base {
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
        "application/yaml" => serde_yaml_ng::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as YAML: {e}"
            ))
        })?,
        super::protobuf::MEDIA_TYPE => super::protobuf::decode(body)?,
        _ => return Err(ApiError::unsupported_media_type(&ct)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    Ok(v)
}

pub(super) fn dry_run(q: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "unsupported dryRun value {other:?}: supported values: \"All\""
        ))),
    }
}

pub(super) fn delete_options(
    q: &HashMap<String, String>,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let grace = |v: &str| {
        v.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("invalid gracePeriodSeconds {v:?}: not an integer"))
        })
    };
    let mut opts = DeleteOptions {
        propagation: q.get("propagationPolicy").cloned(),
        grace_period_seconds: q.get("gracePeriodSeconds").map(|v| grace(v)).transpose()?,
        dry_run: dry_run(q)?,
        ..Default::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as DeleteOptions: {e}"
            ))
        })?;
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(p.to_string());
        } else if v.get("orphanDependents") == Some(&Value::Bool(true)) {
            opts.propagation = Some("Orphan".into());
        }
        if v.get("orphanDependents") == Some(&Value::Bool(false)) {
            opts.accepted_when_pending = true;
        }
        if let Some(g) = v.get("gracePeriodSeconds").filter(|g| !g.is_null()) {
            opts.grace_period_seconds = Some(g.as_i64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as DeleteOptions: gracePeriodSeconds {g} is not an integer"
                ))
            })?);
        }
        opts.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.precondition_rv = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            opts.dry_run = true;
        }
    }
    Ok(opts)
}
