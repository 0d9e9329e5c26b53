//! Typed decoding of request bodies, as the real API server decodes every
//! body into its Go type before validating it: a value of the wrong type
//! (`"backoffLimit": "six"`) or a malformed time (`"renewTime": "yesterday"`)
//! is a 400 `BadRequest` "<Kind> in version "<v>" cannot be handled as a
//! <Kind>: …", never a stored object or a 422. The typed model is
//! `k8s-openapi`'s; resource quantities, plain strings there, are parsed as
//! apimachinery's `ParseQuantity` does, and base64 bytes (Secret `data`,
//! ConfigMap `binaryData`) as Go's decoder does, with its error offsets.

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use k8s_openapi::api::{batch, coordination, core};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::resources::{self, RESOURCES};

fn decodes_as<T: DeserializeOwned>(obj: &Value) -> Result<(), String> {
    T::deserialize(obj).map(|_| ()).map_err(|e| e.to_string())
}

/// Where Go's `base64.StdEncoding` (what decodes a `[]byte` field from
/// JSON) gives up on `src`: `illegal base64 data at input byte N`. Line
/// breaks are skipped, padding is required.
pub fn base64_error(src: &[u8]) -> Option<usize> {
    let valid = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let mut si = 0;
    loop {
        // One quantum of four characters (`decodeQuantum`).
        let mut j = 0;
        while j < 4 {
            let Some(&c) = src.get(si) else {
                return (j > 0).then(|| si - j);
            };
            si += 1;
            if valid(c) {
                j += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' || j < 2 {
                return Some(si - 1);
            }
            if j == 2 {
                // "==" is expected; the first '=' is consumed.
                while src.get(si).copied().is_some_and(newline) {
                    si += 1;
                }
                match src.get(si) {
                    None => return Some(src.len()),
                    Some(b'=') => si += 1,
                    Some(_) => return Some(si - 1),
                }
            }
            while src.get(si).copied().is_some_and(newline) {
                si += 1;
            }
            return (si < src.len()).then_some(si);
        }
    }
}

/// The first `data` (Secret) or `binaryData` (ConfigMap) value Go cannot
/// base64-decode, as the decode error a real server answers with.
fn bytes_problem(res: usize, obj: &Value) -> Option<String> {
    let field = match res {
        resources::SECRETS => "data",
        resources::CONFIGMAPS => "binaryData",
        _ => return None,
    };
    obj[field].as_object()?.values().find_map(|v| {
        let at = base64_error(v.as_str()?.as_bytes())?;
        Some(format!("illegal base64 data at input byte {at}"))
    })
}

/// Checks that `obj` decodes as the Kubernetes type of resource `res`.
pub fn check(res: usize, obj: &Value) -> Result<(), ApiError> {
    let r = match bytes_problem(res, obj) {
        Some(why) => Err(why),
        None => Ok(()),
    };
    let r = r.and_then(|()| match res {
        resources::NAMESPACES => decodes_as::<core::v1::Namespace>(obj),
        resources::PODS => decodes_as::<core::v1::Pod>(obj),
        resources::CONFIGMAPS => decodes_as::<core::v1::ConfigMap>(obj),
        resources::EVENTS => decodes_as::<core::v1::Event>(obj),
        resources::SECRETS => decodes_as::<core::v1::Secret>(obj),
        resources::JOBS => decodes_as::<batch::v1::Job>(obj),
        resources::LEASES => decodes_as::<coordination::v1::Lease>(obj),
        _ => Ok(()),
    });
    // Quantities are strings in the typed model; a real server parses them
    // while decoding.
    let r = r.and_then(|()| {
        let spec = match res {
            resources::PODS => &obj["spec"],
            resources::JOBS => &obj["spec"]["template"]["spec"],
            _ => return Ok(()),
        };
        super::quantity::pod_spec_problem(spec).map_or(Ok(()), |why| Err(why.to_string()))
    });
    r.map_err(|why| {
        let kind = RESOURCES[res].kind;
        ApiError::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: {why}",
            RESOURCES[res].version
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_and_bad_times_are_bad_requests() {
        let job = json!({"spec": {"backoffLimit": "six", "template": {}}});
        let e = check(resources::JOBS, &job).unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert!(
            e.message
                .starts_with("Job in version \"v1\" cannot be handled as a Job: "),
            "{}",
            e.message
        );
        let lease = json!({"spec": {"renewTime": "yesterday"}});
        assert_eq!(check(resources::LEASES, &lease).unwrap_err().code, 400);
        let lease = json!({"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}});
        assert!(check(resources::LEASES, &lease).is_ok());
        // Go's base64 (captured: zachomedia/cert-manager-webhook-pdns#53,
        // "APIKEY_BASE64" → illegal base64 data at input byte 6).
        let secret = json!({"data": {"key": "APIKEY_BASE64"}});
        assert_eq!(
            check(resources::SECRETS, &secret).unwrap_err().message,
            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 6"
        );
        for (text, at) in [
            ("YWJj", None),
            ("YWI=", None),
            ("YQ==", None),
            ("YW\nJj", None),
            ("", None),
            ("billy", Some(4)),
            ("YWJ", Some(0)),
            ("YQ=", Some(3)),
            ("Y===", Some(1)),
            ("YQ==YQ==", Some(4)),
            ("YQ=x", Some(2)),
        ] {
            assert_eq!(base64_error(text.as_bytes()), at, "{text:?}");
        }
        // Missing required fields are validation's business (422), not decoding's.
        assert!(check(resources::PODS, &json!({"spec": {}})).is_ok());
    }
}
