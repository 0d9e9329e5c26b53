//! Field sets of server-side apply: the paths an object sets, in
//! `FieldsV1` form (`f:<field>`, `k:<merge key json>` for list items, `.`
//! for an item itself), reading and removing the value at a path, and a
//! path as the API server prints it.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::patch::merge_key;

/// A field path in `FieldsV1` terms: `f:<field>`, `k:<key json>`, or `.`
/// (a list item itself).
pub(super) type Path = Vec<String>;
pub(super) type FieldSet = BTreeSet<Path>;

/// Metadata fields that identify an object rather than configure it.
const IDENTITY: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The fields set in `obj` (without identity, type and `status`).
pub(super) fn field_set(obj: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(m) = obj.as_object() else {
        return set;
    };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if !IDENTITY.contains(&mk.as_str()) {
                        walk(mv, mk, vec!["f:metadata".into()], &mut set);
                    }
                }
            }
            _ => walk(v, k, Vec::new(), &mut set),
        }
    }
    set
}

/// The `k:` segment of a list item with merge key `key`.
fn item_key(item: &Value, key: &str) -> Option<String> {
    let v = item.get(key)?;
    Some(format!("k:{}", json!({ key: v })))
}

fn walk(v: &Value, field: &str, mut path: Path, set: &mut FieldSet) {
    path.push(format!("f:{field}"));
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                walk(child, k, path.clone(), set);
            }
        }
        Value::Array(items) if merge_key(field).is_some() && !items.is_empty() => {
            let key = merge_key(field).unwrap_or("name");
            for item in items {
                let Some(seg) = item_key(item, key) else {
                    set.insert(path.clone());
                    continue;
                };
                let mut ip = path.clone();
                ip.push(seg);
                let mut dot = ip.clone();
                dot.push(".".into());
                set.insert(dot);
                for (k, child) in item.as_object().into_iter().flatten() {
                    walk(child, k, ip.clone(), set);
                }
            }
        }
        _ => {
            set.insert(path);
        }
    }
}

/// `to_fields_v1(&field_set(obj))` in one pass, without the path set (a
/// create's entry, where the manager owns every field).
pub(super) fn fields_v1_of(obj: &Value) -> Value {
    let mut root = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                let mut meta = Map::new();
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if !IDENTITY.contains(&mk.as_str()) {
                        walk_v1(mv, mk, &mut meta);
                    }
                }
                if !meta.is_empty() {
                    root.insert("f:metadata".into(), Value::Object(meta));
                }
            }
            _ => walk_v1(v, k, &mut root),
        }
    }
    Value::Object(root)
}

/// [`walk`], writing the `FieldsV1` tree directly.
fn walk_v1(v: &Value, field: &str, into: &mut Map<String, Value>) {
    let Value::Object(slot) = into
        .entry(format!("f:{field}"))
        .or_insert_with(|| Value::Object(Map::new()))
    else {
        return;
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                walk_v1(child, k, slot);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let Some(key) = merge_key(field) else {
                return;
            };
            for item in items {
                let Some(seg) = item_key(item, key) else {
                    continue;
                };
                let Value::Object(item_slot) =
                    slot.entry(seg).or_insert_with(|| Value::Object(Map::new()))
                else {
                    continue;
                };
                item_slot.insert(".".into(), Value::Object(Map::new()));
                for (k, child) in item.as_object().into_iter().flatten() {
                    walk_v1(child, k, item_slot);
                }
            }
        }
        _ => {}
    }
}

/// The value at `path` (for `.`, the list item).
pub(super) fn get_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    let mut list_field = "";
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            cur = cur.get(f)?;
            list_field = f;
        } else if let Some(k) = seg.strip_prefix("k:") {
            let want: Value = serde_json::from_str(k).ok()?;
            let key = merge_key(list_field)?;
            cur = cur
                .as_array()?
                .iter()
                .find(|i| i.get(key) == want.get(key))?;
        }
    }
    Some(cur)
}

/// Removes the field (or, for a `.` path, the list item) at `path`.
pub(super) fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let (last, parent) = if last == "." {
        match parent.split_last() {
            Some((item, rest)) => (item, rest),
            None => return,
        }
    } else {
        (last, parent)
    };
    let mut cur = obj;
    let mut list_field = String::new();
    for seg in parent {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            list_field = f.to_string();
            cur.get_mut(f)
        } else if let Some(k) = seg.strip_prefix("k:") {
            let want: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let key = merge_key(&list_field).unwrap_or("name");
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| i.get(key) == want.get(key)))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        let want: Value = serde_json::from_str(k).unwrap_or(Value::Null);
        let key = merge_key(&list_field).unwrap_or("name");
        if let Some(a) = cur.as_array_mut() {
            a.retain(|i| i.get(key) != want.get(key));
        }
    }
}

pub(super) fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            let next = cur.entry(seg.clone()).or_insert_with(|| json!({}));
            match next {
                Value::Object(m) => cur = m,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

pub(super) fn from_fields_v1(v: &Value, path: &mut Path, set: &mut FieldSet) {
    for (k, child) in v.as_object().into_iter().flatten() {
        path.push(k.clone());
        if child.as_object().is_some_and(Map::is_empty) {
            set.insert(path.clone());
        } else {
            from_fields_v1(child, path, set);
        }
        path.pop();
    }
}

/// A path as the API server prints it in a conflict:
/// `.spec.containers[name="c"].image`.
pub(super) fn show(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let parts: Vec<String> = key
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    out
}
