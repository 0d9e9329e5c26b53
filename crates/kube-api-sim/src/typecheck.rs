//! Typed decoding of request bodies, as the real API server decodes every
//! body into its Go type before validating it: a value of the wrong type
//! (`"backoffLimit": "six"`) or a malformed time (`"renewTime": "yesterday"`)
//! is a 400 `BadRequest` "<Kind> in version "<v>" cannot be handled as a
//! <Kind>: …", never a stored object or a 422. The typed model is
//! `k8s-openapi`'s; resource quantities, plain strings there, are parsed as
//! apimachinery's `ParseQuantity` does.

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

/// Checks that `obj` decodes as the Kubernetes type of resource `res`.
pub fn check(res: usize, obj: &Value) -> Result<(), ApiError> {
    let r = match res {
        resources::NAMESPACES => decodes_as::<core::v1::Namespace>(obj),
        resources::PODS => decodes_as::<core::v1::Pod>(obj),
        resources::CONFIGMAPS => decodes_as::<core::v1::ConfigMap>(obj),
        resources::EVENTS => decodes_as::<core::v1::Event>(obj),
        resources::SECRETS => decodes_as::<core::v1::Secret>(obj),
        resources::JOBS => decodes_as::<batch::v1::Job>(obj),
        resources::LEASES => decodes_as::<coordination::v1::Lease>(obj),
        _ => Ok(()),
    };
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
        // Missing required fields are validation's business (422), not decoding's.
        assert!(check(resources::PODS, &json!({"spec": {}})).is_ok());
    }
}
