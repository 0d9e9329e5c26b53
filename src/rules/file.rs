//! The rules file format and its validation.
//!
//! ```yaml
//! replace_defaults: false      # optional; true drops the built-in rules
//! rules:
//!   - name: triage-bug
//!     events: [issues]         # or `event: issues`
//!     actions: [labeled]       # optional; empty = any action
//!     label: bug               # label events only
//!     command: /triage         # comment events only (required there)
//!     kind: investigate
//!     priority: 5              # optional, default 0
//!     trust: trusted           # optional: trusted (default) | any
//!     report: comment          # optional: comment (default) | check_run | both | none
//!     on_repeat: queue         # optional: queue (default) | supersede | ignore
//!     on_budget: wait          # optional: wait (default) | refuse
//!     namespace: team-a        # optional: where its Jobs run (default KUBERNETES_NAMESPACE)
//!     secret: team-a-agent     # optional: the agent's Secret there (default JOB_SECRET_NAME)
//!     prompt: |
//!       Investigate {{ repository }}#{{ number }}: {{ title }}
//!       {{ body }}
//! ```

use super::{OnBudget, OnRepeat, ReportMode, Rule, Trust, COMMENT_EVENTS, ROUTABLE_EVENTS};
use serde::Deserialize;

/// A rules file that cannot be used. Messages name the rule at fault.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rules file {path}: {message}")]
    Io {
        /// Path of the file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("rules file: {0}")]
    File(String),
    /// One rule is invalid.
    #[error("rule '{rule}': {message}")]
    Rule {
        /// Name of the rule (or `#<index>` if it has none).
        rule: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    replace_defaults: bool,
    #[serde(default)]
    rules: Vec<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// One rule as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleSpec {
    pub(super) name: String,
    #[serde(alias = "event")]
    events: OneOrMany,
    #[serde(default, alias = "action")]
    actions: Option<OneOrMany>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    command: Option<String>,
    kind: String,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    trust: Trust,
    #[serde(default)]
    report: ReportMode,
    #[serde(default)]
    on_repeat: OnRepeat,
    #[serde(default)]
    on_budget: OnBudget,
    /// The tenant namespace its Jobs run in (see [`super::placement`]).
    #[serde(default)]
    namespace: Option<String>,
    /// The Secret its Jobs' agents get (see [`super::placement`]).
    #[serde(default)]
    secret: Option<String>,
    pub(super) prompt: String,
}

impl RuleSpec {
    /// A spec from code (the built-in defaults).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        name: &str,
        events: &[&str],
        actions: &[&str],
        label: Option<&str>,
        command: Option<&str>,
        kind: &str,
        prompt: &str,
    ) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            events: OneOrMany::Many(events.iter().map(|s| s.to_string()).collect()),
            actions: Some(OneOrMany::Many(
                actions.iter().map(|s| s.to_string()).collect(),
            )),
            label: label.map(str::to_string),
            command: command.map(str::to_string),
            kind: kind.into(),
            priority: 0,
            trust: Trust::Trusted,
            report: ReportMode::Comment,
            on_repeat: OnRepeat::Queue,
            on_budget: OnBudget::Wait,
            namespace: None,
            secret: None,
            prompt: prompt.into(),
        }
    }

    /// The same spec with `on_repeat` set.
    pub(super) fn on_repeat(mut self, on_repeat: OnRepeat) -> RuleSpec {
        self.on_repeat = on_repeat;
        self
    }

    /// Checks the spec and turns it into a [`Rule`] (the prompt is compiled by
    /// the caller). `taken` are the names already in use.
    pub(super) fn validate<'n>(
        &self,
        mut taken: impl Iterator<Item = &'n str>,
    ) -> Result<Rule, RulesError> {
        let fail = |message: String| RulesError::Rule {
            rule: self.name.clone(),
            message,
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(fail(
                "name must be 1-63 characters of [A-Za-z0-9_.-]".into(),
            ));
        }
        if taken.any(|n| n == self.name) {
            return Err(fail("duplicate rule name".into()));
        }
        let events = match &self.events {
            OneOrMany::One(e) => vec![e.clone()],
            OneOrMany::Many(v) => v.clone(),
        };
        if events.is_empty() {
            return Err(fail("needs at least one event".into()));
        }
        if let Some(e) = events
            .iter()
            .find(|e| !ROUTABLE_EVENTS.contains(&e.as_str()))
        {
            return Err(fail(format!(
                "event '{e}' cannot be routed (supported: {})",
                ROUTABLE_EVENTS.join(", ")
            )));
        }
        let mut actions = match &self.actions {
            None => Vec::new(),
            Some(OneOrMany::One(a)) => vec![a.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        let comment_events = events
            .iter()
            .filter(|e| COMMENT_EVENTS.contains(&e.as_str()));
        match (&self.command, comment_events.count()) {
            (None, n) if n > 0 => {
                return Err(fail(
                    "rules on comment events need a `command` (otherwise every comment, \
                     including the agent's own, would start a task)"
                        .into(),
                ))
            }
            (Some(_), n) if n != events.len() => {
                return Err(fail("`command` only applies to comment events".into()))
            }
            (Some(c), _) if c.trim().is_empty() || c.contains(char::is_whitespace) => {
                return Err(fail("`command` must be one word, like /agent".into()))
            }
            _ => {}
        }
        if let Some(label) = &self.label {
            if label.trim().is_empty() {
                return Err(fail("`label` must not be empty".into()));
            }
            if actions.is_empty() {
                actions.push("labeled".into());
            }
            if actions.iter().any(|a| a != "labeled" && a != "unlabeled") {
                return Err(fail(
                    "`label` only applies to labeled/unlabeled actions".into(),
                ));
            }
        }
        let kind_ok = self.kind.len() <= 24
            && self.kind.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !kind_ok {
            return Err(fail(format!(
                "kind {:?} must be 1-24 characters of [a-z0-9-], starting with a letter",
                self.kind
            )));
        }
        super::placement::check(self.namespace.as_deref(), self.secret.as_deref()).map_err(fail)?;
        Ok(Rule {
            name: self.name.clone(),
            events,
            actions,
            label: self.label.clone(),
            command: self.command.clone(),
            kind: self.kind.clone(),
            priority: self.priority,
            trust: self.trust,
            report: self.report,
            on_repeat: self.on_repeat,
            on_budget: self.on_budget,
            namespace: self.namespace.clone(),
            secret: self.secret.clone(),
        })
    }
}

/// Parses the file: `(replace_defaults, rules)`.
pub(super) fn parse(text: &str) -> Result<(bool, Vec<RuleSpec>), RulesError> {
    let file: RulesFile =
        serde_yaml_ng::from_str(text).map_err(|e| RulesError::File(e.to_string()))?;
    let mut specs = Vec::with_capacity(file.rules.len());
    for (i, value) in file.rules.into_iter().enumerate() {
        let label = value
            .get("name")
            .and_then(|n| n.as_str())
            .map_or_else(|| format!("#{}", i + 1), str::to_string);
        let spec: RuleSpec = serde_yaml_ng::from_value(value).map_err(|e| RulesError::Rule {
            rule: label,
            message: e.to_string(),
        })?;
        specs.push(spec);
    }
    Ok((file.replace_defaults, specs))
}
