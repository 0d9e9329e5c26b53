//! List and watch options as a real API server reads them: apimachinery's
//! `ValidateListOptions` rules (422 `ListOptions.meta.k8s.io`), and the
//! resourceVersion semantics of the api-concepts "Resource versions" page
//! (unset: most recent; `"0"`: any; a version: not older than it, or exactly
//! it for `resourceVersionMatch=Exact` and for paged lists).

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::time::Duration;

use super::error::{ApiError, Cause};
use super::store::{parse_rv, ListAt};

/// How long a request for a resourceVersion the server has not reached waits
/// before its 504 (the watch cache's 3 s).
pub const WAIT_FOR_RV: Duration = Duration::from_secs(3);

const EXACT: &str = "Exact";
const NOT_OLDER_THAN: &str = "NotOlderThan";

/// The resourceVersion-related options of one list or watch.
#[derive(Debug, Default)]
pub struct ListQuery {
    /// `resourceVersion`: None when unset, Some(0) for `"0"`.
    pub resource_version: Option<u64>,
    pub matched: Option<String>,
    /// `sendInitialEvents`: None when not given.
    pub send_initial_events: Option<bool>,
    pub continue_token: Option<String>,
}

/// Go's `strconv.ParseBool`, as query parameters are decoded.
fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "strconv.ParseBool: parsing {v:?}: invalid syntax (query parameter {name})"
        ))),
    }
}

impl ListQuery {
    /// Reads and validates the options of a list (`watch` false) or watch.
    pub fn parse(q: &HashMap<String, String>, watch: bool) -> Result<ListQuery, ApiError> {
        let get = |k: &str| q.get(k).map(String::as_str).filter(|s| !s.is_empty());
        let rv_raw = get("resourceVersion");
        let opts = ListQuery {
            resource_version: rv_raw.map(parse_rv).transpose()?,
            matched: get("resourceVersionMatch").map(str::to_string),
            send_initial_events: get("sendInitialEvents")
                .map(|v| parse_bool("sendInitialEvents", v))
                .transpose()?,
            continue_token: get("continue").map(str::to_string),
        };
        let causes = if watch {
            opts.watch_causes()
        } else {
            opts.list_causes(rv_raw)
        };
        if causes.is_empty() {
            Ok(opts)
        } else {
            Err(ApiError::invalid_list_options(causes))
        }
    }

    /// `ValidateListOptions` for a list.
    fn list_causes(&self, rv_raw: Option<&str>) -> Vec<Cause> {
        let mut c = Vec::new();
        if let Some(m) = &self.matched {
            if rv_raw.is_none() {
                c.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if self.continue_token.is_some() {
                c.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if m != EXACT && m != NOT_OLDER_THAN {
                c.push(Cause::not_supported(
                    "resourceVersionMatch",
                    m,
                    &[EXACT, NOT_OLDER_THAN, ""],
                ));
            }
            if m == EXACT && rv_raw == Some("0") {
                c.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if self.send_initial_events.is_some() {
            c.push(Cause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        c
    }

    /// `validateWatchOptions` (with the WatchList feature on, as in 1.32).
    fn watch_causes(&self) -> Vec<Cause> {
        let mut c = Vec::new();
        let m = self.matched.as_deref();
        if self.send_initial_events.is_some() && m != Some(NOT_OLDER_THAN) {
            c.push(Cause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if let Some(m) = m {
            if self.send_initial_events.is_none() {
                c.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if m != NOT_OLDER_THAN {
                c.push(Cause::not_supported(
                    "resourceVersionMatch",
                    m,
                    &[NOT_OLDER_THAN],
                ));
            }
            if self.continue_token.is_some() {
                c.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
        c
    }

    /// The version a request must wait for before it is served (a version
    /// other than 0, without a continue token).
    pub fn wait_for(&self) -> Option<u64> {
        self.resource_version
            .filter(|rv| *rv > 0 && self.continue_token.is_none())
    }

    /// Which state a list reads (`paged`: a `limit` was given).
    pub fn list_at(&self, paged: bool) -> Result<ListAt, ApiError> {
        let rv = self.resource_version.unwrap_or(0);
        if self.continue_token.is_some() {
            if rv != 0 {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            return Ok(ListAt::Latest);
        }
        Ok(match self.matched.as_deref() {
            Some(EXACT) => ListAt::Exact(rv),
            Some(_) => ListAt::Latest,
            None if rv > 0 && paged => ListAt::Exact(rv),
            None => ListAt::Latest,
        })
    }

    /// Whether a watch starts with synthetic `ADDED` events for the current
    /// state: asked for, or the legacy default for an unset or `"0"` version.
    pub fn initial_events(&self) -> bool {
        match self.send_initial_events {
            Some(b) => b,
            None => self.resource_version.unwrap_or(0) == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)], watch: bool) -> Result<ListQuery, ApiError> {
        let q = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListQuery::parse(&q, watch)
    }

    fn message(pairs: &[(&str, &str)], watch: bool) -> String {
        parse(pairs, watch).expect_err("refused").message
    }

    /// The messages of apimachinery's ValidateListOptions
    /// (staging/src/k8s.io/apimachinery/pkg/apis/meta/internalversion/validation).
    #[test]
    fn list_option_rules_match_apimachinery() {
        assert_eq!(
            message(&[("resourceVersionMatch", "NotOlderThan")], false),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        );
        assert_eq!(
            message(&[("resourceVersion", "0"), ("resourceVersionMatch", "Exact")], false),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
        );
        assert_eq!(
            message(&[("sendInitialEvents", "true")], false),
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"
        );
        assert_eq!(
            message(&[("sendInitialEvents", "true")], true),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
        );
        assert_eq!(
            message(&[("resourceVersionMatch", "NotOlderThan")], true),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
        );
        let ok = parse(
            &[
                ("sendInitialEvents", "true"),
                ("resourceVersionMatch", "NotOlderThan"),
            ],
            true,
        )
        .expect("valid");
        assert!(ok.initial_events());
    }

    #[test]
    fn resource_version_semantics_follow_the_api_concepts_table() {
        let at = |pairs: &[(&str, &str)], paged| parse(pairs, false).unwrap().list_at(paged);
        assert_eq!(at(&[], true).unwrap(), ListAt::Latest);
        assert_eq!(
            at(&[("resourceVersion", "0")], true).unwrap(),
            ListAt::Latest
        );
        assert_eq!(
            at(&[("resourceVersion", "7")], false).unwrap(),
            ListAt::Latest
        );
        assert_eq!(
            at(&[("resourceVersion", "7")], true).unwrap(),
            ListAt::Exact(7)
        );
        assert_eq!(
            at(
                &[("resourceVersion", "7"), ("resourceVersionMatch", "Exact")],
                false
            )
            .unwrap(),
            ListAt::Exact(7)
        );
        assert_eq!(
            at(&[("resourceVersion", "7"), ("continue", "x")], true)
                .unwrap_err()
                .code,
            400
        );
        let e = parse(&[("resourceVersion", "abc")], false).expect_err("malformed");
        assert_eq!(e.code, 500);
        assert_eq!(
            e.message,
            "resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
    }
}
