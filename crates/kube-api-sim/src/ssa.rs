//! Server-side apply's field ownership (`metadata.managedFields`), following
//! the API server's field manager (k8s.io/apiserver/pkg/endpoints/handlers/
//! fieldmanager and structured-merge-diff):
//!
//! - every write records which manager set which fields, as `FieldsV1`
//!   (`{"f:spec":{"f:parallelism":{}}}`, list items by merge key
//!   `k:{"name":"c"}`); a create or update is an `Update` entry of its
//!   `fieldManager` (or the client's user-agent prefix), which takes over
//!   the fields it changed;
//! - an apply (`fieldManager` required) owns exactly the fields of the
//!   applied configuration; a field another manager owns and the apply
//!   would change is a `409 Conflict` listing each field, unless
//!   `force=true`, which takes it over; fields the manager applied before
//!   and no longer applies are removed unless another manager owns them.

use serde_json::{json, Value};

use super::error::{ApiError, Cause};
use super::patch::strategic_merge;

mod fields;

use fields::{
    field_set, fields_v1_of, from_fields_v1, get_at, remove_at, show, to_fields_v1, FieldSet, Path,
};

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut fields = FieldSet::new();
            from_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: e["subresource"].as_str().map(str::to_string),
                fields,
            }
        })
        .collect()
}

/// A `managedFields` entry without its fields.
fn entry_json(manager: &str, operation: &str, api_version: &str, time: &str) -> Value {
    json!({"manager": manager, "operation": operation, "apiVersion": api_version,
        "time": time, "fieldsType": "FieldsV1"})
}

fn store_entries(obj: &mut Value, list: Vec<Entry>) {
    let out: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = entry_json(&e.manager, &e.operation, &e.api_version, &e.time);
            v["fieldsV1"] = to_fields_v1(&e.fields);
            if let Some(s) = e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if out.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(out);
    }
}

