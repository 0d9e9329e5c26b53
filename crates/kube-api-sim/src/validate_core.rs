//! ConfigMap, Secret, Lease and core/v1 Event validation with the paths,
//! reasons and messages of the Kubernetes validation packages (1.32):
//! `ValidateConfigMap`/`ValidateSecret` and their updates
//! (pkg/apis/core/validation), `ValidateLeaseSpec`
//! (pkg/apis/coordination/validation) and `legacyValidateEvent`
//! (pkg/apis/core/validation/events.go).

use serde_json::Value;

use super::error::Cause;
use super::resources::SECRETS;
use super::validate_names as names;

/// `core.MaxSecretSize`: 1 MiB of data in a ConfigMap or Secret.
const MAX_DATA_BYTES: usize = 1024 * 1024;

fn entries<'a>(obj: &'a Value, field: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    obj.get(field)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

/// The decoded length of a base64 `data`/`binaryData` value (what Go
/// measures, `len([]byte)`), estimated from the encoded text.
fn decoded_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or("");
    let pad = s.bytes().rev().take_while(|b| *b == b'=').count();
    (s.len() / 4 * 3).saturating_sub(pad)
}

fn check_keys(causes: &mut Vec<Cause>, path: &str, key: &str) {
    for why in names::config_key(key) {
        causes.push(Cause::invalid(format!("{path}[{key}]"), key, &why));
    }
}

/// `ValidateConfigMap` past the metadata.
pub fn config_map(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut total = 0usize;
    for (k, v) in entries(obj, "data") {
        check_keys(&mut causes, "data", k);
        if obj["binaryData"].get(k).is_some() {
            causes.push(Cause::invalid(
                format!("data[{k}]"),
                k,
                "duplicate of key present in binaryData",
            ));
        }
        total += v.as_str().map_or(0, str::len);
    }
    for (k, v) in entries(obj, "binaryData") {
        check_keys(&mut causes, "binaryData", k);
        total += decoded_len(v);
    }
    if total > MAX_DATA_BYTES {
        // The path is "" ("the whole object"), so the message starts ": ".
        causes.push(Cause::too_long("", MAX_DATA_BYTES));
    }
    causes
}

/// `ValidateSecret` past the metadata. `stringData` is merged into `data`
/// before a real server validates, so its keys are reported at `data[…]`.
pub fn secret(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut total = 0usize;
    let mut keys: Vec<&String> = Vec::new();
    for (k, v) in entries(obj, "data") {
        keys.push(k);
        total += decoded_len(v);
    }
    for (k, v) in entries(obj, "stringData") {
        if !keys.contains(&k) {
            keys.push(k);
        }
        total += v.as_str().map_or(0, str::len);
    }
    for k in &keys {
        check_keys(&mut causes, "data", k);
    }
    if total > MAX_DATA_BYTES {
        causes.push(Cause::too_long("data", MAX_DATA_BYTES));
    }
    let has = |k: &str| keys.iter().any(|x| x.as_str() == k);
    let require =
        |causes: &mut Vec<Cause>, k: &str| causes.push(Cause::required(format!("data[{k}]")));
    match obj["type"].as_str().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let ann = &obj["metadata"]["annotations"]["kubernetes.io/service-account.name"];
            if ann.as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => require(&mut causes, ".dockercfg"),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            require(&mut causes, ".dockerconfigjson")
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            require(&mut causes, "username");
            require(&mut causes, "password");
        }
        "kubernetes.io/ssh-auth" => {
            let empty = obj["data"]["ssh-privatekey"]
                .as_str()
                .is_none_or(str::is_empty)
                && obj["stringData"]["ssh-privatekey"]
                    .as_str()
                    .is_none_or(str::is_empty);
            if empty {
                require(&mut causes, "ssh-privatekey");
            }
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    require(&mut causes, k);
                }
            }
        }
        _ => {}
    }
    causes
}

