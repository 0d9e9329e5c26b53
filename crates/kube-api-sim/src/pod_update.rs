//! What a pod update may change, following the real API server's
//! `ValidatePodUpdate` (pkg/apis/core/validation/validation.go in the
//! Kubernetes repository): the number of containers is fixed, container and
//! init container images may change (but not be emptied),
//! `activeDeadlineSeconds` may be set or lowered, tolerations may be added
//! (existing ones only change their `tolerationSeconds`), scheduling gates
//! may be removed, and `terminationGracePeriodSeconds` may go from a
//! negative value to 1. Any other change in `spec` is a 422 `Forbidden` at
//! `spec`.

use serde_json::{Map, Value};

use super::error::Cause;
use super::validate_container::list;

/// The fields a pod update may change, in the real server's words.
const UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

const MAX_INT32: i64 = i32::MAX as i64;

/// `ValidateContainerUpdates`: same number of containers, non-empty images
/// without surrounding whitespace. `Err` stops the validation there.
fn containers(old: &Value, new: &Value, field: &str, causes: &mut Vec<Cause>) -> Result<(), ()> {
    let (before, after) = (list(old, field), list(new, field));
    if before.len() != after.len() {
        causes.push(Cause::forbidden(
            format!("spec.{field}"),
            "pod updates may not add or remove containers",
        ));
        return Err(());
    }
    for (i, c) in after.iter().enumerate() {
        let path = format!("spec.{field}[{i}].image");
        match c.get("image").and_then(Value::as_str).unwrap_or("") {
            "" => causes.push(Cause::required(path)),
            image if image.trim() != image => causes.push(Cause::invalid_value(
                path,
                &Value::from(image),
                "must not have leading or trailing whitespace",
            )),
            _ => {}
        }
    }
    Ok(())
}

