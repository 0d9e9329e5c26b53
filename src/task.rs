//! The source-neutral [`Task`]: what every source (GitHub, Grafana, PM Agent,
//! CLI) turns an accepted event into, and what a Job is built from.
//!
//! A Task's identity is its dedup key. [`Task::job_name`] derives the Job
//! name from it deterministically, so the API server's `409 AlreadyExists`
//! makes deduplication exact across replicas and restarts (see
//! `docs/architecture.md`). Serialized, a Task is the `TASK_JSON` document the agent gets.

pub mod files;
pub mod git;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Where a task came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskSource {
    /// A GitHub webhook delivery.
    Github,
    /// A Grafana / Alertmanager alert.
    Grafana,
    /// The project-management agent's API.
    PmAgent,
    /// The `orchestrator` CLI.
    Cli,
}

impl TaskSource {
    /// The wire name (`github`, `grafana`, `pm-agent`, `cli`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskSource::Github => "github",
            TaskSource::Grafana => "grafana",
            TaskSource::PmAgent => "pm-agent",
            TaskSource::Cli => "cli",
        }
    }

    /// Short prefix used in Job names.
    fn short(self) -> &'static str {
        match self {
            TaskSource::Github => "gh",
            TaskSource::Grafana => "gf",
            TaskSource::PmAgent => "pm",
            TaskSource::Cli => "cli",
        }
    }
}

/// What to check out for the agent: a clone URL and a ref that `git fetch`
/// understands (a branch name like `main`, or `refs/pull/42/head`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// HTTPS clone URL of the repository holding `git_ref`.
    pub clone_url: String,
    /// Branch name or full ref to check out.
    pub git_ref: String,
}

/// A unit of work for an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Which source produced it.
    pub source: TaskSource,
    /// What the agent should do (`implement`, `comment`, `review`, `investigate`, …).
    pub kind: String,
    /// Admission priority; higher is admitted first.
    pub priority: i32,
    /// `owner/name` of the repository, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Issue number, if the task concerns an issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_number: Option<u64>,
    /// Pull-request number, if the task concerns a PR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<u64>,
    /// What to clone into `/workspace`, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Checkout>,
    /// Short human title (issue or PR title, alert name).
    pub title: String,
    /// The rendered prompt given to the agent.
    pub prompt: String,
    /// Link to the thing that triggered the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Delivery id of the triggering event (e.g. `X-GitHub-Delivery`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// Identity of the task: two events with the same key are one task.
    pub dedup_key: String,
    /// Who asked (GitHub login, Grafana, API token subject).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Free-form source metadata (event, action, rule, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// When the task was created.
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// Longest Kubernetes object name we produce (a DNS-1123 label, so the
/// `job-name` pod label stays valid).
pub const MAX_NAME_LEN: usize = 63;
/// Hex digits of `sha256(dedup_key)` that make a Job name unique (40 bits).
const HASH_HEX_LEN: usize = 10;

impl Task {
    /// Deterministic Job name for this task: `<source>-<kind>-<repo>-<number>-<hash>`,
    /// sanitized to a DNS-1123 label of at most 63 characters. The readable
    /// prefix is truncated as needed; the hash of the dedup key is always kept.
    pub fn job_name(&self) -> String {
        let mut prefix = format!("{}-{}", self.source.short(), self.kind);
        if let Some(repo) = &self.repository {
            prefix.push('-');
            prefix.push_str(repo);
        }
        if let Some(n) = self.pr_number.or(self.issue_number) {
            prefix.push_str(&format!("-{n}"));
        }
        name_with_hash(&prefix, &self.dedup_key)
    }

    /// The key that serializes work on one thing (one issue or one PR), for
    /// per-key concurrency limits: `owner/name#42`, lower-cased (GitHub
    /// names are case-insensitive: `Octo/Repo#1` is `octo/repo#1`).
    pub fn concurrency_key(&self) -> Option<String> {
        let repo = self.repository.as_deref()?;
        let n = self.pr_number.or(self.issue_number)?;
        Some(format!("{}#{n}", repo.to_ascii_lowercase()))
    }

