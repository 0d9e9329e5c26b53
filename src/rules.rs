//! Routing rules: which GitHub events become which tasks, with which
//! priority and prompt.
//!
//! The built-in defaults ([`Rules::builtin`]) are:
//!
//! | rule | event | when | kind | `on_repeat` |
//! |---|---|---|---|---|
//! | `issue-agent` | `issues` | labeled `agent` | `implement` | `ignore` |
//! | `comment-agent` | `issue_comment`, `pull_request_review_comment` | created, body starts with `/agent` | `comment` | `queue` |
//! | `pr-review` | `pull_request` | labeled `agent-review` | `review` | `supersede` |
//!
//! `on_repeat` ([`OnRepeat`]) decides what a trigger does while the issue or
//! PR already has a live Job: a label added again while the agent works on
//! the issue is most likely the same request twice, so it is ignored (the
//! answer names the running Job; `/agent cancel` then the label starts
//! over); every `/agent` comment is a request of its own, so it queues; a
//! review asked for again is about a newer head, so the stale review is
//! superseded.
//!
//! An optional YAML file (`ORCHESTRATOR_RULES`) adds rules in front of the
//! defaults; a file rule with a default's name replaces it, and
//! `replace_defaults: true` drops the defaults entirely. The first matching
//! rule wins. Every problem — unknown keys, a bad template, an unknown event —
//! is reported at load time with the rule's name.
//!
//! Prompts are minijinja templates. Text from issues and comments only ever
//! arrives as the *value* of a template variable: it is printed, never parsed
//! as a template, so `{{ 7*7 }}` in a comment reaches the agent verbatim.

mod defaults;
mod file;
pub mod placement;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub use file::RulesError;

/// Events the GitHub decoder knows how to turn into tasks.
pub const ROUTABLE_EVENTS: &[&str] = &[
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review_comment",
];

/// Events whose trigger is a comment (rules on them need a `command`).
pub const COMMENT_EVENTS: &[&str] = &["issue_comment", "pull_request_review_comment"];

/// Upper bound of a rendered prompt, bytes. The prompt travels as an env var
/// and, through `$(PROMPT)`, as one argv string, which Linux caps at 128 KiB.
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;

/// Who may trigger a rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Only trusted actors (author association OWNER/MEMBER/COLLABORATOR, or
    /// the allowlist). The default.
    #[default]
    Trusted,
    /// Anyone who can produce the event.
    Any,
}

/// How a rule's tasks are reported back on GitHub.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportMode {
    /// A status comment on the issue / PR, edited in place. The default.
    #[default]
    Comment,
    /// A check run on the PR head (GitHub App installs only; a PAT cannot
    /// make check runs) instead of the comment.
    CheckRun,
    /// Both.
    Both,
    /// No report (the 👀 reaction still marks acceptance).
    None,
}

impl ReportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportMode::Comment => "comment",
            ReportMode::CheckRun => "check_run",
            ReportMode::Both => "both",
            ReportMode::None => "none",
        }
    }
}

/// What a rule's new task does when its issue or pull request already has a
/// queued or running GitHub Job (a *repeat*: the label added again, another
/// `/agent` comment, the issue touched again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRepeat {
    /// A new Job, queued behind the live one (one Job per issue runs at a
    /// time). The default for rules from a file.
    #[default]
    Queue,
    /// A new Job; then the live Jobs of the issue are cancelled, marked as
    /// superseded by it ("the issue changed, start over").
    Supersede,
    /// No new Job: the delivery is answered that a run is active, naming it.
    Ignore,
}

impl OnRepeat {
    pub fn as_str(self) -> &'static str {
        match self {
            OnRepeat::Queue => "queue",
            OnRepeat::Supersede => "supersede",
            OnRepeat::Ignore => "ignore",
        }
    }
}

/// What a rule's new task does while its repository's (or GitHub's)
/// daily budget is spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBudget {
    /// Accepted; it waits in the queue until the budget day ends. The
    /// default.
    #[default]
    Wait,
    /// Not accepted: the delivery is answered `ignored` with the budget and
    /// until when (202, so GitHub does not count it failed).
    Refuse,
}

