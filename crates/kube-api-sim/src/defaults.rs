//! Defaulting the real API server applies on create: Job selectors and pod
//! template labels, Job and Pod spec defaults, initial status.

use serde_json::{json, Map, Value};

use super::resources::{JOBS, NAMESPACES, PODS, SECRETS};

/// Label the Job controller puts on a Job's pods and selector.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    match v.get_mut(key) {
        Some(Value::Object(m)) => m,
        _ => unreachable!("just made an object"),
    }
}

fn set_default(m: &mut Map<String, Value>, k: &str, v: Value) {
    m.entry(k.to_string()).or_insert(v);
}

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    let pull = match m.get("image").and_then(Value::as_str) {
        Some(img)
            if img.ends_with(":latest") || !img.rsplit('/').next().unwrap_or("").contains(':') =>
        {
            "Always"
        }
        _ => "IfNotPresent",
    };
    set_default(m, "imagePullPolicy", json!(pull));
    set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(m, "terminationMessagePolicy", json!("File"));
    set_default(m, "resources", json!({}));
    if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut) {
        canonical_quantities(r);
    }
}

/// `SetDefaults_Pod`: a container (or init container) with a limit and no
/// request for that resource requests its limit.
fn requests_from_limits(spec: &mut Value) {
    for field in ["initContainers", "containers"] {
        let Some(Value::Array(list)) = spec.get_mut(field) else {
            continue;
        };
        for c in list {
            let Some(r) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(limits) = r.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            let requests = r.entry("requests").or_insert_with(|| json!({}));
            if let Some(requests) = requests.as_object_mut() {
                for (name, v) in limits {
                    requests.entry(name).or_insert(v);
                }
            }
        }
    }
}

/// `ComputePodQOS`: `Guaranteed` when every container limits cpu and memory
/// and the pod's summed requests equal its summed limits, `BestEffort` with
/// no cpu or memory request or limit above zero, `Burstable` otherwise.
fn qos_class(spec: &Value) -> &'static str {
    use super::quantity::{of_value, Quantity};
    type Sums = std::collections::BTreeMap<String, Quantity>;
    fn add(sums: &mut Sums, name: &str, q: Quantity) {
        let sum = match sums.get(name) {
            Some(s) => s.add(&q),
            None => Some(q),
        };
        if let Some(sum) = sum {
            sums.insert(name.to_string(), sum);
        }
    }
    let (mut requests, mut limits) = (Sums::new(), Sums::new());
    let mut guaranteed = true;
    for field in ["containers", "initContainers"] {
        for c in spec[field].as_array().into_iter().flatten() {
            let positive = |list: &str| -> Vec<(String, Quantity)> {
                c["resources"][list]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(name, _)| matches!(name.as_str(), "cpu" | "memory"))
                    .filter_map(|(name, v)| Some((name.clone(), of_value(v)?)))
                    .filter(|(_, q)| q.is_positive())
                    .collect()
            };
            for (name, q) in positive("requests") {
                add(&mut requests, &name, q);
            }
            let found = positive("limits");
            if found.len() < 2 {
                guaranteed = false;
            }
            for (name, q) in found {
                add(&mut limits, &name, q);
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    let equal = requests.len() == limits.len()
        && requests.iter().all(|(name, r)| {
            limits
                .get(name)
                .is_some_and(|l| l.compare(r) == Some(std::cmp::Ordering::Equal))
        });
    if guaranteed && equal {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Quantities are stored as `Quantity.String()` writes them (the real server
/// decodes them and encodes them again): `0.5` becomes `"500m"`, `1` (a
/// JSON number) `"1"`, `1024Mi` `"1Gi"`.
fn canonical_quantities(resources: &mut Map<String, Value>) {
    for list in ["limits", "requests"] {
        let Some(Value::Object(m)) = resources.get_mut(list) else {
            continue;
        };
        for v in m.values_mut() {
            if let Some(q) = super::quantity::of_value(v) {
                *v = Value::String(q.canonical());
            }
        }
    }
}

/// Defaults of a pod spec (also used for a Job's template).
pub fn pod_spec(spec: &mut Value, restart_default: &str) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!(restart_default));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "schedulerName", json!("default-scheduler"));
    set_default(m, "securityContext", json!({}));
    for field in ["initContainers", "containers"] {
        if let Some(Value::Array(list)) = m.get_mut(field) {
            list.iter_mut().for_each(default_container);
        }
    }
}

/// Applies create-time defaults to `obj` (whose uid is already set).
pub fn on_create(res: usize, obj: &mut Value) {
    match res {
        NAMESPACES => {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            let name = obj["metadata"]["name"].clone();
            let meta = obj_mut(obj, "metadata");
            if !meta.get("labels").is_some_and(Value::is_object) {
                meta.insert("labels".into(), json!({}));
            }
            if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
                labels.insert("kubernetes.io/metadata.name".into(), name);
            }
        }
        PODS => {
            let mut qos = "BestEffort";
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec, "Always");
                requests_from_limits(spec);
                qos = qos_class(spec);
            }
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        JOBS => job(obj),
        SECRETS => secret(obj),
        _ => {}
    }
}

