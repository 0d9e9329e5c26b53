//! The Job policy checks that need more than one field, as
//! `validateSuccessPolicy` and `validatePodFailurePolicyRuleOnExitCodes`
//! (pkg/apis/batch/validation in the Kubernetes repository) make them:
//! success policy rules (the index interval syntax of `succeededIndexes`,
//! `succeededCount` bounds) and exit code values (no 0 with `In`, distinct,
//! ordered).

use serde_json::Value;

use super::error::Cause;

/// `validatePodFailurePolicyRuleOnExitCodes` on the values: no 0 with `In`,
/// no duplicates, in order (printed as Go prints an `[]int32`).
pub fn exit_code_values(path: &str, exit: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let values: Vec<i64> = exit["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (j, v) in values.iter().enumerate() {
        let vp = format!("{path}[{j}]");
        if exit["operator"] == "In" && *v == 0 {
            causes.push(Cause::invalid_value(
                vp.clone(),
                &Value::from(*v),
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(*v) {
            causes.push(Cause::duplicate(vp, &Value::from(*v)));
        }
    }
    if values.windows(2).any(|w| w[0] > w[1]) {
        let shown: Vec<String> = values.iter().map(i64::to_string).collect();
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: path.into(),
            message: format!(
                "Invalid value: []int32{{{}}}: must be ordered",
                shown.join(", ")
            ),
        });
    }
    causes
}

/// `parseIndexInterval`: one `x` or `x-y` interval below `completions`.
fn index_interval(text: &str, completions: i64) -> Result<(i64, i64), String> {
    let parts: Vec<&str> = text.split('-').collect();
    if parts.len() > 2 {
        return Err(format!("the fragment {text:?} violates the requirement that an index interval can have at most two parts separated by '-'"));
    }
    let index = |p: &str| -> Result<i64, String> {
        let n: i64 = p
            .parse()
            .map_err(|_| format!("cannot convert string to integer for index: {p:?}"))?;
        if n >= completions {
            return Err(format!("too large index: {p:?}"));
        }
        Ok(n)
    };
    let x = index(parts[0])?;
    match parts.get(1) {
        None => Ok((x, x)),
        Some(p) => {
            let y = index(p)?;
            if x >= y {
                return Err(format!("non-increasing order, previous: {x}, current: {y}"));
            }
            Ok((x, y))
        }
    }
}

/// `validateIndexesFormat`: increasing comma-separated intervals; the
/// number of indexes they hold.
pub fn indexes_format(text: &str, completions: i64) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i64> = None;
    let mut total = 0;
    for interval in text.split(',') {
        let (x, y) = index_interval(interval, completions)?;
        if let Some(l) = last.filter(|l| *l >= x) {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

/// `validateSuccessPolicy` of an Indexed Job with `completions`.
pub fn success_policy(policy: &Value, completions: i64) -> Vec<Cause> {
    let mut causes = Vec::new();
    let rules = policy["rules"].as_array().map_or(&[][..], Vec::as_slice);
    if rules.is_empty() {
        causes.push(Cause::required_because(
            "spec.successPolicy.rules",
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > 20 {
        causes.push(Cause {
            reason: "FieldValueTooMany",
            field: "spec.successPolicy.rules".into(),
            message: format!("Too many: {}: must have at most 20 items", rules.len()),
        });
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.successPolicy.rules[{i}]");
        let indexes = rule["succeededIndexes"].as_str();
        let count = rule["succeededCount"].as_i64();
        if indexes.is_none() && count.is_none() {
            causes.push(Cause::required_because(
                &path,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0;
        if let Some(text) = indexes {
            let p = format!("{path}.succeededIndexes");
            if text.len() > 64 * 1024 {
                causes.push(Cause::too_long(&p, 64 * 1024));
            }
            match indexes_format(text, completions) {
                Ok(n) => total = n,
                Err(e) => causes.push(Cause::invalid(
                    p,
                    text,
                    &format!("error parsing succeededIndexes: {e}"),
                )),
            }
        }
        if let Some(n) = count {
            let p = format!("{path}.succeededCount");
            let shown = Value::from(n);
            if n < 0 {
                causes.push(Cause::invalid_value(
                    &p,
                    &shown,
                    "must be greater than or equal to 0",
                ));
            }
            if n > completions {
                causes.push(Cause::invalid_value(&p, &shown, &format!("must be less than or equal to {completions} (the number of specified completions)")));
            }
            if indexes.is_some() && n > total {
                causes.push(Cause::invalid_value(&p, &shown, &format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)")));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use crate::error::cause_texts as messages;

    #[test]
    fn success_rules_and_exit_codes() {
        assert_eq!(indexes_format("0,2-4,6", 10), Ok(5));
        assert_eq!(
            indexes_format("1-2-3", 10).unwrap_err(),
            "the fragment \"1-2-3\" violates the requirement that an index interval can have at most two parts separated by '-'"
        );
        assert_eq!(
            indexes_format("a", 10).unwrap_err(),
            "cannot convert string to integer for index: \"a\""
        );
        assert_eq!(
            indexes_format("3-9", 5).unwrap_err(),
            "too large index: \"9\""
        );
        assert_eq!(
            indexes_format("3-1", 5).unwrap_err(),
            "non-increasing order, previous: 3, current: 1"
        );
        assert_eq!(
            indexes_format("2,1", 5).unwrap_err(),
            "non-increasing order, previous: 2, current: 1"
        );
        let policy = json!({"rules": [{}, {"succeededIndexes": "0-1", "succeededCount": 3}]});
        assert_eq!(
            messages(success_policy(&policy, 2)),
            [
                "spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified",
                "spec.successPolicy.rules[1].succeededCount: Invalid value: 3: must be less than or equal to 2 (the number of specified completions)",
                "spec.successPolicy.rules[1].succeededCount: Invalid value: 3: must be less than or equal to 2 (the number of indexes in the specified succeededIndexes field)",
            ]
        );
        let exit = json!({"operator": "In", "values": [3, 0, 3]});
        assert_eq!(
            messages(exit_code_values("v", &exit)),
            [
                "v[1]: Invalid value: 0: must not be 0 for the In operator",
                "v[2]: Duplicate value: 3",
                "v: Invalid value: []int32{3, 0, 3}: must be ordered",
            ]
        );
    }
}