/// `ValidateSecretUpdate` / `ValidateConfigMapUpdate`: a Secret's type
/// never changes; once `immutable: true`, neither the flag nor the data do.
pub fn immutable_data(res_id: usize, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if res_id == SECRETS {
        // Both are defaulted to `Opaque` before this runs.
        if old["type"] != new["type"] {
            causes.push(Cause::invalid_value(
                "type",
                &new["type"],
                "field is immutable",
            ));
        }
    }
    if old["immutable"] == Value::Bool(true) {
        let why = "field is immutable when `immutable` is set";
        if new["immutable"] != Value::Bool(true) {
            causes.push(Cause::forbidden("immutable", why));
        }
        let fields: &[&str] = if res_id == SECRETS {
            &["data"]
        } else {
            &["data", "binaryData"]
        };
        for field in fields {
            let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
            let same = old[*field] == new[*field] || (empty(&old[*field]) && empty(&new[*field]));
            let string_data = res_id == SECRETS && *field == "data" && !empty(&new["stringData"]);
            if !same || string_data {
                causes.push(Cause::forbidden(*field, why));
            }
        }
    }
    causes
}

/// `ValidateLeaseSpec`.
pub fn lease(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    if let Some(d) = spec["leaseDurationSeconds"].as_i64() {
        if d <= 0 {
            causes.push(Cause::invalid_value(
                "spec.leaseDurationSeconds",
                &Value::from(d),
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = spec["leaseTransitions"].as_i64() {
        if t < 0 {
            causes.push(Cause::invalid_value(
                "spec.leaseTransitions",
                &Value::from(t),
                "must be greater than or equal to 0",
            ));
        }
    }
    causes
}

/// `legacyValidateEvent` for an Event written through core/v1 without an
/// `eventTime`: the involved object's namespace must be the event's (or, for
/// a cluster-scoped object, the event lives in `default`).
pub fn event(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    let involved = obj["involvedObject"]["namespace"].as_str().unwrap_or("");
    let has_event_time = obj["eventTime"].as_str().is_some_and(|t| !t.is_empty());
    let mismatch = if has_event_time {
        involved.is_empty() && ns != "default" && ns != "kube-system"
    } else if involved.is_empty() {
        !ns.is_empty() && ns != "default"
    } else {
        ns != involved
    };
    if mismatch {
        causes.push(Cause::invalid(
            "involvedObject.namespace",
            involved,
            "does not match event.namespace",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use crate::error::cause_texts as messages;

    #[test]
    fn config_maps_secrets_leases_and_events() {
        let cm = json!({"data": {"a b": "1", "k": "2"}, "binaryData": {"k": "Mg=="}});
        let got = messages(config_map(&cm));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("data[a b]: Invalid value: \"a b\": a valid config key"));
        assert_eq!(
            got[1],
            "data[k]: Invalid value: \"k\": duplicate of key present in binaryData"
        );
        let big = json!({"data": {"k": "x".repeat(MAX_DATA_BYTES + 1)}});
        assert_eq!(
            messages(config_map(&big)),
            [": Too long: may not be more than 1048576 bytes"]
        );
        let tls = json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "c"}});
        assert_eq!(messages(secret(&tls)), ["data[tls.key]: Required value"]);
        let old = json!({"type": "Opaque", "immutable": true, "data": {"a": "MQ=="}});
        let new = json!({"type": "kubernetes.io/tls", "data": {"a": "Mg=="}});
        assert_eq!(
            messages(immutable_data(SECRETS, &old, &new)),
            [
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let l = json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
        assert_eq!(
            messages(lease(&l)),
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let e = json!({"metadata": {"namespace": "a"}, "involvedObject": {"namespace": "b"}});
        assert_eq!(
            messages(event(&e)),
            ["involvedObject.namespace: Invalid value: \"b\": does not match event.namespace"]
        );
        let node_event =
            json!({"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Node"}});
        assert!(event(&node_event).is_empty());
    }
}