/// The `activeDeadlineSeconds` rules: set from nothing, or lowered; never
/// removed. `Err` stops the validation there.
fn deadline(old: &Value, new: &Value, causes: &mut Vec<Cause>) -> Result<(), ()> {
    let path = "spec.activeDeadlineSeconds";
    match (
        old.get("activeDeadlineSeconds"),
        new.get("activeDeadlineSeconds"),
    ) {
        (_, Some(n)) => {
            let value = n.as_i64().unwrap_or(-1);
            if !(0..=MAX_INT32).contains(&value) {
                causes.push(Cause::invalid_value(
                    path,
                    n,
                    &format!("must be between 0 and {MAX_INT32}, inclusive"),
                ));
                return Err(());
            }
            if let Some(o) = old.get("activeDeadlineSeconds").and_then(Value::as_i64) {
                if o < value {
                    causes.push(Cause::invalid_value(
                        path,
                        n,
                        "must be less than or equal to previous value",
                    ));
                    return Err(());
                }
            }
        }
        (Some(_), None) => causes.push(Cause::invalid_value(
            path,
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }
    Ok(())
}

/// `validateOnlyAddedTolerations`: every old toleration must still be there,
/// except that its `tolerationSeconds` may differ.
fn tolerations(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let without_seconds = |t: &Value| {
        let mut t = normalized(t);
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let after: Vec<Value> = list(new, "tolerations")
        .iter()
        .map(without_seconds)
        .collect();
    if list(old, "tolerations")
        .iter()
        .any(|t| !after.contains(&without_seconds(t)))
    {
        causes.push(Cause::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
}

/// Scheduling gates may only be removed.
fn scheduling_gates(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let before = list(old, "schedulingGates");
    for (i, g) in list(new, "schedulingGates").iter().enumerate() {
        if !before.iter().any(|o| o.get("name") == g.get("name")) {
            let name = g.get("name").and_then(Value::as_str).unwrap_or("");
            causes.push(Cause::forbidden(
                format!("spec.schedulingGates[{i}].name"),
                &format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }
}

/// A value without `null`s and empty lists, which the real server's
/// semantic comparison treats as absent.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null() && !v.as_array().is_some_and(Vec::is_empty))
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// `new` with what an update may change taken from `old` (the real
/// server's "munged" spec).
fn munged(old: &Value, new: &Value) -> Value {
    let mut s = normalized(new);
    let Some(m) = s.as_object_mut() else {
        return s;
    };
    for field in ["containers", "initContainers"] {
        let before = list(old, field);
        if let Some(Value::Array(cs)) = m.get_mut(field) {
            for (c, o) in cs.iter_mut().zip(before) {
                if let Some(c) = c.as_object_mut() {
                    match o.get("image") {
                        Some(image) => c.insert("image".into(), image.clone()),
                        None => c.remove("image"),
                    };
                }
            }
        }
    }
    for field in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
        match old.get(field).map(normalized) {
            Some(v) if !v.is_null() && !v.as_array().is_some_and(Vec::is_empty) => {
                m.insert(field.into(), v)
            }
            _ => m.remove(field),
        };
    }
    let grace = |s: &Value| {
        s.get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
    };
    if grace(old).is_some_and(|g| g < 0) && grace(new) == Some(1) {
        m.insert(
            "terminationGracePeriodSeconds".into(),
            old["terminationGracePeriodSeconds"].clone(),
        );
    }
    s
}

/// The causes of a forbidden pod spec change (empty if allowed).
pub fn causes(old: &Value, new: &Value) -> Vec<Cause> {
    let null = Value::Null;
    let (old, new) = (
        old.get("spec").unwrap_or(&null),
        new.get("spec").unwrap_or(&null),
    );
    let mut causes = Vec::new();
    if containers(old, new, "containers", &mut causes).is_err()
        || containers(old, new, "initContainers", &mut causes).is_err()
        || deadline(old, new, &mut causes).is_err()
    {
        return causes;
    }
    tolerations(old, new, &mut causes);
    scheduling_gates(old, new, &mut causes);
    let (before, after) = (normalized(old), munged(old, new));
    if before == after {
        return causes;
    }
    // The real message ends with a Go diff of the two specs; this one names
    // the top-level fields that differ instead.
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut changed: Vec<String> = keys(&before)
        .into_iter()
        .chain(keys(&after))
        .filter(|k| before.get(k) != after.get(k))
        .collect();
    changed.sort();
    changed.dedup();
    causes.push(Cause::forbidden(
        "spec",
        &format!(
            "pod updates may not change fields other than {UPDATABLE}\nchanged: spec.{}",
            changed.join(", spec.")
        ),
    ));
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::causes;

    fn pod(spec: serde_json::Value) -> serde_json::Value {
        json!({ "spec": spec })
    }

    fn messages(old: serde_json::Value, new: serde_json::Value) -> Vec<String> {
        crate::error::cause_texts(causes(&pod(old), &pod(new)))
    }

    #[test]
    fn allowed_changes() {
        let old = json!({"containers": [{"name": "c", "image": "a"}], "activeDeadlineSeconds": 10,
            "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 5}],
            "schedulingGates": [{"name": "g"}], "terminationGracePeriodSeconds": -1});
        let new = json!({"containers": [{"name": "c", "image": "b"}], "activeDeadlineSeconds": 5,
            "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 9}, {"key": "x"}],
            "terminationGracePeriodSeconds": 1});
        assert!(messages(old, new).is_empty());
    }

    #[test]
    fn forbidden_changes() {
        let c = json!([{"name": "c", "image": "a"}]);
        assert_eq!(
            messages(json!({"containers": c}), json!({"containers": []})),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        assert_eq!(
            messages(
                json!({"containers": c, "activeDeadlineSeconds": 10}),
                json!({"containers": c, "activeDeadlineSeconds": 20})
            ),
            ["spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"]
        );
        assert_eq!(
            messages(json!({"containers": c, "activeDeadlineSeconds": 10}), json!({"containers": c})),
            ["spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"]
        );
        assert_eq!(
            messages(
                json!({"containers": c, "tolerations": [{"key": "k"}]}),
                json!({"containers": c, "tolerations": [{"key": "k", "value": "v"}]})
            ),
            ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
        let m = messages(
            json!({"containers": c, "terminationGracePeriodSeconds": 30}),
            json!({"containers": c, "terminationGracePeriodSeconds": 1}),
        );
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"), "{m:?}");
        assert!(
            m[0].ends_with("changed: spec.terminationGracePeriodSeconds"),
            "{m:?}"
        );
    }
}
