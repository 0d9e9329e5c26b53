//! Label and field selectors, parsed from the query string as the real API
//! server accepts them.

use serde_json::Value;
use std::collections::BTreeMap;

use super::error::ApiError;
use super::store::Stored;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    /// Matches a stored object's indexed labels (no decoding).
    pub fn matches_stored(&self, obj: &Stored) -> bool {
        self.matches_with(|k| obj.label(k))
    }

    fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }

    /// Builds a selector from a `matchLabels` map (used for Job → Pod lookups).
    pub fn from_match_labels(m: &BTreeMap<String, String>) -> Self {
        LabelSelector(
            m.iter()
                .map(|(k, v)| Req::Eq(k.clone(), v.clone()))
                .collect(),
        )
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn bad(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {sel:?}: {why}"))
}

fn check_key(sel: &str, k: &str) -> Result<String, ApiError> {
    let k = k.trim();
    if k.is_empty() {
        return Err(bad(sel, "key must not be empty"));
    }
    if let Some(why) = super::validate::label_key_problem(k) {
        return Err(bad(sel, &why));
    }
    Ok(k.to_string())
}

fn check_value(sel: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if let Some(why) = super::validate::label_value_problem(v) {
        return Err(bad(sel, &why));
    }
    Ok(v.to_string())
}

fn parse_set(sel: &str, rest: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad(sel, "expected a parenthesised set of values"))?;
    inner.split(',').map(|v| check_value(sel, v)).collect()
}

fn parse_requirement(p: &str) -> Result<Req, ApiError> {
    if let Some(k) = p.strip_prefix('!') {
        return Ok(Req::NotExists(check_key(p, k)?));
    }
    if let Some((k, v)) = p.split_once("!=") {
        return Ok(Req::NotEq(check_key(p, k)?, check_value(p, v)?));
    }
    if let Some((k, v)) = p.split_once("==") {
        return Ok(Req::Eq(check_key(p, k)?, check_value(p, v)?));
    }
    if let Some((k, v)) = p.split_once('=') {
        return Ok(Req::Eq(check_key(p, k)?, check_value(p, v)?));
    }
    let words: Vec<&str> = p.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = words[0];
        let rest = words[1].trim_start();
        if let Some(set) = rest.strip_prefix("notin") {
            return Ok(Req::NotIn(check_key(p, key)?, parse_set(p, set)?));
        }
        if let Some(set) = rest.strip_prefix("in") {
            return Ok(Req::In(check_key(p, key)?, parse_set(p, set)?));
        }
        return Err(bad(p, "expected one of '=', '==', '!=', 'in', 'notin'"));
    }
    Ok(Req::Exists(check_key(p, p)?))
}

/// A parsed field selector over a few supported fields.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y`. `supported` lists the
    /// extra field paths the resource allows besides the metadata ones.
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, neg, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            if k != "metadata.name" && k != "metadata.namespace" && !supported.contains(&k) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            out.push((k.to_string(), neg, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Exact `metadata.name=` value, if the selector pins one (a fast path).
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, neg, _)| k == "metadata.name" && !neg)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(path, neg, want)| (field_value(obj, path) == *want) != *neg)
    }

    /// Matches a stored object's indexed fields (no decoding).
    pub fn matches_stored(&self, obj: &Stored) -> bool {
        self.0
            .iter()
            .all(|(path, neg, want)| (obj.field(path).unwrap_or("") == want) != *neg)
    }
}

/// The value a field selector compares for `path` (dotted) of `obj`.
pub fn field_value(obj: &Value, path: &str) -> String {
    // A Job's `status.successful` field label is its `status.succeeded`
    // count, 0 when unset (batch's field label conversion).
    let (path, absent) = match path {
        "status.successful" => ("status.succeeded", "0"),
        p => (p, ""),
    };
    let mut cur = obj;
    for seg in path.split('.') {
        cur = cur.get(seg).unwrap_or(&Value::Null);
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => absent.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn every_operator_matches_as_kubernetes_does() {
        let l = labels(json!({"app": "web", "tier": "front", "env": "prod"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("tier in (front, back)", true),
            ("tier in (back)", false),
            ("tier notin (back)", true),
            ("missing notin (back)", true),
            ("env", true),
            ("!env", false),
            ("!missing", true),
            ("app=web,tier in (front),!missing", true),
            ("", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(Some(&l)), want, "{sel}");
        }
    }

    #[test]
    fn malformed_selectors_are_bad_requests() {
        for sel in ["app in web", "a b c", "bad key!=x=y", "x=has space"] {
            let e = LabelSelector::parse(sel).unwrap_err();
            assert_eq!(e.code, 400, "{sel}");
        }
    }

    #[test]
    fn field_selectors_on_metadata() {
        let obj = json!({"metadata": {"name": "a", "namespace": "default"}});
        let f =
            FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system", &[]).unwrap();
        assert!(f.matches(&obj));
        assert_eq!(f.pinned_name(), Some("a"));
        assert!(!FieldSelector::parse("metadata.name=b", &[])
            .unwrap()
            .matches(&obj));
        assert_eq!(FieldSelector::parse("spec.x=1", &[]).unwrap_err().code, 400);
    }
}
