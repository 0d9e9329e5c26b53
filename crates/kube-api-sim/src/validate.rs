//! Object validation as the real API server does it for the served types:
//! names (DNS-1123), labels, and the required fields of Jobs and Pods. Every
//! problem becomes a field cause of a 422 `Invalid`.

use serde_json::Value;

use super::error::Cause;
use super::resources::{Resource, CONFIGMAPS, JOBS, NAMESPACES, PODS, SECRETS};

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_VALUE_MAX: usize = 63;

fn is_dns_label(s: &str) -> bool {
    s.len() <= DNS1123_LABEL_MAX && matches_label_pattern(s)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, with no length limit (a subdomain's
/// parts have none of their own).
fn matches_label_pattern(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why `s` is not a DNS-1123 label, if it is not one.
pub fn dns_label_problem(s: &str) -> Option<String> {
    if s.len() > DNS1123_LABEL_MAX {
        return Some(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_dns_label(s) {
        return Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into());
    }
    None
}

/// Why `s` is not a DNS-1123 subdomain, if it is not one.
pub fn dns_subdomain_problem(s: &str) -> Option<String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Some(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if s.is_empty() || !s.split('.').all(matches_label_pattern) {
        return Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into());
    }
    None
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Why `k` is not a valid label/annotation key, if it is not one.
pub fn label_key_problem(k: &str) -> Option<String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        if let Some(why) = dns_subdomain_problem(p) {
            return Some(format!("prefix part {why}"));
        }
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(name) {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into());
    }
    None
}

/// Why `v` is not a valid label value, if it is not one.
pub fn label_value_problem(v: &str) -> Option<String> {
    if v.len() > LABEL_VALUE_MAX {
        return Some(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !v.is_empty() && !is_qualified_name_part(v) {
        return Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into());
    }
    None
}

fn check_labels(causes: &mut Vec<Cause>, path: &str, labels: Option<&Value>) {
    let Some(labels) = labels else { return };
    let Some(map) = labels.as_object() else {
        causes.push(Cause::invalid(
            path,
            &labels.to_string(),
            "must be a map of strings",
        ));
        return;
    };
    for (k, v) in map {
        if let Some(why) = label_key_problem(k) {
            causes.push(Cause::invalid(path, k, &why));
        }
        match v.as_str() {
            Some(s) => {
                if let Some(why) = label_value_problem(s) {
                    causes.push(Cause::invalid(path, s, &why));
                }
            }
            None => causes.push(Cause::invalid(
                path,
                &v.to_string(),
                "label values must be strings",
            )),
        }
    }
}

fn check_annotations(causes: &mut Vec<Cause>, path: &str, ann: Option<&Value>) {
    let Some(ann) = ann else { return };
    let Some(map) = ann.as_object() else {
        causes.push(Cause::invalid(
            path,
            &ann.to_string(),
            "must be a map of strings",
        ));
        return;
    };
    let mut total = 0usize;
    for (k, v) in map {
        if let Some(why) = label_key_problem(k) {
            causes.push(Cause::invalid(path, k, &why));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > 256 * 1024 {
        causes.push(Cause::invalid(path, "", "must have at most 262144 bytes"));
    }
}

/// Validates the metadata shared by all objects. `name` is the final name
/// (after `generateName`).
pub fn metadata(res: &Resource, res_id: usize, name: &str, meta: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause::required("metadata.name"));
    } else {
        // Namespaces need DNS labels; the rest (Jobs too) take DNS subdomains.
        let problem = if res_id == NAMESPACES {
            dns_label_problem(name)
        } else {
            dns_subdomain_problem(name)
        };
        if let Some(why) = problem {
            causes.push(Cause::invalid("metadata.name", name, &why));
        } else if res_id == JOBS && name.len() > LABEL_VALUE_MAX {
            // A Job's name becomes the value of the `job-name` and
            // `batch.kubernetes.io/job-name` template labels the server adds
            // before validating, so a real server reports the 63-character
            // limit there, once per label.
            let why = format!("must be no more than {LABEL_VALUE_MAX} characters");
            for _ in 0..2 {
                causes.push(Cause::invalid("spec.template.labels", name, &why));
            }
        }
    }
    check_labels(&mut causes, "metadata.labels", meta.get("labels"));
    check_annotations(&mut causes, "metadata.annotations", meta.get("annotations"));
    let _ = res;
    causes
}

fn pod_spec(causes: &mut Vec<Cause>, path: &str, spec: Option<&Value>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        causes.push(Cause::required(path));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(format!("{path}.containers"))),
        Some(list) if list.is_empty() => causes.push(Cause::required(format!("{path}.containers"))),
        Some(_) => {}
    }
    check_volume_items(causes, path, spec);
    let mut names = std::collections::HashSet::new();
    for field in ["initContainers", "containers"] {
        let Some(list) = spec.get(field).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in list.iter().enumerate() {
            let p = format!("{path}.{field}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{p}.name"))),
                Some(n) => {
                    if let Some(why) = dns_label_problem(n) {
                        causes.push(Cause::invalid(format!("{p}.name"), n, &why));
                    } else if !names.insert(n.to_string()) {
                        causes.push(Cause {
                            reason: "FieldValueDuplicate",
                            field: format!("{p}.name"),
                            message: format!("Duplicate value: {n:?}"),
                        });
                    }
                }
            }
            match c.get("image").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{p}.image"))),
                Some(img) if img.trim() != img => causes.push(Cause::invalid(
                    format!("{p}.image"),
                    img,
                    "must not have leading or trailing whitespace",
                )),
                _ => {}
            }
            if let Some(env) = c.get("env").and_then(Value::as_array) {
                for (j, e) in env.iter().enumerate() {
                    if e.get("name")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        causes.push(Cause::required(format!("{p}.env[{j}].name")));
                    }
                }
            }
        }
    }
}

