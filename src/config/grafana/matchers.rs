//! Label matchers that select which firing alerts become tasks
//! (`GRAFANA_ALERT_MATCHERS`), in the Prometheus/Alertmanager notation:
//! `severity=critical,team!="infra"`, optionally wrapped in `{…}`.
//!
//! As in Prometheus, a label the alert does not carry has the value `""`,
//! so `team!=infra` selects alerts without a `team` label and `team=`
//! selects only those. All matchers must hold. Regex matchers (`=~`, `!~`)
//! are fully anchored, as in Prometheus: `severity=~"crit.*"` matches
//! `critical`, not `not-critical`.

use std::collections::BTreeMap;
use std::fmt;

/// How a matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `name=value`: the label equals `value`.
    Equal,
    /// `name!=value`: the label differs from `value`.
    NotEqual,
    /// `name=~regex`: the whole label value matches the regex.
    Regex,
    /// `name!~regex`: the whole label value does not match the regex.
    NotRegex,
}

/// A compiled, fully anchored regex; equal when the patterns are.
#[derive(Clone, Debug)]
pub struct AnchoredRegex(regex::Regex);

impl PartialEq for AnchoredRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for AnchoredRegex {}

/// One `name=value` / `name!=value` matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The literal value or regex compared against (`""` matches a missing label).
    pub value: String,
    /// The compiled regex of `=~` / `!~`.
    pub regex: Option<AnchoredRegex>,
}

impl Matcher {
    /// True if the label set satisfies this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let actual = labels.get(&self.name).map_or("", String::as_str);
        let re = || self.regex.as_ref().is_some_and(|r| r.0.is_match(actual));
        match self.op {
            MatchOp::Equal => actual == self.value,
            MatchOp::NotEqual => actual != self.value,
            MatchOp::Regex => re(),
            MatchOp::NotRegex => !re(),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

/// A conjunction of matchers; empty selects every alert.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Parses `a=b,c!=d` (optionally `{a="b", c!="d"}`). The error says
    /// which matcher is wrong and why.
    pub fn parse(text: &str) -> Result<Matchers, String> {
        let mut text = text.trim();
        if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            text = inner;
        }
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.push(parse_one(part)?);
        }
        Ok(Matchers(out))
    }

    /// The first matcher `labels` fails, or `None` if all hold.
    pub fn first_failing(&self, labels: &BTreeMap<String, String>) -> Option<&Matcher> {
        self.0.iter().find(|m| !m.matches(labels))
    }

    /// True if no matcher is configured (every alert is selected).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_one(part: &str) -> Result<Matcher, String> {
    let at = part
        .find(['=', '!'])
        .ok_or_else(|| format!("{part:?} has no operator (=, !=, =~ or !~)"))?;
    let name = part[..at].trim();
    let rest = &part[at..];
    let (op, value) = if let Some(v) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, v)
    } else if let Some(v) = rest.strip_prefix("=~") {
        (MatchOp::Regex, v)
    } else if let Some(v) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (MatchOp::Equal, v)
    } else {
        return Err(format!("{part:?} has no operator (=, !=, =~ or !~)"));
    };
    if !is_label_name(name) {
        return Err(format!("{part:?}: {name:?} is not a label name"));
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let regex = match op {
        MatchOp::Regex | MatchOp::NotRegex => Some(AnchoredRegex(
            regex::RegexBuilder::new(&format!("^(?:{value})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("{part:?}: invalid regex: {e}"))?,
        )),
        _ => None,
    };
    Ok(Matcher {
        name: name.to_string(),
        op,
        value: value.to_string(),
        regex,
    })
}

/// A label name we accept in configuration: 1–128 characters, no
/// whitespace, control characters, quotes or matcher punctuation. Looser
/// than Prometheus (`[a-zA-Z_][a-zA-Z0-9_]*`) because Grafana allows more.
pub fn is_label_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && !s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '=' | '!' | '~' | ',' | '"' | '{' | '}')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equal_and_not_equal_select_as_in_prometheus() {
        let m = Matchers::parse("severity=critical, team!=\"infra\"").unwrap();
        assert_eq!(m.0.len(), 2);
        assert!(m
            .first_failing(&labels(&[("severity", "critical")]))
            .is_none());
        assert!(m
            .first_failing(&labels(&[("severity", "critical"), ("team", "app")]))
            .is_none());
        let failed = m
            .first_failing(&labels(&[("severity", "critical"), ("team", "infra")]))
            .unwrap();
        assert_eq!(failed.to_string(), "team!=\"infra\"");
        assert_eq!(
            m.first_failing(&labels(&[("severity", "warning")]))
                .unwrap()
                .name,
            "severity"
        );
    }

    #[test]
    fn braces_and_empty_values_are_understood() {
        let m = Matchers::parse("{team=\"\"}").unwrap();
        assert!(m.first_failing(&labels(&[])).is_none());
        assert!(m.first_failing(&labels(&[("team", "x")])).is_some());
        assert!(Matchers::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn regex_matchers_are_fully_anchored() {
        let m = Matchers::parse("severity=~\"crit.*|high\",team!~infra|ops").unwrap();
        assert!(m
            .first_failing(&labels(&[("severity", "critical")]))
            .is_none());
        assert!(m
            .first_failing(&labels(&[("severity", "high"), ("team", "app")]))
            .is_none());
        assert!(m
            .first_failing(&labels(&[("severity", "not-critical")]))
            .is_some());
        assert!(m
            .first_failing(&labels(&[("severity", "high"), ("team", "ops")]))
            .is_some());
        assert_eq!(m.0[0].to_string(), "severity=~\"crit.*|high\"");
    }

    #[test]
    fn bad_matchers_are_refused_with_the_reason() {
        for (text, needle) in [
            ("severity", "no operator"),
            ("severity=~crit(", "invalid regex"),
            ("=critical", "not a label name"),
            ("sev erity=x", "not a label name"),
            ("severity!critical", "no operator"),
        ] {
            let err = Matchers::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
