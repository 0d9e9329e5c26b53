//! Fault injection: rules matched in order, before authentication and normal
//! handling, on every path outside `/_sim/`.
//!
//! A rule set is JSON: `{"rules":[{"method":"PATCH","path":"^/repos/.*/check-runs",
//! "status":403,"headers":{"Retry-After":"2"},"body":{…},"times":1,"delay_ms":0}]}`.
//! Every field is optional: `method` (any when absent), `path` (a regular
//! expression searched in the request path, without the query; any when
//! absent), `status` (the answer; without it the rule only delays and the
//! request is then handled normally), `headers`, `body` (JSON; a JSON string
//! is sent as-is as text/plain; absent: `{"message":<reason phrase>}`),
//! `times` (how many requests it applies to; absent or null: forever) and
//! `delay_ms` (waited before answering or handling). The first rule that
//! matches (and has `times` left) applies; its `times` counts down.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    times: Option<u64>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone)]
struct Rule {
    spec: RuleSpec,
    path: Option<Regex>,
    remaining: Option<u64>,
    hits: u64,
}

/// What a matching rule does to one request.
#[derive(Debug, Clone)]
pub struct Fault {
    pub delay_ms: u64,
    /// `None`: only the delay; the request is then handled normally.
    pub answer: Option<FaultAnswer>,
}

#[derive(Debug, Clone)]
pub struct FaultAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// The active rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<Rule>,
}

const MAX_RULES: usize = 1000;
const MAX_DELAY_MS: u64 = 600_000;

impl Faults {
    /// Replaces the rules with `spec` (`{"rules":[…]}`); on error nothing changes.
    pub fn set(&mut self, spec: Value) -> Result<(), String> {
        let spec: FaultSpec =
            serde_json::from_value(spec).map_err(|e| format!("invalid fault rules: {e}"))?;
        if spec.rules.len() > MAX_RULES {
            return Err(format!("at most {MAX_RULES} fault rules"));
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (i, r) in spec.rules.into_iter().enumerate() {
            let path = match &r.path {
                Some(p) => Some(Regex::new(p).map_err(|e| format!("rules[{i}].path: {e}"))?),
                None => None,
            };
            match r.status {
                Some(0) => return Err(format!("rules[{i}].status: 0 (dropping the connection) is not supported; use delay_ms for a hanging API")),
                Some(s) if !(100..=599).contains(&s) => {
                    return Err(format!("rules[{i}].status: {s} is not an HTTP status"))
                }
                None if r.delay_ms.unwrap_or(0) == 0 => {
                    return Err(format!("rules[{i}]: a rule needs a status or a delay_ms"))
                }
                _ => {}
            }
            if r.delay_ms.unwrap_or(0) > MAX_DELAY_MS {
                return Err(format!("rules[{i}].delay_ms: at most {MAX_DELAY_MS}"));
            }
            for (k, v) in r.headers.iter().flatten() {
                if actix_web::http::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || actix_web::http::header::HeaderValue::from_str(v).is_err()
                {
                    return Err(format!("rules[{i}].headers: invalid header {k:?}: {v:?}"));
                }
            }
            rules.push(Rule {
                remaining: r.times,
                path,
                spec: r,
                hits: 0,
            });
        }
        self.rules = rules;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The active rules with `times` left and `hits` so far.
    pub fn show(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({
                    "method": r.spec.method, "path": r.spec.path, "status": r.spec.status,
                    "headers": r.spec.headers, "body": r.spec.body, "times": r.remaining,
                    "delay_ms": r.spec.delay_ms, "hits": r.hits,
                })
            })
            .collect();
        json!({ "rules": rules })
    }

    /// The fault for this request, if a rule matches; counts `times` down.
    pub fn take(&mut self, method: &str, path: &str) -> Option<Fault> {
        let rule = self.rules.iter_mut().find(|r| {
            r.remaining != Some(0)
                && r.spec
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && r.path.as_ref().is_none_or(|re| re.is_match(path))
        })?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        rule.hits += 1;
        let answer = rule.spec.status.map(|status| FaultAnswer {
            status,
            headers: rule
                .spec
                .headers
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: rule.spec.body.clone().unwrap_or_else(|| {
                let reason = actix_web::http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Error");
                json!({"message": reason, "documentation_url": crate::DOCS_URL})
            }),
        });
        Some(Fault {
            delay_ms: rule.spec.delay_ms.unwrap_or(0),
            answer,
        })
    }
}

/// GitHub's secondary rate limit for the next `times` requests (all when
/// `None`) matching `path` (a regex; all paths when `None`): 403 with
/// `Retry-After: retry_after_secs` and GitHub's message. For
/// `GithubSimServer::set_faults` or `PUT /_sim/faults`.
pub fn secondary_rate_limit(
    path: Option<&str>,
    times: Option<u64>,
    retry_after_secs: u64,
) -> Value {
    json!({"rules": [{
        "method": null, "path": path, "status": 403, "times": times,
        "headers": {"Retry-After": retry_after_secs.to_string(), "X-RateLimit-Resource": "core"},
        "body": {
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.",
            "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
        }
    }]})
}

/// The whole API down: every request answered 503 until the faults are cleared.
pub fn api_down() -> Value {
    json!({"rules": [{
        "status": 503, "times": null,
        "body": {"message": "Service Unavailable", "documentation_url": crate::DOCS_URL}
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_count_down_and_rules_match_in_order() {
        let mut f = Faults::default();
        f.set(json!({"rules":[
            {"method":"PATCH","path":"check-runs","status":500,"times":1},
            {"path":"^/repos/","status":502}
        ]}))
        .unwrap();
        assert_eq!(
            f.take("patch", "/repos/o/r/check-runs/1")
                .unwrap()
                .answer
                .unwrap()
                .status,
            500
        );
        assert_eq!(
            f.take("PATCH", "/repos/o/r/check-runs/1")
                .unwrap()
                .answer
                .unwrap()
                .status,
            502
        );
        assert!(f.take("GET", "/app").is_none());
    }

    #[test]
    fn bad_rules_are_refused_whole() {
        let mut f = Faults::default();
        assert!(f.set(json!({"rules":[{"status":0}]})).is_err());
        assert!(f.set(json!({"rules":[{"path":"("}]})).is_err());
        assert!(f.set(json!({"rules":[{"method":"GET"}]})).is_err());
        assert!(f.set(json!({"rules":[{"status":403,"bogus":1}]})).is_err());
        assert!(f.set(secondary_rate_limit(None, Some(2), 1)).is_ok());
        assert!(f.set(api_down()).is_ok());
    }
}
