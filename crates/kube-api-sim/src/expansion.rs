//! The fake kubelet's container environment and `$(VAR)` expansion, with
//! Kubernetes' rules:
//!
//! - `envFrom` first (ConfigMaps and Secrets, with their `prefix`), then
//!   `env` in order, each replacing an earlier variable of the same name;
//! - an `env` value is expanded against the variables defined *before* it
//!   (envFrom included); `valueFrom` values are not expanded;
//! - `command` and `args` are expanded against the final environment;
//! - `$$` is one `$`; `$(NAME)` is NAME's value; an undefined reference
//!   and an unterminated `$(` are kept verbatim; any other `$` is literal.
//!
//! A missing Secret or ConfigMap contributes nothing (a real kubelet would
//! refuse to start the container unless the reference is optional).

use std::collections::HashMap;

use base64::Engine;
use serde_json::Value;

use super::resources::{CONFIGMAPS, SECRETS};
use super::store::Store;

/// Expands `$(NAME)` references in `input` with `lookup`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if after.is_empty() {
            // A trailing `$` is literal.
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    // Unterminated: `$(` is kept and scanning goes on after it.
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A Secret's or ConfigMap's data as strings (Secret values decoded).
fn source_data(store: &Store, res: usize, ns: &str, name: &str) -> Vec<(String, String)> {
    let Ok(obj) = store.get(res, ns, name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            let Some(s) = v.as_str() else { continue };
            let value = if res == SECRETS {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            } else {
                s.to_string()
            };
            out.push((k.clone(), value));
        }
    }
    // A Secret written with `stringData` (plain values; they win over `data`,
    // as the API server merges them on write).
    if res == SECRETS {
        for (k, v) in obj["stringData"].as_object().into_iter().flatten() {
            if let Some(v) = v.as_str() {
                out.retain(|(key, _)| key != k);
                out.push((k.clone(), v.to_string()));
            }
        }
    }
    out
}

/// The value of a `valueFrom` reference: Secret and ConfigMap keys, and
/// the downward API's `fieldRef` to the pod's `metadata.name`,
/// `metadata.namespace`, `metadata.uid`, `metadata.labels['k']`,
/// `metadata.annotations['k']` and `spec.nodeName` (resource references
/// are not modelled and give nothing).
fn value_from(store: &Store, ns: &str, pod: &Value, from: &Value) -> Option<String> {
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return field_ref(pod, path);
    }
    let (res, sel) = if from["secretKeyRef"].is_object() {
        (SECRETS, &from["secretKeyRef"])
    } else if from["configMapKeyRef"].is_object() {
        (CONFIGMAPS, &from["configMapKeyRef"])
    } else {
        return None;
    };
    let (name, key) = (sel["name"].as_str()?, sel["key"].as_str()?);
    source_data(store, res, ns, name)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn field_ref(pod: &Value, path: &str) -> Option<String> {
    let meta = &pod["metadata"];
    for map in ["labels", "annotations"] {
        if let Some(key) = path
            .strip_prefix(&format!("metadata.{map}['"))
            .and_then(|k| k.strip_suffix("']"))
        {
            return meta[map][key].as_str().map(str::to_string);
        }
    }
    let v = match path {
        "metadata.name" => &meta["name"],
        "metadata.namespace" => &meta["namespace"],
        "metadata.uid" => &meta["uid"],
        "spec.nodeName" => &pod["spec"]["nodeName"],
        _ => return None,
    };
    v.as_str().map(str::to_string)
}

/// The container's environment as its process would see it.
pub fn environment(
    store: &Store,
    ns: &str,
    pod: &Value,
    container: &Value,
) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::new();
    for src in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = src["prefix"].as_str().unwrap_or("");
        let found = if let Some(n) = src["configMapRef"]["name"].as_str() {
            source_data(store, CONFIGMAPS, ns, n)
        } else if let Some(n) = src["secretRef"]["name"].as_str() {
            source_data(store, SECRETS, ns, n)
        } else {
            Vec::new()
        };
        for (k, v) in found {
            env.insert(format!("{prefix}{k}"), v);
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let value = match var["value"].as_str() {
            Some(v) if !v.is_empty() => expand(v, &|n| env.get(n).cloned()),
            _ if var["valueFrom"].is_object() => {
                value_from(store, ns, pod, &var["valueFrom"]).unwrap_or_default()
            }
            _ => String::new(),
        };
        env.insert(name.to_string(), value);
    }
    env
}

/// `command` or `args` expanded against `env`.
pub fn expand_list(list: &Value, env: &HashMap<String, String>) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| expand(s, &|n| env.get(n).cloned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn kubernetes_expansion_rules() {
        let vars = [("A", "alpha"), ("EMPTY", "")];
        let l = with(&vars);
        for (input, want) in [
            ("$(A)", "alpha"),
            ("x$(A)y", "xalphay"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$alpha"),
            ("$$$$", "$$"),
            ("$(B)", "$(B)"),
            ("$(EMPTY)", ""),
            ("$(", "$("),
            ("$(A", "$(A"),
            ("a$(b$(A)", "a$(b$(A)"),
            ("$A", "$A"),
            ("$", "$"),
            ("end$", "end$"),
            ("$()", "$()"),
            ("é$(A)é", "éalphaé"),
            ("$é", "$é"),
        ] {
            assert_eq!(expand(input, &l), want, "{input:?}");
        }
    }

    #[test]
    fn escaped_text_expands_to_itself() {
        let vars = [("GITHUB_TOKEN", "ghs_secret")];
        let l = with(&vars);
        for text in [
            "print $(GITHUB_TOKEN)",
            "$$",
            "$(PROMPT)",
            "$(",
            "a$b$",
            "$$$(",
        ] {
            assert_eq!(expand(&text.replace('$', "$$"), &l), text);
        }
    }
}
