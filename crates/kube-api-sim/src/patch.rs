//! The three patch types of the API server: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902), and strategic merge patch for the fields kubectl
//! and this project patch (lists merged by their Kubernetes merge keys).

use serde_json::{Map, Value};

use super::error::ApiError;

/// A patch body's type, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    /// Server-side apply; the simulator applies it as a strategic merge of the
    /// applied configuration (no field ownership tracking).
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            _ => Err(ApiError::unsupported_media_type(ct)),
        }
    }
}

/// Applies `patch` of type `pt` to `target`.
pub fn apply(target: &mut Value, pt: PatchType, patch: &[u8]) -> Result<(), ApiError> {
    match pt {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_slice(patch)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(target, &p).map_err(|e| {
                ApiError::invalid_patch(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })
        }
        PatchType::Merge => {
            let p: Value = parse_object(patch)?;
            json_patch::merge(target, &p);
            Ok(())
        }
        PatchType::Strategic | PatchType::Apply => {
            let p: Value = parse_object(patch)?;
            strategic_merge(target, &p);
            Ok(())
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: the patch must be a JSON object",
        ));
    }
    Ok(v)
}

/// The merge key of a list field, if the list merges element-wise.
pub fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "hostAliases" => "name",
        "volumeMounts" | "volumeDevices" => "mountPath",
        "ports" => "containerPort",
        "ownerReferences" => "uid",
        "conditions" => "type",
        _ => return None,
    })
}

/// Lists of scalars that merge as sets.
fn is_merged_scalar_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Strategic merge patch of `patch` into `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(pmap) = patch else {
        *target = patch.clone();
        return;
    };
    if pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = patch.clone();
        strip_directives(&mut clean);
        *target = clean;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tmap) = target else { return };
    if let Some(Value::Array(keep)) = pmap.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        tmap.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, pv) in pmap {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (tmap.get_mut(field), pv) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            tmap.remove(k);
            continue;
        }
        match (tmap.get_mut(k), pv) {
            (Some(tv @ Value::Object(_)), Value::Object(_)) => strategic_merge(tv, pv),
            (Some(Value::Array(tl)), Value::Array(pl)) => {
                if let Some(key) = merge_key(k) {
                    merge_list_by_key(tl, pl, key);
                } else if is_merged_scalar_list(k) {
                    for x in pl {
                        if !tl.contains(x) {
                            tl.push(x.clone());
                        }
                    }
                } else {
                    let mut v = pv.clone();
                    strip_directives(&mut v);
                    *tl = v.as_array().cloned().unwrap_or_default();
                }
            }
            _ => {
                let mut v = pv.clone();
                strip_directives(&mut v);
                tmap.insert(k.clone(), v);
            }
        }
    }
}

fn merge_list_by_key(target: &mut Vec<Value>, patch: &[Value], key: &str) {
    for pe in patch {
        let Some(kv) = pe.get(key) else {
            // An element without its merge key cannot be matched; append it.
            target.push(pe.clone());
            continue;
        };
        let pos = target.iter().position(|t| t.get(key) == Some(kv));
        let delete = pe.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut target[i], pe),
            (None, false) => {
                let mut v = pe.clone();
                strip_directives(&mut v);
                target.push(v);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            for x in m.values_mut() {
                strip_directives(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_and_env_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
            {"name": "b", "image": "y"}
        ]}});
        let p = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "env": [{"name": "B", "value": "2"}]},
                           {"name": "b", "$patch": "delete"}]}});
        strategic_merge(&mut t, &p);
        assert_eq!(
            t,
            json!({"spec": {"containers": [{"name": "a", "image": "x",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}})
        );
    }

    #[test]
    fn strategic_merge_null_deletes_and_scalars_replace() {
        let mut t = json!({"spec": {"suspend": true, "args": ["a"], "x": 1}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"suspend": false, "args": ["b"], "x": null}}),
        );
        assert_eq!(t, json!({"spec": {"suspend": false, "args": ["b"]}}));
    }

    #[test]
    fn merge_and_json_patch() {
        let mut t = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"suspend": true}});
        apply(&mut t, PatchType::Merge, br#"{"spec":{"suspend":false}}"#).unwrap();
        assert_eq!(t["spec"]["suspend"], json!(false));
        apply(
            &mut t,
            PatchType::Json,
            br#"[{"op":"add","path":"/metadata/labels/b","value":"2"}]"#,
        )
        .unwrap();
        assert_eq!(t["metadata"]["labels"]["b"], json!("2"));
        let e = apply(
            &mut t,
            PatchType::Json,
            br#"[{"op":"test","path":"/spec/suspend","value":true}]"#,
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            PatchType::from_content_type("text/plain").unwrap_err().code,
            415
        );
    }
}