/// How a conflict names another manager (apiserver `printManager`).
fn print_manager(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if let Some(sub) = &e.subresource {
        s = format!("{s} with subresource {sub:?}");
    }
    if e.operation == "Update" {
        s = format!("{s} using {} at {}", e.api_version, e.time);
    }
    s
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `409 Conflict` of an apply (apiserver `NewConflictError`).
fn conflict_error(conflicts: &[(Entry, Path)]) -> ApiError {
    let message = if let [(e, p)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(e),
            show(p)
        )
    } else {
        let mut by_manager: Vec<(String, Vec<String>)> = Vec::new();
        for (e, p) in conflicts {
            let m = print_manager(e);
            match by_manager.iter_mut().find(|(k, _)| *k == m) {
                Some((_, paths)) => paths.push(show(p)),
                None => by_manager.push((m, vec![show(p)])),
            }
        }
        by_manager.sort();
        let lines: Vec<String> = by_manager
            .into_iter()
            .flat_map(|(m, paths)| {
                std::iter::once(format!("conflicts with {m}:"))
                    .chain(paths.into_iter().map(|p| format!("- {p}")))
            })
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let mut e = ApiError::apply_conflict(message);
    e.causes = conflicts
        .iter()
        .map(|(entry, p)| Cause {
            reason: "FieldManagerConflict",
            field: show(p),
            message: format!("conflict with {}", print_manager(entry)),
        })
        .collect();
    e
}

/// Server-side apply of `applied` by `manager` onto `current` (`None`:
/// the object does not exist yet). Returns the new object with its
/// `managedFields`.
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
) -> Result<Value, ApiError> {
    let empty = json!({});
    let cur = current.unwrap_or(&empty);
    let mut list = entries(cur);
    let new_set = field_set(applied);
    let is_me = |e: &Entry| e.manager == manager && e.operation == "Apply";
    let mut conflicts = Vec::new();
    for e in list.iter().filter(|e| !is_me(e)) {
        for p in e.fields.intersection(&new_set) {
            let differs = if p.last().map(String::as_str) == Some(".") {
                false
            } else {
                get_at(cur, p) != get_at(applied, p)
            };
            if differs {
                conflicts.push((e.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&conflicts));
        }
        for e in list.iter_mut().filter(|e| !is_me(e)) {
            e.fields.retain(|p| !conflicts.iter().any(|(_, c)| c == p));
        }
    }
    let previous = list
        .iter()
        .find(|e| is_me(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut merged = cur.clone();
    strategic_merge(&mut merged, applied);
    if current.is_some() && merged == *cur && previous == new_set {
        // Nothing changes: not even the entry's time.
        return Ok(merged);
    }
    // What this manager no longer applies goes, unless someone else owns it.
    let others: FieldSet = list
        .iter()
        .filter(|e| !is_me(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut gone: Vec<&Path> = previous
        .difference(&new_set)
        .filter(|p| !others.contains(*p))
        .filter(|p| {
            // A list item stays while anyone owns a field inside it.
            p.last().map(String::as_str) != Some(".")
                || !others
                    .iter()
                    .chain(new_set.iter())
                    .any(|o| o.starts_with(&p[..p.len() - 1]))
        })
        .collect();
    gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in gone {
        remove_at(&mut merged, p);
    }
    list.retain(|e| !is_me(e));
    list.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: now(),
        subresource: None,
        fields: new_set,
    });
    store_entries(&mut merged, list);
    Ok(merged)
}

/// Records a create or update by `manager`: it owns what it changed (all
/// fields, for a create), other managers lose those fields, and fields the
/// write removed are nobody's.
pub fn record_update(current: Option<&Value>, new: &mut Value, manager: &str, api_version: &str) {
    if current.is_none() && new["metadata"].get("managedFields").is_none() {
        // A create: the manager owns every field it set (the entry
        // `store_entries` would write, built in one pass).
        let fields = fields_v1_of(new);
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        if fields.as_object().is_some_and(|m| !m.is_empty()) {
            let mut entry = entry_json(manager, "Update", api_version, &now());
            entry["fieldsV1"] = fields;
            new["metadata"]["managedFields"] = json!([entry]);
        }
        return;
    }
    let empty = json!({});
    let cur = current.unwrap_or(&empty);
    // A body that brings its own managedFields sets them (as on a real
    // server); otherwise the stored ones carry over.
    let mut list = if new["metadata"].get("managedFields").is_some() {
        entries(new)
    } else {
        entries(cur)
    };
    let (before, after) = (field_set(cur), field_set(new));
    let changed: FieldSet = after
        .iter()
        .filter(|p| {
            p.last().map(String::as_str) == Some(".") && !before.contains(*p)
                || p.last().map(String::as_str) != Some(".") && get_at(cur, p) != get_at(new, p)
        })
        .cloned()
        .collect();
    let removed: FieldSet = before.difference(&after).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        store_entries(new, list);
        return;
    }
    let is_me =
        |e: &Entry| e.manager == manager && e.operation == "Update" && e.subresource.is_none();
    for e in list.iter_mut() {
        e.fields.retain(|p| !removed.contains(p));
        if !is_me(e) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    match list.iter_mut().find(|e| is_me(e)) {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now();
            e.api_version = api_version.to_string();
        }
        None => list.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time: now(),
            subresource: None,
            fields: changed,
        }),
    }
    store_entries(new, list);
}

/// The manager of a write: `fieldManager`, else the client's user-agent
/// up to its first `/` (as the API server names managers).
pub fn manager(user_agent: &str, q: &std::collections::HashMap<String, String>) -> String {
    match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None => user_agent
            .split('/')
            .next()
            .unwrap_or("")
            .chars()
            .take(128)
            .collect(),
    }
}

