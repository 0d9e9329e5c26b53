//! Object validation as a real API server (1.32) does it for the served
//! kinds, each problem a cause (reason, field path, message) of a 422
//! `Invalid`: the metadata every kind shares (`ValidateObjectMeta`: names
//! per kind, `generateName`, labels, annotations, owner references,
//! finalizers), the dispatch to each kind's checks (`validate_pod`,
//! `validate_core`, `validate_job*`) and what an update may not change.
//! The string checks themselves are in `validate_names`.

use serde_json::Value;

use super::error::Cause;
use super::resources::{Resource, CONFIGMAPS, EVENTS, JOBS, LEASES, NAMESPACES, PODS, SECRETS};
use super::validate_names as names;

const LABEL_VALUE_MAX: usize = 63;
/// `TotalAnnotationSizeLimitB`.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Why `s` is not a DNS-1123 label (the first of the real messages).
pub fn dns_label_problem(s: &str) -> Option<String> {
    names::dns_label(s).into_iter().next()
}

/// Why `s` is not a DNS-1123 subdomain (the first of the real messages).
pub fn dns_subdomain_problem(s: &str) -> Option<String> {
    names::dns_subdomain(s).into_iter().next()
}

/// Why `k` is not a valid label/annotation key (the first message).
pub fn label_key_problem(k: &str) -> Option<String> {
    names::qualified_name(k).into_iter().next()
}

/// Why `v` is not a valid label value (the first message).
pub fn label_value_problem(v: &str) -> Option<String> {
    names::label_value(v).into_iter().next()
}

/// Why `p` cannot be a configMap/secret volume item path: required,
/// relative, without a `..` element, not starting with `..`.
pub fn item_path_problem(p: &str) -> Option<String> {
    if p.is_empty() {
        return Some("Required value".into());
    }
    super::validate_pod::item_path_problem(p).map(String::from)
}

/// `ValidateLabels`: one cause per message, the key or value as the value.
pub(crate) fn check_labels(causes: &mut Vec<Cause>, path: &str, labels: Option<&Value>) {
    for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
        for why in names::qualified_name(k) {
            causes.push(Cause::invalid(path, k, &why));
        }
        let v = v.as_str().unwrap_or("");
        for why in names::label_value(v) {
            causes.push(Cause::invalid(path, v, &why));
        }
    }
}

