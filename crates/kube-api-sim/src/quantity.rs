//! Resource quantities as a real API server decodes them (apimachinery's
//! `ParseQuantity`, Kubernetes 1.32): a malformed quantity in a pod spec
//! makes the whole body undecodable, a 400 with the parser's own words.
//! `k8s-openapi` keeps quantities as plain strings, so the simulator checks
//! them itself.

use serde_json::Value;

/// `ErrFormatWrong`.
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// `ErrSuffix`.
pub const BAD_SUFFIX: &str = "unable to parse quantity's suffix";

fn digits_end(b: &[u8], from: usize) -> usize {
    from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Why `text` (a JSON string's content, or a JSON number) is not a
/// quantity, following `parseQuantityString` and the suffix tables.
pub fn problem(text: &str) -> Option<&'static str> {
    let s = text.trim();
    if s.is_empty() {
        return Some(FORMAT_WRONG);
    }
    let b = s.as_bytes();
    let mut pos = usize::from(matches!(b[0], b'+' | b'-'));
    // The number: digits, then an optional '.' and digits ("1." is fine).
    pos = digits_end(b, pos);
    if pos < b.len() && b[pos] == b'.' {
        pos = digits_end(b, pos + 1);
    }
    if pos == b.len() {
        return None;
    }
    // The suffix: letters of "eEinumkKMGTP", an optional sign, digits, and
    // nothing after them.
    let suffix_start = pos;
    pos += b[pos..]
        .iter()
        .take_while(|c| b"eEinumkKMGTP".contains(c))
        .count();
    if pos < b.len() && matches!(b[pos], b'+' | b'-') {
        pos += 1;
    }
    if digits_end(b, pos) != b.len() {
        return Some(FORMAT_WRONG);
    }
    let suffix = &s[suffix_start..];
    let known = [
        "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let exponent =
        suffix.len() > 1 && suffix.starts_with(['e', 'E']) && suffix[1..].parse::<i64>().is_ok();
    if known.contains(&suffix) || exponent {
        None
    } else {
        Some(BAD_SUFFIX)
    }
}

fn check_map(v: &Value) -> Option<&'static str> {
    v.as_object()?.values().find_map(check_value)
}

fn check_value(v: &Value) -> Option<&'static str> {
    match v {
        Value::String(s) => problem(s),
        Value::Number(n) => problem(&n.to_string()),
        _ => None,
    }
}

fn check_resources(r: &Value) -> Option<&'static str> {
    check_map(&r["limits"]).or_else(|| check_map(&r["requests"]))
}

/// The first malformed quantity of a pod spec: container resources, pod
/// resources and overhead, `emptyDir.sizeLimit`, ephemeral claim templates.
pub fn pod_spec_problem(spec: &Value) -> Option<&'static str> {
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|f| spec[*f].as_array())
        .flatten()
        .find_map(|c| check_resources(&c["resources"]));
    let volumes = || {
        spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|v| {
                check_value(&v["emptyDir"]["sizeLimit"]).or_else(|| {
                    check_resources(&v["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"])
                })
            })
    };
    containers
        .or_else(|| check_resources(&spec["resources"]))
        .or_else(|| check_map(&spec["overhead"]))
        .or_else(volumes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_parse_quantity_takes_them() {
        for ok in [
            "1",
            "0",
            "100m",
            "1.5",
            "1.",
            ".5",
            "2Gi",
            "128974848",
            "129e6",
            "129M",
            "1E",
            "+1k",
            "-1",
            " 1Gi ",
            "1e-3",
        ] {
            assert_eq!(problem(ok), None, "{ok:?}");
        }
        for bad in ["", "1 Gi", "1Gb", "1KB", "abc", "1..5", "1Gi2x"] {
            assert_eq!(problem(bad), Some(FORMAT_WRONG), "{bad:?}");
        }
        for bad in ["192i", "1GG", "1e", "1mi"] {
            assert_eq!(problem(bad), Some(BAD_SUFFIX), "{bad:?}");
        }
    }
}