/// `ValidatePatchOptions`: an apply needs a `fieldManager`; `force` is
/// only for applies. Returns whether to force.
pub fn patch_options(
    q: &std::collections::HashMap<String, String>,
    apply: bool,
) -> Result<bool, ApiError> {
    let force = q.get("force").map(String::as_str);
    let mut causes = Vec::new();
    if apply {
        if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
            let mut c = Cause::required("fieldManager");
            c.message = "Required value: is required for apply patch".into();
            causes.push(c);
        }
    } else if force.is_some() {
        causes.push(Cause::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("PatchOptions", "meta.k8s.io", "", causes));
    }
    Ok(force == Some("true"))
}

/// An apply body: a JSON or YAML object.
pub fn decode_applied(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .or_else(|_| serde_yaml_ng::from_slice(body))
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: the apply configuration must be an object",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_creates_entry_is_the_field_set_of_the_object() {
        let objects = [
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "j", "namespace": "d", "generateName": "j-", "uid": "u",
                    "labels": {"a": "1", "b": ""}, "annotations": {}, "finalizers": ["x", "y"]},
                "spec": {"suspend": true, "backoffLimit": 0, "selector": {},
                    "template": {"metadata": {"labels": {"a": "1"}}, "spec": {
                        "restartPolicy": "Never", "volumes": [{"name": "w", "emptyDir": {}}, {"emptyDir": {}}],
                        "initContainers": [{"name": "i", "image": "x", "args": ["a", "b"]}],
                        "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "name": "h"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                            "volumeMounts": [{"name": "w", "mountPath": "/w"}], "command": []}]}}},
                "status": {"active": 1}}),
            json!({"metadata": {"name": "only-identity", "uid": "u"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}, "binaryData": {}}),
            json!({}),
        ];
        for obj in objects {
            assert_eq!(fields_v1_of(&obj), to_fields_v1(&field_set(&obj)), "{obj}");
            let mut created = obj.clone();
            record_update(None, &mut created, "m", "v1");
            let via_set = {
                let mut o = obj.clone();
                // The general path: no stored entries, every field changed.
                let list = vec![Entry {
                    manager: "m".into(),
                    operation: "Update".into(),
                    api_version: "v1".into(),
                    time: String::new(),
                    subresource: None,
                    fields: field_set(&obj),
                }];
                store_entries(&mut o, list);
                o
            };
            let strip_time = |mut v: Value| {
                if let Some(a) = v["metadata"]["managedFields"].as_array_mut() {
                    for e in a {
                        e["time"] = json!("");
                    }
                }
                v
            };
            assert_eq!(strip_time(created), strip_time(via_set));
        }
    }

    #[test]
    fn fields_v1_round_trip_and_paths() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}});
        let set = field_set(&obj);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}},
                    "f:restartPolicy": {}}})
        );
        let mut back = FieldSet::new();
        from_fields_v1(&v1, &mut Vec::new(), &mut back);
        assert_eq!(back, set);
        let image: Path = ["f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:image"]
            .map(String::from)
            .to_vec();
        assert_eq!(show(&image), ".spec.containers[name=\"c\"].image");
        assert_eq!(get_at(&obj, &image), Some(&json!("i")));
    }

    #[test]
    fn apply_owns_removes_and_conflicts() {
        let a = json!({"metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        let v = apply(None, &a, "alice", false, "v1").unwrap();
        // Alice stops applying y: it goes.
        let v = apply(Some(&v), &json!({"data": {"x": "1"}}), "alice", false, "v1").unwrap();
        assert_eq!(v["data"], json!({"x": "1"}));
        // Bob sets x to another value: a conflict naming the field.
        let e = apply(Some(&v), &json!({"data": {"x": "9"}}), "bob", false, "v1").unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .data.x"
        );
        // The same value is shared; force takes it over.
        apply(Some(&v), &json!({"data": {"x": "1"}}), "bob", false, "v1").unwrap();
        let v = apply(Some(&v), &json!({"data": {"x": "9"}}), "bob", true, "v1").unwrap();
        assert_eq!(v["data"]["x"], "9");
        let managers: Vec<&str> = v["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["bob"], "alice owned only x");
    }
}