/// One routing rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique name, used in errors, logs and task metadata.
    pub name: String,
    /// GitHub event names (`X-GitHub-Event`) it applies to.
    pub events: Vec<String>,
    /// Actions it applies to; empty means any.
    pub actions: Vec<String>,
    /// For labeled events: the label that triggers (case-insensitive).
    pub label: Option<String>,
    /// For comment events: the command prefix, e.g. `/agent`.
    pub command: Option<String>,
    /// Kind of task produced.
    pub kind: String,
    /// Priority of the task produced.
    pub priority: i32,
    /// Who may trigger it.
    pub trust: Trust,
    /// How its tasks are reported back.
    pub report: ReportMode,
    /// What a new task does when its issue / PR already has a live Job.
    pub on_repeat: OnRepeat,
    /// What its new tasks do while a daily budget is spent.
    pub on_budget: OnBudget,
    /// The namespace its Jobs run in; `None`: the service's own
    /// (`KUBERNETES_NAMESPACE`). See [`placement`].
    pub namespace: Option<String>,
    /// The Secret its Jobs' agents get instead of `JOB_SECRET_NAME`.
    pub secret: Option<String>,
}

/// The facts about an event that rule matching looks at.
#[derive(Clone, Copy, Debug)]
pub struct EventFacts<'a> {
    /// `X-GitHub-Event`.
    pub event: &'a str,
    /// The payload's `action`.
    pub action: &'a str,
    /// The label added or removed (label events).
    pub label: Option<&'a str>,
    /// The comment body (comment events).
    pub comment: Option<&'a str>,
}

/// A rule that matched, with the comment's instruction (the text after the
/// command) if it is a command rule.
#[derive(Clone, Copy, Debug)]
pub struct RuleMatch<'r, 'a> {
    /// The matching rule.
    pub rule: &'r Rule,
    /// Text after the command prefix, trimmed.
    pub instruction: Option<&'a str>,
}

/// Variables available to prompt templates. All text is data.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PromptContext<'a> {
    /// Event name, e.g. `issues`.
    pub event: &'a str,
    /// Payload action, e.g. `labeled`.
    pub action: &'a str,
    /// Task kind of the rule.
    pub kind: &'a str,
    /// `owner/name`.
    pub repository: &'a str,
    /// Issue or PR number.
    pub number: u64,
    /// True when the issue is a pull request.
    pub is_pull_request: bool,
    /// Issue / PR title.
    pub title: &'a str,
    /// Issue / PR description.
    pub body: &'a str,
    /// Link to the comment, issue or PR.
    pub url: &'a str,
    /// Login of the issue / PR author.
    pub author: &'a str,
    /// Login of the sender (who commented or labeled).
    pub sender: &'a str,
    /// Label that triggered (label events).
    pub label: &'a str,
    /// The whole comment body (comment events).
    pub comment: &'a str,
    /// The comment text after the command (comment events).
    pub instruction: &'a str,
    /// Labels on the issue / PR.
    pub labels: Vec<&'a str>,
    /// PR head branch, if known.
    pub head_ref: &'a str,
    /// PR base branch, or the repository's default branch.
    pub base_ref: &'a str,
}

/// A validated, compiled rule set.
#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    events: HashSet<String>,
    /// Per event whose every rule needs a command: those commands (see
    /// [`Rules::commands_needed`]).
    commands: HashMap<String, Vec<String>>,
    env: Environment<'static>,
}

impl Rules {
    /// The built-in defaults (see the module docs).
    pub fn builtin() -> Rules {
        // The defaults are constants covered by tests; failing here is a bug.
        Rules::compile(defaults::specs()).expect("built-in rules are valid")
    }

    /// Loads the defaults plus, if `path` is given, the YAML file's rules.
    pub fn load(path: Option<&Path>) -> Result<Rules, RulesError> {
        match path {
            None => Ok(Rules::builtin()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| RulesError::Io {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
                Rules::from_yaml(&text)
            }
        }
    }

    /// Parses a rules file's text and merges it with the defaults.
    pub fn from_yaml(text: &str) -> Result<Rules, RulesError> {
        let (replace_defaults, mut specs) = file::parse(text)?;
        if !replace_defaults {
            for d in defaults::specs() {
                if !specs.iter().any(|s| s.name == d.name) {
                    specs.push(d);
                }
            }
        }
        Rules::compile(specs)
    }

    fn compile(specs: Vec<file::RuleSpec>) -> Result<Rules, RulesError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut rules = Vec::with_capacity(specs.len());
        let mut events = HashSet::new();
        for spec in specs {
            let rule = spec.validate(rules.iter().map(|r: &Rule| r.name.as_str()))?;
            let err = |e: minijinja::Error| RulesError::Rule {
                rule: rule.name.clone(),
                message: format!("bad prompt template: {e:#}"),
            };
            env.add_template_owned(rule.name.clone(), spec.prompt)
                .map_err(err)?;
            // Render once with sample data so unknown variables and filters
            // fail now, not on the first real event.
            env.get_template(&rule.name)
                .and_then(|t| t.render(PromptContext::sample()))
                .map_err(err)?;
            events.extend(rule.events.iter().cloned());
            rules.push(rule);
        }
        let commands = commands_by_event(&rules, &events);
        Ok(Rules {
            rules,
            events,
            commands,
            env,
        })
    }