/// `ValidateAnnotations`: keys are checked lower-cased (the original key is
/// the value shown), and keys plus values may total 256 KiB.
pub(crate) fn check_annotations(causes: &mut Vec<Cause>, path: &str, ann: Option<&Value>) {
    let Some(map) = ann.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0usize;
    for (k, v) in map {
        for why in names::qualified_name(&k.to_lowercase()) {
            causes.push(Cause::invalid(path, k, &why));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        causes.push(Cause::too_long(path, ANNOTATIONS_MAX_BYTES));
    }
}

/// `validateOwnerReference` (the path has no index, as on a real server).
fn check_owner_references(causes: &mut Vec<Cause>, refs: Option<&Value>) {
    let path = "metadata.ownerReferences";
    for r in refs.and_then(Value::as_array).into_iter().flatten() {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        let api_version = s("apiVersion");
        if api_version.rsplit('/').next().unwrap_or("").is_empty() {
            causes.push(Cause::invalid(
                format!("{path}.apiVersion"),
                &api_version,
                "version must not be empty",
            ));
        }
        for (field, why) in [
            ("kind", "kind must not be empty"),
            ("name", "name must not be empty"),
            ("uid", "uid must not be empty"),
        ] {
            let v = s(field);
            if v.is_empty() {
                causes.push(Cause::invalid(format!("{path}.{field}"), &v, why));
            }
        }
    }
}

/// Validates the metadata shared by all objects (`ValidateObjectMeta`).
/// `name` is the final name (after `generateName`).
pub fn metadata(res: &Resource, res_id: usize, name: &str, meta: &Value) -> Vec<Cause> {
    let _ = res;
    let mut causes = Vec::new();
    // Namespaces are DNS labels; core/v1 Events get only the generic
    // path-segment check; the other kinds served are DNS subdomains.
    let check = |n: &str, prefix: bool| match res_id {
        NAMESPACES => names::name_check(n, prefix, true),
        EVENTS => names::path_segment(n, prefix),
        _ => names::name_check(n, prefix, false),
    };
    if let Some(g) = meta["generateName"].as_str().filter(|g| !g.is_empty()) {
        for why in check(g, true) {
            causes.push(Cause::invalid("metadata.generateName", g, &why));
        }
    }
    if name.is_empty() {
        causes.push(Cause::required_because(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        let problems = check(name, false);
        for why in &problems {
            causes.push(Cause::invalid("metadata.name", name, why));
        }
        if problems.is_empty() && res_id == JOBS && name.len() > LABEL_VALUE_MAX {
            // A Job's name becomes the value of the `job-name` and
            // `batch.kubernetes.io/job-name` template labels the server adds
            // before validating, so a real server reports the 63-character
            // limit there, once per label.
            let why = names::max_len(LABEL_VALUE_MAX);
            for _ in 0..2 {
                causes.push(Cause::invalid("spec.template.labels", name, &why));
            }
        }
    }
    check_labels(&mut causes, "metadata.labels", meta.get("labels"));
    check_annotations(&mut causes, "metadata.annotations", meta.get("annotations"));
    check_owner_references(&mut causes, meta.get("ownerReferences"));
    let finalizers = meta["finalizers"].as_array().map_or(&[][..], Vec::as_slice);
    for f in finalizers {
        let f = f.as_str().unwrap_or("");
        for why in names::qualified_name(f) {
            causes.push(Cause::invalid("metadata.finalizers", f, &why));
        }
    }
    // The core types' `ValidateObjectMeta` (pkg/apis/core/validation) adds
    // `validateKubeFinalizerName`: an unprefixed finalizer must be a
    // standard one. Leases and core/v1 Events are not validated with it.
    if !matches!(res_id, LEASES | EVENTS) {
        for (i, f) in finalizers.iter().enumerate() {
            let f = f.as_str().unwrap_or("");
            if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f) {
                causes.push(Cause::invalid(
                    format!("metadata.finalizers[{i}]"),
                    f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
    }
    causes
}

/// Everything a create or update is validated with, in the order and
/// grouping of the real server: the kind's own validation (which includes
/// `ValidateObjectMeta`) — except for core/v1 Events, whose strategy checks
/// only the event fields and whose metadata is checked afterwards, and only
/// when the event fields passed.
pub fn all(res: &Resource, res_id: usize, name: &str, obj: &Value) -> Vec<Cause> {
    if res_id == EVENTS {
        let causes = object(res_id, obj);
        if !causes.is_empty() {
            return causes;
        }
        return metadata(res, res_id, name, &obj["metadata"]);
    }
    let mut causes = metadata(res, res_id, name, &obj["metadata"]);
    causes.extend(object(res_id, obj));
    causes
}

/// What only a create is validated with: a Job's generated selector and
/// labels (`validateGeneratedSelector`; `obj` carries its uid by then).
pub fn create_only(res_id: usize, obj: &Value) -> Vec<Cause> {
    if res_id == JOBS && obj["spec"]["manualSelector"] != Value::Bool(true) {
        return super::validate_job_update::generated_selector(obj);
    }
    Vec::new()
}

/// Validates the kind-specific body of an object on create and update.
pub fn object(res_id: usize, obj: &Value) -> Vec<Cause> {
    match res_id {
        PODS => super::validate_pod::pod(obj),
        JOBS => job(obj),
        CONFIGMAPS => super::validate_core::config_map(obj),
        SECRETS => super::validate_core::secret(obj),
        LEASES => super::validate_core::lease(obj),
        EVENTS => super::validate_core::event(obj),
        _ => Vec::new(),
    }
}

/// `ValidateJob` past the metadata (pkg/apis/batch/validation).
fn job(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let empty = Value::Object(Default::default());
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    // `validateJobSpec`: the non-negative counts come first.
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(v) = spec.get(field).filter(|v| !v.is_null()) {
            if v.as_i64().is_none_or(|n| n < 0) {
                causes.push(Cause::invalid_value(
                    format!("spec.{field}"),
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    causes.extend(super::validate_job::causes(spec));
    let tmpl = &spec["template"];
    // The template's ObjectMeta is inlined, so its paths have no `metadata`.
    check_labels(
        &mut causes,
        "spec.template.labels",
        tmpl["metadata"].get("labels"),
    );
    check_annotations(
        &mut causes,
        "spec.template.annotations",
        tmpl["metadata"].get("annotations"),
    );
    super::validate_pod::pod_spec(&mut causes, "spec.template.spec", &tmpl["spec"], false);
    let ok = ["OnFailure", "Never"];
    match tmpl["spec"]["restartPolicy"].as_str() {
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
    causes.extend(super::validate_job::restart_with_pod_failure_policy(spec));
    // `ValidateJobSpec`: a manual selector must be given and must select
    // the template's labels (generated ones always do).
    let selector = spec.get("selector").filter(|s| !s.is_null());
    if let Some(sel) = selector {
        causes.extend(super::validate_job_update::selector_causes(
            sel,
            "spec.selector",
        ));
    }
    if spec["manualSelector"] == Value::Bool(true) {
        match selector {
            None => causes.push(Cause::required("spec.selector")),
            Some(sel) => {
                let labels = &tmpl["metadata"]["labels"];
                if super::validate_job_update::selects(sel, labels) == Some(false) {
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        field: "spec.template.metadata.labels".into(),
                        message: format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            super::validate_job_update::go_string_map(labels)
                        ),
                    });
                }
            }
        }
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    causes.extend(super::validate_job::indexed_hostname(name, spec));
    causes
}

/// What an update (of the object or its status) may not do: change a
/// Pod's spec beyond `ValidatePodUpdate`, a Job's immutable fields or give
/// it negative status counters, an immutable ConfigMap's or Secret's data,
/// a Secret's type.
pub fn immutable(res_id: usize, old: &Value, new: &Value) -> Vec<Cause> {
    match res_id {
        PODS => super::pod_update::causes(old, new),
        JOBS => {
            let mut causes = super::validate_job_update::update(old, new);
            causes.extend(super::validate_job_update::status(new));
            causes
        }
        CONFIGMAPS | SECRETS => super::validate_core::immutable_data(res_id, old, new),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::RESOURCES;

    use crate::error::cause_texts as messages;

    #[test]
    fn metadata_names_generate_names_labels_and_annotations() {
        let res = &RESOURCES[CONFIGMAPS];
        assert_eq!(
            messages(metadata(res, CONFIGMAPS, "", &json!({}))),
            ["metadata.name: Required value: name or generateName is required"]
        );
        let meta = json!({"generateName": "Cfg-", "labels": {"a/b/c": "ok"},
            "annotations": {"x": "v".repeat(ANNOTATIONS_MAX_BYTES)}, "finalizers": ["ok/f"]});
        let got = messages(metadata(res, CONFIGMAPS, "Cfg-abcde", &meta));
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].starts_with(
            "metadata.generateName: Invalid value: \"Cfg-\": a lowercase RFC 1123 subdomain"
        ));
        assert!(got[1].starts_with("metadata.name: Invalid value: \"Cfg-abcde\""));
        assert!(got[2].starts_with(
            "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of"
        ));
        assert_eq!(
            got[3],
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        // Namespaces are labels; Events only path segments.
        let ns = messages(metadata(
            &RESOURCES[NAMESPACES],
            NAMESPACES,
            "a.b",
            &json!({}),
        ));
        assert_eq!(
            ns,
            ["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        assert!(metadata(&RESOURCES[EVENTS], EVENTS, "Pod.X_1", &json!({})).is_empty());
    }
}
