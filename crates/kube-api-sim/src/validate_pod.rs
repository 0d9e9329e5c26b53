//! Pod and pod template validation with the paths, reasons and messages of
//! `ValidatePodSpec` (pkg/apis/core/validation in the Kubernetes repository,
//! 1.32): volumes (a DNS-label name, exactly one source, the items of
//! configMap/secret sources), containers and init containers (required,
//! DNS-label names unique across both, an image, ports, environment variable
//! names and sources (`valueFrom`, `envFrom`), volume mounts of declared
//! volumes, pull and termination message policies), the restart policy, the
//! node selector, service account and node names, `activeDeadlineSeconds`,
//! and for pods (not templates) image whitespace.

use std::collections::HashSet;

use serde_json::Value;

use super::error::Cause;
use super::validate_container::{list, str_of};
use super::validate_names as names;

/// The volume sources in the order `validateVolumeSource` checks them; the
/// second one found is the one reported as forbidden.
const VOLUME_SOURCES: [&str; 30] = [
    "hostPath",
    "emptyDir",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// `ValidatePodCreate` past the metadata.
pub fn pod(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    pod_spec(&mut causes, "spec", spec, true);
    causes
}

/// `ValidateLocalNonReservedPath` of a key-to-path item.
pub fn item_path_problem(p: &str) -> Option<&'static str> {
    if p.starts_with('/') {
        Some("must be a relative path")
    } else if p.split('/').any(|s| s == "..") {
        Some("must not contain '..'")
    } else if p.starts_with("..") {
        Some("must not start with '..'")
    } else {
        None
    }
}

/// `validateVolumes`: returns the names of the valid volumes.
fn volumes(causes: &mut Vec<Cause>, path: &str, spec: &Value) -> HashSet<String> {
    let mut valid = HashSet::new();
    for (i, vol) in list(spec, "volumes").iter().enumerate() {
        let idx = format!("{path}.volumes[{i}]");
        let mut errs = Vec::new();
        let mut found = 0;
        for src in VOLUME_SOURCES {
            if vol.get(src).is_none_or(Value::is_null) {
                continue;
            }
            if found > 0 {
                errs.push(Cause::forbidden(
                    format!("{idx}.{src}"),
                    "may not specify more than 1 volume type",
                ));
                continue;
            }
            found += 1;
            if matches!(src, "configMap" | "secret") {
                for (j, item) in list(&vol[src], "items").iter().enumerate() {
                    let p = format!("{idx}.{src}.items[{j}]");
                    if str_of(item, "key").is_empty() {
                        errs.push(Cause::required(format!("{p}.key")));
                    }
                    let ip = str_of(item, "path");
                    if ip.is_empty() {
                        errs.push(Cause::required(format!("{p}.path")));
                    } else if let Some(why) = item_path_problem(ip) {
                        errs.push(Cause::invalid(format!("{p}.path"), ip, why));
                    }
                }
            }
        }
        if found == 0 {
            errs.push(Cause::required_because(&idx, "must specify a volume type"));
        }
        let name = str_of(vol, "name");
        let name_path = format!("{idx}.name");
        if name.is_empty() {
            errs.push(Cause::required(&name_path));
        } else {
            for why in names::dns_label(name) {
                errs.push(Cause::invalid(&name_path, name, &why));
            }
        }
        if valid.contains(name) {
            errs.push(Cause::duplicate(&name_path, &Value::from(name)));
        }
        if errs.is_empty() {
            valid.insert(name.to_string());
        }
        causes.extend(errs);
    }
    valid
}

/// `ValidatePodSpec` for the fields above; `is_pod` adds the checks that
/// apply to pods but not to templates.
pub fn pod_spec(causes: &mut Vec<Cause>, path: &str, spec: &Value, is_pod: bool) {
    let vols = volumes(causes, path, spec);
    let containers = list(spec, "containers");
    let mut all_names = HashSet::new();
    if containers.is_empty() {
        causes.push(Cause::required(format!("{path}.containers")));
    }
    for (i, c) in containers.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        super::validate_container::container(causes, &p, c, &vols);
        let name = str_of(c, "name");
        if !all_names.insert(name) {
            causes.push(Cause::duplicate(format!("{p}.name"), &Value::from(name)));
        }
    }
    for (i, c) in list(spec, "initContainers").iter().enumerate() {
        let p = format!("{path}.initContainers[{i}]");
        super::validate_container::container(causes, &p, c, &vols);
        let name = str_of(c, "name");
        if all_names.contains(name) {
            causes.push(Cause::duplicate(format!("{p}.name"), &Value::from(name)));
        } else if !name.is_empty() {
            all_names.insert(name);
        }
    }
    // A missing policy is defaulted to `Always` (a Job then refuses it with
    // its own check, which also repeats an unsupported value).
    super::validate_container::enum_field(
        causes,
        &format!("{path}.restartPolicy"),
        spec,
        "restartPolicy",
        &["Always", "OnFailure", "Never"],
    );
    super::validate::check_labels(
        causes,
        &format!("{path}.nodeSelector"),
        spec.get("nodeSelector"),
    );
    for field in ["serviceAccountName", "nodeName"] {
        let v = str_of(spec, field);
        if !v.is_empty() {
            for why in names::dns_subdomain(v) {
                causes.push(Cause::invalid(format!("{path}.{field}"), v, &why));
            }
        }
    }
    if let Some(d) = spec["activeDeadlineSeconds"].as_i64() {
        if !(1..=i64::from(i32::MAX)).contains(&d) {
            causes.push(Cause::invalid_value(
                format!("{path}.activeDeadlineSeconds"),
                &Value::from(d),
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
    if is_pod {
        // `validateContainersOnlyForPod`.
        for (i, c) in containers.iter().enumerate() {
            let img = str_of(c, "image");
            if img.trim() != img {
                causes.push(Cause::invalid(
                    format!("{path}.containers[{i}].image"),
                    img,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(spec: Value, is_pod: bool) -> Vec<String> {
        let mut causes = Vec::new();
        pod_spec(&mut causes, "spec", &spec, is_pod);
        crate::error::cause_texts(causes)
    }

    #[test]
    fn volumes_containers_ports_env_and_mounts() {
        let spec = json!({
            "volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}, {"name": "w"}],
            "containers": [{"name": "c", "image": " img", "ports": [{"containerPort": 70000, "protocol": "TCP"}],
                "env": [{"name": "A=B"}], "volumeMounts": [{"name": "v", "mountPath": "/x"}]}],
            "initContainers": [{"name": "c", "image": "i"}],
            "restartPolicy": "Sometimes",
        });
        assert_eq!(
            messages(spec.clone(), true),
            [
                "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[1]: Required value: must specify a volume type",
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "spec.containers[0].volumeMounts[0].name: Not found: \"v\"",
                "spec.initContainers[0].name: Duplicate value: \"c\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.containers[0].image: Invalid value: \" img\": must not have leading or trailing whitespace",
            ]
        );
        // Templates skip the pod-only check.
        assert_eq!(messages(spec, false).len(), 7);
        assert_eq!(
            messages(json!({}), true),
            ["spec.containers: Required value"]
        );
    }
}
