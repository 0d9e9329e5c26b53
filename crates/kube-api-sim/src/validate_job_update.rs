//! What a Job update may change and the Go renderings its messages use, as
//! `ValidateJobSpecUpdate` and `ValidateJobSpec` (pkg/apis/batch/validation
//! in the Kubernetes repository) answer: immutable fields, a manual
//! selector that must select the template's labels, and status counters.

use serde_json::Value;

use super::error::Cause;

/// Whether a `LabelSelector` selects `labels` (matchLabels and the
/// In/NotIn/Exists/DoesNotExist expressions); `None` when it cannot be
/// built (an unknown operator), as `LabelSelectorAsSelector` fails then.
pub fn selects(selector: &Value, labels: &Value) -> Option<bool> {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k) == v.as_str());
    let mut by_expr = true;
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        by_expr &= match e["operator"].as_str().unwrap_or("") {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => return None,
        };
    }
    Some(by_labels && by_expr)
}

/// `ValidateLabelSelector` (apimachinery meta/v1/validation).
pub fn selector_causes(sel: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    super::validate::check_labels(
        &mut causes,
        &format!("{path}.matchLabels"),
        sel.get("matchLabels"),
    );
    for (i, e) in sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = format!("{path}.matchExpressions[{i}]");
        let values = e["values"].as_array().map_or(&[][..], Vec::as_slice);
        match e["operator"].as_str().unwrap_or("") {
            "In" | "NotIn" if values.is_empty() => causes.push(Cause::required_because(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(Cause::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => causes.push(Cause::invalid(
                format!("{p}.operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = e["key"].as_str().unwrap_or("");
        for why in super::validate_names::qualified_name(key) {
            causes.push(Cause::invalid(format!("{p}.key"), key, &why));
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for why in super::validate_names::label_value(v) {
                causes.push(Cause::invalid(format!("{p}.values[{j}]"), v, &why));
            }
        }
    }
    causes
}

/// A string map as Go's `%#v` prints it: `map[string]string{"a":"b"}`
/// (keys sorted), or `map[string]string(nil)`.
pub fn go_string_map(v: &Value) -> String {
    let Some(m) = v.as_object() else {
        return "map[string]string(nil)".into();
    };
    let mut pairs: Vec<(&String, &Value)> = m.iter().collect();
    pairs.sort_by_key(|(k, _)| k.as_str());
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
        .collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

/// A `LabelSelector` as `%#v` prints it in a `field is immutable` error.
fn go_selector(sel: &Value) -> String {
    if sel.is_null() {
        return "null".into();
    }
    let exprs: Vec<String> = sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("{:?}", v.as_str().unwrap_or("")))
                .collect();
            let values = if e["values"].is_array() {
                format!("[]string{{{}}}", values.join(", "))
            } else {
                "[]string(nil)".into()
            };
            format!(
                "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                e["key"].as_str().unwrap_or(""),
                e["operator"].as_str().unwrap_or("")
            )
        })
        .collect();
    let exprs = if sel["matchExpressions"].is_array() {
        format!("[]v1.LabelSelectorRequirement{{{}}}", exprs.join(", "))
    } else {
        "[]v1.LabelSelectorRequirement(nil)".into()
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(&sel["matchLabels"])
    )
}

/// `ValidateJobSpecUpdate`: `completions` (a NonIndexed Job's; an Indexed
/// Job's may change together with `parallelism`), `selector`, `template`
/// (while a Job is suspended and has never started, its scheduling
/// directives, labels and annotations may change), `completionMode`,
/// `podFailurePolicy`, `backoffLimitPerIndex` and `successPolicy` are
/// immutable. The value of a struct (template, policies) is abbreviated in
/// the message; the real server prints the whole Go struct.
pub fn update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (os, ns) = (&old["spec"], &new["spec"]);
    let immutable = |path: &str, shown: String| Cause {
        reason: "FieldValueInvalid",
        field: path.into(),
        message: format!("Invalid value: {shown}: field is immutable"),
    };
    if os["completions"] != ns["completions"] {
        let indexed = ns["completionMode"] == "Indexed";
        if !indexed {
            causes.push(immutable("spec.completions", go(&ns["completions"])));
        } else if !ns["completions"].is_null() && ns["completions"] != ns["parallelism"] {
            causes.push(Cause::invalid_value(
                "spec.completions",
                &ns["completions"],
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    if os["selector"] != ns["selector"] {
        causes.push(immutable("spec.selector", go_selector(&ns["selector"])));
    }
    let relaxed = os["suspend"] == Value::Bool(true) && old.pointer("/status/startTime").is_none();
    let strip = |t: &Value| {
        let mut t = t.clone();
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
    // (Copies only when the templates differ at all.)
    if os["template"] != ns["template"] && strip(&os["template"]) != strip(&ns["template"]) {
        causes.push(immutable("spec.template", "core.PodTemplateSpec{…}".into()));
    }
    if os["completionMode"] != ns["completionMode"] {
        causes.push(immutable("spec.completionMode", go(&ns["completionMode"])));
    }
    for (field, go_type) in [
        ("podFailurePolicy", "batch.PodFailurePolicy"),
        ("successPolicy", "batch.SuccessPolicy"),
    ] {
        if os[field] != ns[field] {
            let shown = if ns[field].is_null() {
                "null".into()
            } else {
                format!("{go_type}{{…}}")
            };
            causes.push(immutable(&format!("spec.{field}"), shown));
        }
    }
    if os["backoffLimitPerIndex"] != ns["backoffLimitPerIndex"] {
        causes.push(immutable(
            "spec.backoffLimitPerIndex",
            go(&ns["backoffLimitPerIndex"]),
        ));
    }
    causes
}

fn go(v: &Value) -> String {
    super::error::go_value(v)
}

/// `validateJobStatus`'s unconditional checks (the others depend on
/// feature gates and on who manages the Job): the counters are not
/// negative and the uncounted pod UIDs are set and distinct.
pub fn status(new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let st = &new["status"];
    for field in ["active", "succeeded", "failed", "ready", "terminating"] {
        if let Some(n) = st[field].as_i64().filter(|n| *n < 0) {
            causes.push(Cause::invalid_value(
                format!("status.{field}"),
                &Value::from(n),
                "must be greater than or equal to 0",
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for list in ["succeeded", "failed"] {
        let uids = st["uncountedTerminatedPods"][list].as_array();
        for (i, uid) in uids.into_iter().flatten().enumerate() {
            let path = format!("status.uncountedTerminatedPods.{list}[{i}]");
            let uid = uid.as_str().unwrap_or("");
            if uid.is_empty() {
                causes.push(Cause::invalid(path, uid, "must not be empty"));
            } else if !seen.insert(uid) {
                causes.push(Cause::duplicate(path, &Value::from(uid)));
            }
        }
    }
    causes
}

/// `generateSelector` then `validateGeneratedSelector` and the selector
/// check of `ValidateJobSpec`, for a Job created without
/// `manualSelector: true`: the generated labels the template lacks are
/// added and the controller-uid label joins the given selector; a template
/// label that disagrees, or a selector that does not select the generated
/// labels or the template, is refused.
pub fn generated_selector(obj: &Value) -> Vec<Cause> {
    use super::defaults::{CONTROLLER_UID_LABEL, JOB_NAME_LABEL};
    let mut causes = Vec::new();
    let (Some(uid), Some(name)) = (
        obj["metadata"]["uid"].as_str(),
        obj["metadata"]["name"].as_str(),
    ) else {
        return causes;
    };
    let spec = &obj["spec"];
    let mut labels = spec["template"]["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = Value::Object(Default::default());
    }
    let expected = [
        ("controller-uid", uid),
        ("job-name", name),
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ];
    for (k, v) in expected {
        if labels.get(k).is_none() {
            labels[k] = Value::from(v);
        }
    }
    let mut selector = spec["selector"].clone();
    if !selector.is_object() {
        selector = Value::Object(Default::default());
    }
    if !selector["matchLabels"].is_object() {
        selector["matchLabels"] = Value::Object(Default::default());
    }
    if selector["matchLabels"].get(CONTROLLER_UID_LABEL).is_none() {
        selector["matchLabels"][CONTROLLER_UID_LABEL] = Value::from(uid);
    }
    for (k, v) in expected {
        if labels[k] != v {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: format!("spec.template.metadata.labels[{k}]"),
                message: format!("Invalid value: {}: must be '{v}'", go_string_map(&labels)),
            });
        }
    }
    let expected_labels: serde_json::Map<String, Value> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    if selects(&selector, &Value::Object(expected_labels)) == Some(false) {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.selector".into(),
            message: format!(
                "Invalid value: {}: `selector` not auto-generated",
                go_selector(&selector)
            ),
        });
    }
    if selects(&selector, &labels) == Some(false) {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.template.metadata.labels".into(),
            message: format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                go_string_map(&labels)
            ),
        });
    }
    causes
}