    /// The rules, in matching order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// True if some rule could route this event type. Decided from the
    /// `X-GitHub-Event` header alone, before the body is parsed.
    pub fn routes_event(&self, event: &str) -> bool {
        self.events.contains(event)
    }

    /// If every rule on `event` needs a comment command, those commands:
    /// a delivery whose comment contains none of them matches no rule. Only
    /// commands whose characters JSON writes verbatim (no `"`, `\\` or
    /// control characters) are listed; else None.
    pub fn commands_needed(&self, event: &str) -> Option<&[String]> {
        self.commands.get(event).map(Vec::as_slice)
    }

    /// The rule named `name`.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// The first rule matching `facts`.
    pub fn find<'a>(&self, facts: &EventFacts<'a>) -> Option<RuleMatch<'_, 'a>> {
        self.rules.iter().find_map(|rule| rule.matches(facts))
    }

    /// Renders `rule`'s prompt, bounded to [`MAX_PROMPT_BYTES`].
    pub fn render(&self, rule: &Rule, ctx: &PromptContext<'_>) -> Result<String, RulesError> {
        let text = self
            .env
            .get_template(&rule.name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| RulesError::Rule {
                rule: rule.name.clone(),
                message: format!("rendering the prompt failed: {e:#}"),
            })?;
        Ok(crate::task::truncate_with_marker(&text, MAX_PROMPT_BYTES))
    }
}

fn commands_by_event(rules: &[Rule], events: &HashSet<String>) -> HashMap<String, Vec<String>> {
    let verbatim = |c: &str| {
        !c.is_empty()
            && !c
                .chars()
                .any(|ch| ch == '"' || ch == '\\' || ch.is_control())
    };
    let mut out = HashMap::new();
    for event in events {
        let on_event: Vec<&Rule> = rules.iter().filter(|r| r.events.contains(event)).collect();
        let commands: Option<Vec<String>> = on_event
            .iter()
            .map(|r| r.command.clone().filter(|c| verbatim(c)))
            .collect();
        if let Some(c) = commands.filter(|c| !c.is_empty()) {
            out.insert(event.clone(), c);
        }
    }
    out
}

impl Rule {
    fn matches<'a>(&self, facts: &EventFacts<'a>) -> Option<RuleMatch<'_, 'a>> {
        if !self.events.iter().any(|e| e == facts.event) {
            return None;
        }
        if !self.actions.is_empty() && !self.actions.iter().any(|a| a == facts.action) {
            return None;
        }
        if let Some(want) = &self.label {
            if !facts.label.is_some_and(|l| l.eq_ignore_ascii_case(want)) {
                return None;
            }
        }
        let instruction = match &self.command {
            None => None,
            Some(cmd) => Some(command_instruction(facts.comment?, cmd)?),
        };
        Some(RuleMatch {
            rule: self,
            instruction,
        })
    }
}

/// If `body` starts (after leading whitespace) with `command` followed by
/// whitespace or the end, returns the rest, trimmed. `/agentx` does not match
/// `/agent`.
pub fn command_instruction<'a>(body: &'a str, command: &str) -> Option<&'a str> {
    let rest = body.trim_start().strip_prefix(command)?;
    if rest.is_empty() || rest.starts_with(char::is_whitespace) {
        Some(rest.trim())
    } else {
        None
    }
}

impl PromptContext<'static> {
    fn sample() -> Self {
        PromptContext {
            event: "issues",
            action: "labeled",
            kind: "implement",
            repository: "octo/repo",
            number: 1,
            labels: vec!["agent"],
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests;
