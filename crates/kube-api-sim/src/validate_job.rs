//! Validation of a Job's completion mode and policies, with the paths and
//! messages of `validateJobSpec` (pkg/apis/batch/validation/validation.go in
//! the Kubernetes repository): `completionMode`, `backoffLimitPerIndex`,
//! `maxFailedIndexes`, `successPolicy`, `podFailurePolicy` (which requires
//! `restartPolicy: Never`) and `podReplacementPolicy`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::error::Cause;

/// `field.Invalid` with the value omitted (`field.OmitValueType`).
fn invalid_no_value(field: String, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field,
        message: format!("Invalid value: {why}"),
    }
}

fn required(field: &str, why: &str) -> Cause {
    let mut c = Cause::required(field);
    c.message = format!("Required value: {why}");
    c
}

/// The causes for `spec` of a Job.
pub fn causes(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mode = spec["completionMode"].as_str().unwrap_or("NonIndexed");
    let indexed = mode == "Indexed";
    if !matches!(mode, "NonIndexed" | "Indexed") {
        causes.push(Cause::not_supported(
            "spec.completionMode",
            mode,
            &["NonIndexed", "Indexed"],
        ));
    }
    for field in ["backoffLimitPerIndex", "maxFailedIndexes"] {
        if let Some(v) = spec.get(field) {
            if v.as_i64().is_none_or(|n| n < 0) {
                let path = format!("spec.{field}");
                causes.push(Cause::invalid_value(
                    path,
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    if spec.get("maxFailedIndexes").is_some() && spec.get("backoffLimitPerIndex").is_none() {
        causes.push(required(
            "spec.backoffLimitPerIndex",
            "when maxFailedIndexes is specified",
        ));
    }
    if indexed {
        if spec.get("completions").is_none() {
            causes.push(required(
                "spec.completions",
                "when completion mode is Indexed",
            ));
        }
        if let (Some(max), Some(c)) = (
            spec["maxFailedIndexes"].as_i64(),
            spec["completions"].as_i64(),
        ) {
            if max > c {
                causes.push(Cause::invalid_value(
                    "spec.maxFailedIndexes",
                    &spec["maxFailedIndexes"],
                    "must be less than or equal to completions",
                ));
            }
        }
    } else {
        for field in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = spec.get(field) {
                let path = format!("spec.{field}");
                causes.push(Cause::invalid_value(
                    path,
                    v,
                    "requires indexed completion mode",
                ));
            }
        }
    }
    if let Some(policy) = spec.get("podFailurePolicy") {
        pod_failure_policy(spec, policy, &mut causes);
    }
    if let Some(policy) = spec.get("successPolicy") {
        if !indexed {
            // The real server prints the Go struct; abbreviated here.
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: "spec.successPolicy".into(),
                message: "Invalid value: batch.SuccessPolicy{…}: requires indexed completion mode"
                    .into(),
            });
        } else if let Some(completions) = spec["completions"].as_i64() {
            causes.extend(super::validate_job_policies::success_policy(
                policy,
                completions,
            ));
        }
    }
    if let Some(rp) = spec["podReplacementPolicy"].as_str() {
        let path = "spec.podReplacementPolicy";
        if spec.get("podFailurePolicy").is_some() {
            if rp != "Failed" {
                causes.push(Cause::not_supported(path, rp, &["Failed"]));
            }
        } else if !matches!(rp, "Failed" | "TerminatingOrFailed") {
            causes.push(Cause::not_supported(
                path,
                rp,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    causes
}

/// A pod failure policy needs `restartPolicy: Never` (a missing or
/// unsupported policy is reported by the template's restart check).
pub fn restart_with_pod_failure_policy(spec: &Value) -> Vec<Cause> {
    let rp = spec.pointer("/template/spec/restartPolicy");
    if spec.get("podFailurePolicy").is_some() && rp == Some(&Value::from("OnFailure")) {
        return vec![Cause::invalid_value(
            "spec.template.spec.restartPolicy",
            &Value::from("OnFailure"),
            "only \"Never\" is supported when podFailurePolicy is specified",
        )];
    }
    Vec::new()
}

/// `ValidateJob`: an `Indexed` Job's pods are named `<job>-<index>` as
/// hostnames, so the largest must be a DNS label.
pub fn indexed_hostname(name: &str, spec: &Value) -> Vec<Cause> {
    let completions = spec["completions"].as_i64().unwrap_or(0);
    if spec["completionMode"] != "Indexed" || completions <= 0 || name.is_empty() {
        return Vec::new();
    }
    let largest = format!("{name}-{}", completions - 1);
    if super::validate::dns_label_problem(&largest).is_none() {
        return Vec::new();
    }
    vec![Cause::invalid_value(
        "metadata.name",
        &Value::from(name),
        &format!("will not able to create pod with invalid DNS label: {largest}"),
    )]
}

fn pod_failure_policy(spec: &Value, policy: &Value, causes: &mut Vec<Cause>) {
    let names: BTreeSet<&str> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec.pointer(&format!("/template/spec/{f}"))?.as_array())
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let actions = ["Count", "FailIndex", "FailJob", "Ignore"];
    for (i, rule) in policy["rules"].as_array().into_iter().flatten().enumerate() {
        let path = format!("spec.podFailurePolicy.rules[{i}]");
        match rule["action"].as_str().unwrap_or("") {
            "" => causes.push(required(
                &format!("{path}.action"),
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            )),
            "FailIndex" if spec.get("backoffLimitPerIndex").is_none() => {
                causes.push(Cause::invalid_value(
                    format!("{path}.action"),
                    &Value::from("FailIndex"),
                    "requires the backoffLimitPerIndex to be set",
                ))
            }
            a if !actions.contains(&a) => {
                causes.push(Cause::not_supported(format!("{path}.action"), a, &actions))
            }
            _ => {}
        }
        let exit = &rule["onExitCodes"];
        let conditions = rule["onPodConditions"]
            .as_array()
            .is_some_and(|c| !c.is_empty());
        if exit.is_object() {
            let op_path = format!("{path}.onExitCodes.operator");
            match exit["operator"].as_str().unwrap_or("") {
                "" => causes.push(required(&op_path, "valid values: [\"In\" \"NotIn\"]")),
                "In" | "NotIn" => {}
                op => causes.push(Cause::not_supported(op_path, op, &["In", "NotIn"])),
            }
            if let Some(name) = exit["containerName"].as_str() {
                if !names.contains(name) {
                    causes.push(Cause::invalid_value(
                        format!("{path}.onExitCodes.containerName"),
                        &Value::from(name),
                        "must be one of the container or initContainer names in the pod template",
                    ));
                }
            }
            if exit["values"].as_array().is_none_or(Vec::is_empty) {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: format!("{path}.onExitCodes.values"),
                    message: "Invalid value: []int32(nil): at least one value is required".into(),
                });
            }
            causes.extend(super::validate_job_policies::exit_code_values(
                &format!("{path}.onExitCodes.values"),
                exit,
            ));
        }
        for (j, pattern) in rule["onPodConditions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let status_path = format!("{path}.onPodConditions[{j}].status");
            match pattern["status"].as_str().unwrap_or("") {
                "" => causes.push(required(
                    &status_path,
                    "valid values: [\"False\" \"True\" \"Unknown\"]",
                )),
                "True" | "False" | "Unknown" => {}
                other => causes.push(Cause::not_supported(
                    status_path,
                    other,
                    &["False", "True", "Unknown"],
                )),
            }
        }
        if exit.is_object() && conditions {
            causes.push(invalid_no_value(
                path,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            ));
        } else if !exit.is_object() && !conditions {
            causes.push(invalid_no_value(
                path,
                "specifying one of OnExitCodes and OnPodConditions is required",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use crate::error::cause_texts as messages;

    #[test]
    fn indexed_hostnames_and_condition_statuses() {
        let spec = json!({"completionMode": "Indexed", "completions": 10});
        let long = "j".repeat(62);
        assert_eq!(
            messages(indexed_hostname(&long, &spec)),
            [format!(
                "metadata.name: Invalid value: \"{long}\": will not able to create pod with invalid DNS label: {long}-9"
            )]
        );
        assert!(indexed_hostname("short", &spec).is_empty());
        let spec = json!({"podFailurePolicy": {"rules": [{"action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "Maybe"}]}]},
            "template": {"spec": {"restartPolicy": "Never"}}});
        assert_eq!(
            messages(causes(&spec)),
            ["spec.podFailurePolicy.rules[0].onPodConditions[0].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\""]
        );
    }
}