/// Why `k` is not a valid ConfigMap or Secret key (as the API server says).
pub fn data_key_problem(k: &str) -> Option<String> {
    if k.is_empty() || k.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if !k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Some(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into(),
        );
    }
    if k == "." || k == ".." {
        return Some(format!("must not be '{k}'"));
    }
    if k.starts_with("..") {
        return Some("must not start with '..'".into());
    }
    None
}

/// Why `p` is not a valid volume item path (relative, no `..` element,
/// not starting with `..`).
pub fn item_path_problem(p: &str) -> Option<String> {
    if p.is_empty() {
        return Some("Required value".into());
    }
    if p.starts_with('/') {
        return Some("must be a relative path".into());
    }
    if p.split('/').any(|s| s == "..") {
        return Some("must not contain '..'".into());
    }
    if p.starts_with("..") {
        return Some("must not start with '..'".into());
    }
    None
}

fn check_data_keys(causes: &mut Vec<Cause>, obj: &Value) {
    for field in ["data", "binaryData", "stringData"] {
        for k in obj
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if let Some(why) = data_key_problem(k) {
                causes.push(Cause::invalid(format!("{field}[{k}]"), k, &why));
            }
        }
    }
}

fn check_volume_items(causes: &mut Vec<Cause>, path: &str, spec: &Value) {
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for src in ["configMap", "secret"] {
            let items = v
                .get(src)
                .and_then(|s| s.get("items"))
                .and_then(Value::as_array);
            for (j, item) in items.into_iter().flatten().enumerate() {
                let p = format!("{path}.volumes[{i}].{src}.items[{j}]");
                let key = item.get("key").and_then(Value::as_str).unwrap_or("");
                if let Some(why) = data_key_problem(key) {
                    causes.push(Cause::invalid(format!("{p}.key"), key, &why));
                }
                let ip = item.get("path").and_then(Value::as_str).unwrap_or("");
                if let Some(why) = item_path_problem(ip) {
                    causes.push(Cause::invalid(format!("{p}.path"), ip, &why));
                }
            }
        }
    }
}

