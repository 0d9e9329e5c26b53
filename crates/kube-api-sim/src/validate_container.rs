//! One container's checks, as `validateContainerCommon`
//! (pkg/apis/core/validation in the Kubernetes repository, 1.32) makes
//! them: a DNS-label name, an image, the termination message policy, ports,
//! environment variables (names, `valueFrom`), `envFrom`, volume mounts of
//! declared volumes and the pull policy.

use std::collections::HashSet;

use serde_json::Value;

use super::error::Cause;
use super::quantity::{self, Quantity};
use super::validate_names as names;

/// The array at `field` (empty when absent or not an array).
pub(super) fn list<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The string at `field` (empty when absent or not a string).
pub(super) fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// `validateContainerCommon`: name, image, ports, env and volume mounts.
pub fn container(causes: &mut Vec<Cause>, p: &str, c: &Value, vols: &HashSet<String>) {
    let name = str_of(c, "name");
    if name.is_empty() {
        causes.push(Cause::required(format!("{p}.name")));
    } else {
        for why in names::dns_label(name) {
            causes.push(Cause::invalid(format!("{p}.name"), name, &why));
        }
    }
    if str_of(c, "image").is_empty() {
        causes.push(Cause::required(format!("{p}.image")));
    }
    // Omitted, these are defaulted (`File`, and a pull policy from the tag).
    enum_field(
        causes,
        &format!("{p}.terminationMessagePolicy"),
        c,
        "terminationMessagePolicy",
        &["File", "FallbackToLogsOnError"],
    );
    let mut port_names = HashSet::new();
    for (i, port) in list(c, "ports").iter().enumerate() {
        let idx = format!("{p}.ports[{i}]");
        let pname = str_of(port, "name");
        if !pname.is_empty() {
            let errs = names::port_name(pname);
            for why in &errs {
                causes.push(Cause::invalid(format!("{idx}.name"), pname, why));
            }
            if errs.is_empty() && !port_names.insert(pname) {
                causes.push(Cause::duplicate(format!("{idx}.name"), &Value::from(pname)));
            }
        }
        let range = "must be between 1 and 65535, inclusive";
        match port["containerPort"].as_i64().unwrap_or(0) {
            0 => causes.push(Cause::required(format!("{idx}.containerPort"))),
            n if !(1..=65535).contains(&n) => causes.push(Cause::invalid_value(
                format!("{idx}.containerPort"),
                &Value::from(n),
                range,
            )),
            _ => {}
        }
        let host = port["hostPort"].as_i64().unwrap_or(0);
        if host != 0 && !(1..=65535).contains(&host) {
            causes.push(Cause::invalid_value(
                format!("{idx}.hostPort"),
                &Value::from(host),
                range,
            ));
        }
        // An omitted protocol is defaulted to TCP.
        if let Some(proto) = port["protocol"].as_str() {
            let ok = ["SCTP", "TCP", "UDP"];
            if proto.is_empty() {
                causes.push(Cause::required(format!("{idx}.protocol")));
            } else if !ok.contains(&proto) {
                causes.push(Cause::not_supported(format!("{idx}.protocol"), proto, &ok));
            }
        }
    }
    for (i, env) in list(c, "env").iter().enumerate() {
        let name_path = format!("{p}.env[{i}].name");
        let name = str_of(env, "name");
        if name.is_empty() {
            causes.push(Cause::required(&name_path));
        }
        for why in names::env_var_name(name) {
            causes.push(Cause::invalid(&name_path, name, &why));
        }
        value_from(causes, &format!("{p}.env[{i}].valueFrom"), env);
    }
    env_from(causes, &format!("{p}.envFrom"), c);
    let mut mount_points = HashSet::new();
    for (i, m) in list(c, "volumeMounts").iter().enumerate() {
        let idx = format!("{p}.volumeMounts[{i}]");
        let vol = str_of(m, "name");
        if vol.is_empty() {
            causes.push(Cause::required(format!("{idx}.name")));
        }
        if !vols.contains(vol) {
            causes.push(Cause::not_found(format!("{idx}.name"), &Value::from(vol)));
        }
        let mp = str_of(m, "mountPath");
        if mp.is_empty() {
            causes.push(Cause::required(format!("{idx}.mountPath")));
        }
        if !mount_points.insert(mp) {
            causes.push(Cause::invalid(
                format!("{idx}.mountPath"),
                mp,
                "must be unique",
            ));
        }
    }
    enum_field(
        causes,
        &format!("{p}.imagePullPolicy"),
        c,
        "imagePullPolicy",
        &["Always", "IfNotPresent", "Never"],
    );
    resources(causes, &format!("{p}.resources"), &c["resources"]);
}