    /// The task as JSON of at most `max_bytes`, always valid JSON: if too
    /// large, the prompt (then the title) is truncated with a marker.
    pub fn to_bounded_json(&self, max_bytes: usize) -> String {
        let mut task = self.clone();
        for _ in 0..8 {
            let json = serde_json::to_string(&task).unwrap_or_else(|_| "{}".to_string());
            if json.len() <= max_bytes {
                return json;
            }
            // JSON escaping can inflate text up to 6x; shrink by the overflow
            // in escaped bytes plus room for the marker, and try again.
            let over = json.len() - max_bytes + 128;
            if task.prompt.len() > 256 {
                let keep = task
                    .prompt
                    .len()
                    .saturating_sub(over.max(task.prompt.len() / 4));
                task.prompt = truncate_with_marker(&task.prompt, keep);
            } else {
                let keep = task.title.len().saturating_sub(over);
                task.title = truncate_with_marker(&task.title, keep);
                task.labels.clear();
            }
        }
        // Unreachable for sane limits; still valid JSON.
        serde_json::json!({ "dedup_key": truncate_with_marker(&self.dedup_key, 200) }).to_string()
    }
}

/// Builds `<sanitized prefix>-<10 hex of sha256(key)>`, a DNS-1123 label.
pub fn name_with_hash(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hash = &hex::encode(digest)[..HASH_HEX_LEN];
    let mut clean = sanitize_dns_label(prefix);
    clean.truncate(MAX_NAME_LEN - HASH_HEX_LEN - 1);
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() || !clean.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        format!("task-{hash}")
    } else {
        format!("{clean}-{hash}")
    }
}

/// Lowercases and maps everything outside `[a-z0-9]` to `-`, collapsing runs
/// and trimming `-` at both ends. May return an empty string.
fn sanitize_dns_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Turns any string into a valid Kubernetes label value: at most 63
/// characters of `[A-Za-z0-9_.-]`, starting and ending alphanumeric (or
/// empty). `/` becomes `.` (`octo/repo` → `octo.repo`), other characters `-`.
/// A value that had to be shortened ends with a hash of the original, so
/// distinct long inputs stay distinct.
pub fn label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' => c,
            '/' => '.',
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.len() <= MAX_NAME_LEN {
        return trimmed.to_string();
    }
    let digest = hex::encode(Sha256::digest(s.as_bytes()));
    let head = &trimmed[..MAX_NAME_LEN - HASH_HEX_LEN - 1];
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{}", &digest[..HASH_HEX_LEN])
}

/// Encodes a priority as a label value (`5`, `0`, `neg5`; a label value may
/// not start with `-`).
pub fn priority_label(priority: i32) -> String {
    if priority < 0 {
        format!("neg{}", priority.unsigned_abs())
    } else {
        priority.to_string()
    }
}

/// Inverse of [`priority_label`].
pub fn parse_priority_label(value: &str) -> Option<i32> {
    match value.strip_prefix("neg") {
        Some(abs) => abs.parse::<i64>().ok().and_then(|v| i32::try_from(-v).ok()),
        None => value.parse().ok(),
    }
}

/// Truncates `s` to at most `max_bytes` (on a char boundary) and appends a
/// marker saying how much was cut. Returns `s` unchanged if it fits.
pub fn truncate_with_marker(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[… truncated by orchestrator: {} bytes omitted]",
        &s[..end],
        s.len() - end
    )
}

mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;

/// The words a priority may be given as, everywhere (task API, PM Agent,
/// CLI), with the number each stands for; integers from -1000 to 1000 are
/// accepted as well. Higher runs first.
pub const PRIORITY_WORDS: &[(&str, i32)] =
    &[("critical", 100), ("high", 50), ("medium", 10), ("low", 0)];

/// What a bad priority is told.
pub const PRIORITY_EXPECTED: &str =
    "must be critical, high, medium, low or an integer from -1000 to 1000";

/// A priority given as a word (any case; `urgent` means `critical`) or an
/// integer from -1000 to 1000.
pub fn parse_priority(s: &str) -> Option<i32> {
    let s = s.trim().to_ascii_lowercase();
    let s = if s == "urgent" {
        "critical".to_string()
    } else {
        s
    };
    PRIORITY_WORDS
        .iter()
        .find(|(w, _)| *w == s)
        .map(|(_, n)| *n)
        .or_else(|| s.parse::<i32>().ok().filter(|n| (-1000..=1000).contains(n)))
}