/// Validates the kind-specific body of an object on create and update.
pub fn object(res_id: usize, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match res_id {
        PODS => {
            pod_spec(&mut causes, "spec", obj.get("spec"));
            if let Some(rp) = obj.pointer("/spec/restartPolicy").and_then(Value::as_str) {
                let ok = ["Always", "OnFailure", "Never"];
                if !ok.contains(&rp) {
                    causes.push(Cause::not_supported("spec.restartPolicy", rp, &ok));
                }
            }
        }
        JOBS => {
            let tmpl = obj.pointer("/spec/template");
            if tmpl.is_none() {
                causes.push(Cause::required("spec.template"));
            } else {
                // The real server's path: the template's ObjectMeta is inlined.
                check_labels(
                    &mut causes,
                    "spec.template.labels",
                    obj.pointer("/spec/template/metadata/labels"),
                );
                pod_spec(
                    &mut causes,
                    "spec.template.spec",
                    obj.pointer("/spec/template/spec"),
                );
                let ok = ["OnFailure", "Never"];
                match obj
                    .pointer("/spec/template/spec/restartPolicy")
                    .and_then(Value::as_str)
                {
                    // A missing policy is defaulted to `Always` first.
                    None => causes.push(Cause::not_supported(
                        "spec.template.spec.restartPolicy",
                        "Always",
                        &ok,
                    )),
                    Some(rp) if !ok.contains(&rp) => causes.push(Cause::not_supported(
                        "spec.template.spec.restartPolicy",
                        rp,
                        &ok,
                    )),
                    _ => {}
                }
            }
            if let Some(spec) = obj.get("spec") {
                causes.extend(super::validate_job::causes(spec));
                let name = obj["metadata"]["name"].as_str().unwrap_or("");
                causes.extend(super::validate_job::indexed_hostname(name, spec));
            }
            for field in [
                "backoffLimit",
                "activeDeadlineSeconds",
                "ttlSecondsAfterFinished",
                "parallelism",
                "completions",
            ] {
                if let Some(v) = obj.get("spec").and_then(|s| s.get(field)) {
                    let ok = v
                        .as_i64()
                        .is_some_and(|n| n >= 0 && (field != "activeDeadlineSeconds" || n > 0));
                    if !ok {
                        causes.push(Cause::invalid_value(
                            format!("spec.{field}"),
                            v,
                            "must be greater than or equal to 0",
                        ));
                    }
                }
            }
        }
        CONFIGMAPS | SECRETS => check_data_keys(&mut causes, obj),
        _ => {}
    }
    causes
}

/// Immutable fields of a Job: `spec.selector` always; `spec.template`
/// except, while the Job is suspended and has never started, its scheduling
/// directives, labels and annotations (as the real API server allows).
pub fn immutable(res_id: usize, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if res_id == PODS {
        return super::pod_update::causes(old, new);
    }
    if res_id != JOBS {
        return causes;
    }
    let immutable = |field: &str, causes: &mut Vec<Cause>| {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: "field is immutable".into(),
        })
    };
    if old.pointer("/spec/selector") != new.pointer("/spec/selector") {
        immutable("spec.selector", &mut causes);
    }
    if old.pointer("/spec/completions") != new.pointer("/spec/completions") {
        immutable("spec.completions", &mut causes);
    }
    let relaxed = old.pointer("/spec/suspend") == Some(&Value::Bool(true))
        && old.pointer("/status/startTime").is_none();
    let strip = |t: Option<&Value>| {
        let mut t = t.cloned().unwrap_or(Value::Null);
        if relaxed {
            if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
                m.remove("annotations");
            }
            if let Some(m) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for k in ["nodeSelector", "affinity", "tolerations", "schedulingGates"] {
                    m.remove(k);
                }
            }
        }
        t
    };
    if strip(old.pointer("/spec/template")) != strip(new.pointer("/spec/template")) {
        immutable("spec.template", &mut causes);
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_and_item_paths_as_the_api_server_checks_them() {
        for ok in ["f0", "key.name", "KEY_NAME", "a-b", ".hidden"] {
            assert_eq!(data_key_problem(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "..x", "a/b", "a b", "é"] {
            assert!(data_key_problem(bad).is_some(), "{bad:?}");
        }
        for ok in ["prd.md", "docs/a.md", "a/.b", "a..b"] {
            assert_eq!(item_path_problem(ok), None, "{ok}");
        }
        for bad in ["", "/etc/x", "..hidden", "../x", "a/../b", "a/.."] {
            assert!(item_path_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn dns_names() {
        assert!(dns_label_problem("abc-1").is_none());
        assert!(dns_label_problem(&"a".repeat(63)).is_none());
        assert!(dns_label_problem(&"a".repeat(64)).unwrap().contains("63"));
        for bad in ["", "-a", "a-", "A", "a_b", "a.b"] {
            assert!(dns_label_problem(bad).is_some(), "{bad}");
        }
        assert!(dns_subdomain_problem("a.b-c.d").is_none());
        assert!(dns_subdomain_problem("a..b").is_some());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(label_key_problem("app.kubernetes.io/name").is_none());
        assert!(label_key_problem("Name_1.x").is_none());
        assert!(label_key_problem("bad/key/x").is_some());
        assert!(label_key_problem("-x").is_some());
        assert!(label_value_problem("").is_none());
        assert!(label_value_problem("v1.2_3-x").is_none());
        assert!(label_value_problem("a/b").is_some());
        assert!(label_value_problem(&"v".repeat(64)).is_some());
    }
}