/// Whether a request may be below its limit (`IsOvercommitAllowed`): native
/// resources (no domain, or a `kubernetes.io/` one) other than huge pages.
fn overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    native && !name.starts_with("hugepages-")
}

/// `ValidateResourceRequirements` for a container: no negative quantity; a
/// request no more than its limit, and equal to it (which must be set) for
/// a resource that cannot be overcommitted. (Malformed quantities never get
/// here: they make the body undecodable.)
fn resources(causes: &mut Vec<Cause>, path: &str, r: &Value) {
    let none = serde_json::Map::new();
    let map = |f: &str| r.get(f).and_then(Value::as_object).unwrap_or(&none);
    let (limits, requests) = (map("limits"), map("requests"));
    let (lim_path, req_path) = (format!("{path}.limits"), format!("{path}.requests"));
    let negative = |causes: &mut Vec<Cause>, at: &str, q: &Quantity| {
        if q.is_negative() {
            causes.push(Cause::invalid(
                at,
                &q.canonical(),
                "must be greater than or equal to 0",
            ));
        }
    };
    for (name, v) in limits {
        if let Some(q) = quantity::of_value(v) {
            negative(causes, &format!("{lim_path}[{name}]"), &q);
        }
    }
    for (name, v) in requests {
        let Some(q) = quantity::of_value(v) else {
            continue;
        };
        negative(causes, &format!("{req_path}[{name}]"), &q);
        let overcommit = overcommit_allowed(name);
        let Some(limit) = limits.get(name) else {
            if !overcommit {
                causes.push(Cause::required_because(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            continue;
        };
        let Some(limit) = quantity::of_value(limit) else {
            continue;
        };
        let why = match q.compare(&limit) {
            Some(std::cmp::Ordering::Equal) | None => continue,
            Some(_) if !overcommit => "must be equal to",
            Some(std::cmp::Ordering::Greater) => "must be less than or equal to",
            Some(std::cmp::Ordering::Less) => continue,
        };
        let why = format!("{why} {name} limit of {}", limit.canonical());
        causes.push(Cause::invalid(&req_path, &q.canonical(), &why));
    }
}

/// A referenced ConfigMap's or Secret's name: a DNS subdomain.
fn ref_name(causes: &mut Vec<Cause>, path: &str, r: &Value) {
    let name = str_of(r, "name");
    if !name.is_empty() {
        for why in names::dns_subdomain(name) {
            causes.push(Cause::invalid(format!("{path}.name"), name, &why));
        }
    }
}

/// `validateEnvVarValueFrom`: exactly one source, not next to a `value`;
/// a key selector names a key (`validateConfigMapKeySelector`).
fn value_from(causes: &mut Vec<Cause>, path: &str, env: &Value) {
    let Some(from) = env.get("valueFrom").filter(|v| v.is_object()) else {
        return;
    };
    let mut sources = 0;
    // `fileKeyRef` is newer than 1.32; it counts as a source so a body that
    // uses it is not refused for having none.
    for src in [
        "fieldRef",
        "resourceFieldRef",
        "configMapKeyRef",
        "secretKeyRef",
        "fileKeyRef",
    ] {
        let Some(sel) = from.get(src).filter(|v| !v.is_null()) else {
            continue;
        };
        sources += 1;
        if matches!(src, "configMapKeyRef" | "secretKeyRef") {
            let sp = format!("{path}.{src}");
            ref_name(causes, &sp, sel);
            let key = str_of(sel, "key");
            if key.is_empty() {
                causes.push(Cause::required(format!("{sp}.key")));
            }
            for why in names::config_key(key)
                .into_iter()
                .filter(|_| !key.is_empty())
            {
                causes.push(Cause::invalid(format!("{sp}.key"), key, &why));
            }
        }
    }
    let why = if sources == 0 {
        "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
    } else if !str_of(env, "value").is_empty() {
        "may not be specified when `value` is not empty"
    } else if sources > 1 {
        "may not have more than one field specified at a time"
    } else {
        return;
    };
    causes.push(Cause::invalid(path, "", why));
}

/// `ValidateEnvFrom`: a prefix is an environment variable name, and each
/// entry has exactly one source (reported at `envFrom`, without an index).
fn env_from(causes: &mut Vec<Cause>, path: &str, c: &Value) {
    for (i, e) in list(c, "envFrom").iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let prefix = str_of(e, "prefix");
        if !prefix.is_empty() {
            for why in names::env_var_name(prefix) {
                causes.push(Cause::invalid(format!("{idx}.prefix"), prefix, &why));
            }
        }
        let mut sources = 0;
        for src in ["configMapRef", "secretRef"] {
            let Some(r) = e.get(src).filter(|v| !v.is_null()) else {
                continue;
            };
            sources += 1;
            let sp = format!("{idx}.{src}");
            if str_of(r, "name").is_empty() {
                causes.push(Cause::required(format!("{sp}.name")));
            } else {
                ref_name(causes, &sp, r);
            }
        }
        if sources == 0 {
            causes.push(Cause::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            causes.push(Cause::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// An enumerated string field when given: `Required value` if empty,
/// `Unsupported value` (with the supported values) if unknown.
pub fn enum_field(causes: &mut Vec<Cause>, path: &str, obj: &Value, field: &str, ok: &[&str]) {
    match obj.get(field).and_then(Value::as_str) {
        Some("") => causes.push(Cause::required(path)),
        Some(v) if !ok.contains(&v) => causes.push(Cause::not_supported(path, v, ok)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(c: Value) -> Vec<String> {
        let mut causes = Vec::new();
        container(&mut causes, "c", &c, &HashSet::new());
        crate::error::cause_texts(causes)
    }

    #[test]
    fn requests_and_limits_compare_by_value_and_kind_of_resource() {
        let with = |r: Value| json!({"name": "c", "image": "i", "resources": r});
        // Native resources may be overcommitted, written in any suffix.
        assert!(messages(with(json!({
            "requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "1G",
                "example.kubernetes.io/thing": "1"},
            "limits": {"cpu": "0.5", "memory": "0.5Gi", "ephemeral-storage": "1e9",
                "example.kubernetes.io/thing": "3"}})))
        .is_empty());
        // Huge pages and extended resources may not.
        assert_eq!(
            messages(with(json!({
                "requests": {"hugepages-2Mi": "2Mi", "memory": "1.5Gi", "cpu": 2},
                "limits": {"hugepages-2Mi": "4Mi", "memory": "1Gi", "cpu": "1.5"}}))),
            [
                "c.resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1500m",
                "c.resources.requests: Invalid value: \"2Mi\": must be equal to hugepages-2Mi limit of 4Mi",
                "c.resources.requests: Invalid value: \"1536Mi\": must be less than or equal to memory limit of 1Gi",
            ]
        );
        assert_eq!(
            messages(with(json!({"requests": {"cpu": "-100m"}}))),
            ["c.resources.requests[cpu]: Invalid value: \"-100m\": must be greater than or equal to 0"]
        );
    }

    #[test]
    fn env_sources_env_from_and_policies() {
        let c = json!({"name": "c", "image": "i", "imagePullPolicy": "Sometimes",
            "env": [
                {"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                {"name": "B", "valueFrom": {}},
                {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": ""},
                    "configMapKeyRef": {"name": "Bad", "key": "k"}}},
            ],
            "envFrom": [{"prefix": "P=", "secretRef": {"name": ""}}, {}]});
        assert_eq!(
            messages(c),
            [
                "c.env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
                "c.env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                "c.env[2].valueFrom.configMapKeyRef.name: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "c.env[2].valueFrom.secretKeyRef.key: Required value",
                "c.env[2].valueFrom: Invalid value: \"\": may not have more than one field specified at a time",
                "c.envFrom[0].prefix: Invalid value: \"P=\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "c.envFrom[0].secretRef.name: Required value",
                "c.envFrom: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
                "c.imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            ]
        );
    }
}