/// `SetDefaults_Secret`: an empty or missing `type` is `Opaque`. And, as
/// the API server's conversion does on every write, `stringData` is merged
/// into `data` (base64; a key in both takes the `stringData` value) and
/// never stored or returned: it is write-only.
fn secret(obj: &mut Value) {
    use base64::Engine as _;
    let string_data = obj.as_object_mut().and_then(|m| m.remove("stringData"));
    if let Some(Value::Object(plain)) = string_data {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        if let Some(data) = obj["data"].as_object_mut() {
            for (k, v) in plain {
                if let Some(v) = v.as_str() {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(v);
                    data.insert(k, Value::String(encoded));
                }
            }
        }
    }
    if obj
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj["type"] = json!("Opaque");
    }
}

/// Defaults applied to an update's body before it is validated, as the real
/// server does (so `kubectl replace -f` of the original manifest is not a
/// change of defaulted immutable fields).
pub fn on_update(res: usize, obj: &mut Value) {
    match res {
        PODS => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec, "Always");
                requests_from_limits(spec);
            }
        }
        JOBS => job_spec_defaults(obj),
        SECRETS => secret(obj),
        _ => {}
    }
}

fn job_scalar_defaults(spec: &mut Map<String, Value>) {
    // SetDefaults_Job: both 1 when neither is given; otherwise only
    // `parallelism` defaults (an unset `completions` means "any success").
    if !spec.contains_key("parallelism") && !spec.contains_key("completions") {
        spec.insert("completions".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    // SetDefaults_Job: no overall limit when failures are limited per index.
    let backoff = if spec.contains_key("backoffLimitPerIndex") {
        json!(i32::MAX)
    } else {
        json!(6)
    };
    set_default(spec, "backoffLimit", backoff);
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "manualSelector", json!(false));
    // With a pod failure policy, only failed pods are replaced.
    let replacement = if spec.contains_key("podFailurePolicy") {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
}

/// The labels a generated selector selects, added to the pod template
/// where missing.
fn generated_labels(spec: &mut Map<String, Value>, uid: &Value, name: &Value) {
    let tmpl = spec.entry("template").or_insert(json!({}));
    let meta = obj_mut(tmpl, "metadata");
    let labels = meta.entry("labels").or_insert(json!({}));
    if let Some(l) = labels.as_object_mut() {
        for (k, v) in [
            (CONTROLLER_UID_LABEL, uid),
            (JOB_NAME_LABEL, name),
            ("controller-uid", uid),
            ("job-name", name),
        ] {
            l.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
}

fn job_spec_defaults(obj: &mut Value) {
    // uid and name are the stored ones (the store copies them in first).
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    let spec = obj_mut(obj, "spec");
    job_scalar_defaults(spec);
    if spec.get("manualSelector") != Some(&json!(true)) {
        spec.entry("selector")
            .or_insert_with(|| json!({"matchLabels": {CONTROLLER_UID_LABEL: uid.clone()}}));
        generated_labels(spec, &uid, &name);
    }
    if let Some(pspec) = obj.pointer_mut("/spec/template/spec") {
        pod_spec(pspec, "Always");
    }
}

fn job(obj: &mut Value) {
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    let spec = obj_mut(obj, "spec");
    job_scalar_defaults(spec);
    if spec.get("manualSelector") != Some(&json!(true)) {
        // `generateSelector`: the controller-uid label joins whatever
        // selector was given (validation has refused one that does not
        // select the generated labels), and the template gets the labels it
        // lacks.
        let selector = spec.entry("selector").or_insert(json!({}));
        if !selector.is_object() {
            *selector = json!({});
        }
        obj_mut(selector, "matchLabels")
            .entry(CONTROLLER_UID_LABEL.to_string())
            .or_insert_with(|| uid.clone());
        generated_labels(spec, &uid, &name);
    }
    if let Some(pspec) = obj.pointer_mut("/spec/template/spec") {
        pod_spec(pspec, "Always");
    }
    obj["status"] = json!({});
}
