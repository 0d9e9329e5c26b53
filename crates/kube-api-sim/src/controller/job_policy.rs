//! The parts of the Job controller that read a Job's policies
//! (pkg/controller/job in the Kubernetes repository): index sets in the
//! compressed form `status.completedIndexes`/`failedIndexes` use ("1,3-5"),
//! `podFailurePolicy` rule matching (`matchPodFailurePolicy`) and
//! `successPolicy` rules.

use std::collections::BTreeSet;

use serde_json::Value;

/// The annotation (and label) with a pod's completion index.
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// How often a pod's index failed before (with `backoffLimitPerIndex`).
pub const INDEX_FAILURES_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";

/// Parses "1,3-5" (unknown parts are skipped, indexes at or above `limit`
/// dropped).
pub fn parse_indexes(s: &str, limit: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            out.extend((a..=b).take_while(|i| *i < limit));
        }
    }
    out
}

/// Formats indexes as "1,3-5".
pub fn format_indexes(set: &BTreeSet<usize>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// A pod's completion index.
pub fn pod_index(pod: &Value) -> Option<usize> {
    pod["metadata"]["annotations"][INDEX_ANNOTATION]
        .as_str()
        .and_then(|s| s.parse().ok())
}

/// What a pod failure policy rule says about a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fail the Job, with this condition message.
    FailJob(String),
    /// Mark the pod's index failed.
    FailIndex,
    /// Not counted towards any limit.
    Ignore,
    /// Counted as usual (also when no rule matches).
    Count,
}

/// The first terminated container (init containers first) with a non-zero
/// exit code that the `onExitCodes` requirement matches.
fn match_exit_codes<'a>(pod: &'a Value, req: &Value) -> Option<&'a Value> {
    let values: Vec<i64> = req["values"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let operator_in = req["operator"] == "In";
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|f| pod["status"][f].as_array())
        .flatten()
        .find(|s| {
            let Some(code) = s["state"]["terminated"]["exitCode"].as_i64() else {
                return false;
            };
            if code == 0 {
                return false;
            }
            if let Some(name) = req["containerName"].as_str() {
                if s["name"] != name {
                    return false;
                }
            }
            values.contains(&code) == operator_in
        })
}

/// `matchPodFailurePolicy`: the first rule that matches a failed pod.
pub fn match_pod_failure_policy(policy: &Value, pod: &Value) -> Action {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    for (index, rule) in policy["rules"].as_array().into_iter().flatten().enumerate() {
        let action = rule["action"].as_str().unwrap_or("");
        let matched = if rule["onExitCodes"].is_object() {
            match_exit_codes(pod, &rule["onExitCodes"]).map(|s| {
                format!(
                    "Container {} for pod {ns}/{name} failed with exit code {} matching {action} rule at index {index}",
                    s["name"].as_str().unwrap_or(""),
                    s["state"]["terminated"]["exitCode"]
                )
            })
        } else {
            rule["onPodConditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|pattern| {
                    pod["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["type"] == pattern["type"] && c["status"] == pattern["status"])
                })
                .map(|c| {
                    format!(
                        "Pod {ns}/{name} has condition {} matching {action} rule at index {index}",
                        c["type"].as_str().unwrap_or("")
                    )
                })
        };
        if let Some(message) = matched {
            return match action {
                "FailJob" => Action::FailJob(message),
                "FailIndex" => Action::FailIndex,
                "Ignore" => Action::Ignore,
                _ => Action::Count,
            };
        }
    }
    Action::Count
}

/// The index of the first `successPolicy` rule the succeeded indexes meet:
/// all of `succeededIndexes` (when given) have succeeded, or
/// `succeededCount` of them (of all indexes, when no set is given) have.
pub fn success_rule(
    policy: &Value,
    succeeded: &BTreeSet<usize>,
    completions: usize,
) -> Option<usize> {
    policy["rules"].as_array()?.iter().position(|rule| {
        let wanted = rule["succeededIndexes"]
            .as_str()
            .map(|s| parse_indexes(s, completions));
        let count = rule["succeededCount"].as_u64().map(|c| c as usize);
        let hit = match &wanted {
            Some(w) => w.intersection(succeeded).count(),
            None => succeeded.len(),
        };
        match (wanted, count) {
            (_, Some(c)) => hit >= c,
            (Some(w), None) => hit == w.len(),
            (None, None) => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn index_sets_round_trip() {
        let s = parse_indexes("0,2-4,7", 10);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [0, 2, 3, 4, 7]);
        assert_eq!(format_indexes(&s), "0,2-4,7");
        assert_eq!(format_indexes(&parse_indexes("1-3,9", 5)), "1-3");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn failure_policy_rules_match_in_order() {
        let policy = json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]});
        let pod = |code: i64, conds: serde_json::Value| {
            json!({"metadata": {"namespace": "ns", "name": "p"}, "status": {"conditions": conds,
                "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code}}}]}})
        };
        assert_eq!(
            match_pod_failure_policy(&policy, &pod(42, json!([]))),
            Action::FailJob("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into())
        );
        let disrupted = json!([{"type": "DisruptionTarget", "status": "True"}]);
        assert_eq!(
            match_pod_failure_policy(&policy, &pod(42, disrupted)),
            Action::Ignore
        );
        assert_eq!(
            match_pod_failure_policy(&policy, &pod(1, json!([]))),
            Action::Count
        );
    }

    #[test]
    fn success_rules() {
        let done: BTreeSet<usize> = [0, 2].into();
        let p = json!({"rules": [{"succeededIndexes": "0-1"}, {"succeededCount": 2}]});
        assert_eq!(success_rule(&p, &done, 5), Some(1));
        let p = json!({"rules": [{"succeededIndexes": "0,2"}]});
        assert_eq!(success_rule(&p, &done, 5), Some(0));
        let p = json!({"rules": [{"succeededIndexes": "1-4", "succeededCount": 2}]});
        assert_eq!(success_rule(&p, &done, 5), None);
    }
}
