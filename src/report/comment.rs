//! What a report says, as pure functions: the status comment's Markdown
//! (with its hidden marker), the check run's fields, the agent's final
//! result read from its log, and the mark stored on the Job.
//!
//! Everything from a payload or the agent is untrusted here: logins, rule
//! and kind names go into code spans with backticks removed; the agent's
//! result text goes into a fenced block whose fence is longer than any
//! backtick run inside it (no Markdown, HTML or `@mention` is interpreted
//! there), cut to [`RESULT_MAX_CHARS`], with control characters and any
//! `<!--` broken up so it can never look like a marker.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::{JobRecord, JobState};

/// Longest result text shown, characters.
pub const RESULT_MAX_CHARS: usize = 4000;

/// The marker that starts each status comment: finds it again with no
/// annotation.
pub fn marker(job: &str) -> String {
    format!("<!-- orchestrator:task={job} -->")
}

/// What was last reported of a Job, stored as JSON in its
/// `orchestrator.dev/report` annotation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The state last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The status comment's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<u64>,
    /// The check run's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_run: Option<u64>,
    /// The 👀 reaction was made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reacted: bool,
    /// A comment is being created: written before the create, so a
    /// restart in between looks for it by marker rather than making a
    /// second one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
    /// What the agent reported it cost (its final JSON result), USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The Kueue evictions last reported (`SCHEDULER=kueue`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub evictions: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Mark {
    /// The mark of a record (an unreadable annotation reads as none).
    pub fn of(record: &JobRecord) -> Mark {
        record
            .report_mark
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Claude Code's final result (the last `{"type":"result",…}` line of
/// `--output-format json` or `stream-json`).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentResult {
    /// The result text, at most [`RESULT_MAX_CHARS`] characters of it.
    pub text: String,
    /// Characters of the result cut off beyond those.
    pub cut: usize,
    pub is_error: bool,
    pub cost_usd: Option<f64>,
    pub turns: Option<u64>,
    pub duration_ms: Option<u64>,
}

/// The agent's result from the last lines of its log: the last line that
/// is a JSON object with `"type": "result"`.
pub fn agent_result(lines: &[String]) -> Option<AgentResult> {
    lines.iter().rev().find_map(|line| {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["type"] != "result" {
            return None;
        }
        let full = v["result"].as_str().unwrap_or("");
        let text: String = full.chars().take(RESULT_MAX_CHARS).collect();
        Some(AgentResult {
            cut: full.chars().count() - text.chars().count(),
            text,
            is_error: v["is_error"].as_bool().unwrap_or(false),
            cost_usd: v["total_cost_usd"]
                .as_f64()
                .filter(|c| c.is_finite() && *c >= 0.0),
            turns: v["num_turns"].as_u64(),
            duration_ms: v["duration_ms"].as_u64(),
        })
    })
}

/// A name from a payload or the configuration, as a code span.
fn code(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| *c != '`' && !c.is_control())
        .take(100)
        .collect();
    if clean.is_empty() {
        "`?`".into()
    } else {
        format!("`{clean}`")
    }
}

/// A line of our own words naming untrusted names (a repository): no
/// Markdown or HTML specials, no control characters, bounded.
fn plain(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !matches!(c, '`' | '<' | '>' | '*' | '[' | ']' | '@' | '|'))
        .take(200)
        .collect()
}

/// Untrusted text as a fenced block: cut, control characters dropped,
/// `<!--` broken, fenced longer than any backtick run inside; `already_cut`
/// characters were dropped before.
pub fn fenced(text: &str, max_chars: usize, already_cut: usize) -> String {
    let total = text.chars().count() + already_cut;
    let mut body: String = text
        .chars()
        .take(max_chars)
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    body = body
        .replace("<!--", "<!\u{200b}--")
        .replace("-->", "-\u{200b}->");
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    let mut out = format!("{fence}text\n{}\n{fence}", body.trim_end());
    if total > max_chars {
        out.push_str(&format!(
            "\n\n_Cut: {} more characters are in the Job's log._",
            total - max_chars
        ));
    }
    out
}

/// `1 h 2 min`, `3 min 4 s`, `5 s`.
pub fn duration_text(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<i64> {
    Some((b? - a?).num_seconds())
}

/// The words and emoji of a state.
pub fn state_words(state: JobState) -> (&'static str, &'static str) {
    match state {
        JobState::Queued => ("⏳", "queued"),
        JobState::Running => ("🏃", "running"),
        JobState::Succeeded => ("✅", "succeeded"),
        JobState::Failed => ("❌", "failed"),
        JobState::TimedOut => ("⌛", "timed out"),
        JobState::Cancelled => ("🚫", "cancelled"),
    }
}

/// What a status comment needs beyond the record.
pub struct Extras<'a> {
    /// Place in the queue (1 = next), when queued.
    pub position: Option<usize>,
    /// Why it waits, when queued and held back (a cap, a spent budget).
    pub waiting: Option<String>,
    /// The agent's result, when it finished and left one.
    pub result: Option<&'a AgentResult>,
    /// `PUBLIC_URL`, for a link to the Job.
    pub public_url: Option<&'a url::Url>,
    pub now: DateTime<Utc>,
}

/// The status comment of a Job.
pub fn render(record: &JobRecord, x: &Extras<'_>) -> String {
    let task = record.task.as_deref();
    let (emoji, words) = state_words(record.state);
    let mut out = marker(&record.name);
    out.push_str(&format!(
        "\n### {emoji} Agent task {} — {words}\n\n",
        code(&record.name)
    ));
    let kind = task
        .and_then(|t| t.kind.as_deref())
        .or(record.kind.as_deref())
        .unwrap_or("task");
    let mut asked = format!("**Asked:** {}", code(kind));
    if let Some(who) = task.and_then(|t| t.requested_by.as_deref()) {
        asked.push_str(&format!(" by {}", code(who)));
    }
    if let Some(rule) = task.and_then(|t| t.labels.get("rule")) {
        asked.push_str(&format!(" (rule {})", code(rule)));
    }
    out.push_str(&asked);
    out.push_str("  \n");
    let created = record.created_at;
    let mut state = format!("**State:** {words}");
    match record.state {
        JobState::Queued => {
            if let Some(p) = x.position {
                state.push_str(&format!(", number {p} in the queue"));
            }
            if let Some(w) = between(created, Some(x.now)) {
                state.push_str(&format!(", waiting {}", duration_text(w)));
            }
            if let Some(k) = record.kueue.as_deref() {
                // Suspended again after it ran: Kueue evicted it.
                if k.stopping || k.evictions > 0 || record.started_at.is_some() {
                    state.push_str(" — evicted by Kueue, requeued");
                    if k.evictions > 0 {
                        state.push_str(&format!(" (eviction {})", k.evictions));
                    }
                }
            }
            if let Some(why) = &x.waiting {
                state.push_str(&format!(" — waiting: {}", plain(why)));
            }
        }
        JobState::Running => {
            if let Some(w) = between(created, record.started_at) {
                state.push_str(&format!(" after {} in the queue", duration_text(w)));
            }
            match record.evictions() {
                0 => {}
                1 => state.push_str(" — readmitted by Kueue after an eviction"),
                n => state.push_str(&format!(" — readmitted by Kueue after {n} evictions")),
            }
        }
        JobState::Cancelled => {
            if let Some(c) = record.cancelled_at {
                if let Some(created) = created {
                    state.push_str(&format!(
                        " after {}",
                        duration_text(c - created.timestamp())
                    ));
                }
            }
        }
        _ => {
            if let Some(w) = between(created, record.started_at) {
                state.push_str(&format!(" — queued {}", duration_text(w)));
            }
            if let Some(r) = between(record.started_at, record.completed_at.or(Some(x.now))) {
                state.push_str(&format!(", ran {}", duration_text(r)));
            }
        }
    }
    out.push_str(&state);
    out.push_str("  \n");
    if let Some(base) = x.public_url {
        if let Ok(link) = base.join(&format!("api/v1/jobs/{}/logs", record.name)) {
            out.push_str(&format!("**Logs:** <{link}>  \n"));
        }
    }
    if let Some(r) = x.result {
        let mut facts = Vec::new();
        if let Some(c) = r.cost_usd {
            facts.push(format!("cost ${c:.2}"));
        }
        if let Some(t) = r.turns {
            facts.push(format!("{t} turns"));
        }
        if let Some(d) = r.duration_ms {
            facts.push(format!("agent time {}", duration_text((d / 1000) as i64)));
        }
        if r.is_error {
            facts.push("the agent reported an error".into());
        }
        if !facts.is_empty() {
            out.push_str(&format!("**Result:** {}\n", facts.join(" · ")));
        }
        if !r.text.trim().is_empty() {
            out.push('\n');
            out.push_str(&fenced(&r.text, RESULT_MAX_CHARS, r.cut));
            out.push('\n');
        }
    }
    out
}

/// A check run's `status` and `conclusion` for a state.
pub fn check_status(state: JobState) -> (&'static str, Option<&'static str>) {
    match state {
        JobState::Queued => ("queued", None),
        JobState::Running => ("in_progress", None),
        JobState::Succeeded => ("completed", Some("success")),
        JobState::Failed => ("completed", Some("failure")),
        JobState::TimedOut => ("completed", Some("timed_out")),
        JobState::Cancelled => ("completed", Some("cancelled")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hostile_result_text_stays_inside_its_fence_and_is_cut() {
        let hostile =
            "```\n</details><script>alert(1)</script> @octocat <!-- orchestrator:task=x -->\n````";
        let f = fenced(hostile, 100, 0);
        let fence_len = f.chars().take_while(|c| *c == '`').count();
        assert!(fence_len >= 5, "{f}");
        assert!(!f.contains("<!--"), "{f}");
        assert!(f.ends_with(&"`".repeat(fence_len)));
        let big = "a".repeat(1_000_000);
        let f = fenced(&big, RESULT_MAX_CHARS, 0);
        assert!(f.len() < RESULT_MAX_CHARS + 200, "{}", f.len());
        assert!(f.contains("996000 more characters"));
    }

    #[test]
    fn the_result_is_the_last_result_line() {
        let lines = vec![
            r#"{"type":"assistant","message":{}}"#.to_string(),
            r#"{"type":"result","subtype":"success","is_error":false,"result":"Done: PR opened","total_cost_usd":0.1234,"num_turns":7,"duration_ms":65000}"#.to_string(),
            "[sim] container exited with code 0".to_string(),
        ];
        let r = agent_result(&lines).unwrap();
        assert_eq!(r.text, "Done: PR opened");
        assert_eq!(r.turns, Some(7));
        assert_eq!(r.cost_usd, Some(0.1234));
        assert!(agent_result(&["not json".into()]).is_none());
        let long =
            json!({"type": "result", "result": "é".repeat(RESULT_MAX_CHARS + 10)}).to_string();
        let r = agent_result(&[long]).unwrap();
        assert_eq!(
            (r.text.chars().count(), r.cut),
            (RESULT_MAX_CHARS, 10),
            "kept bounded"
        );
    }

    #[test]
    fn names_are_code_spans_without_backticks() {
        assert_eq!(code("a`b@c"), "`ab@c`");
        assert_eq!(code(""), "`?`");
    }

    #[test]
    fn a_queued_task_says_why_it_waits_in_plain_words() {
        let record = JobRecord {
            name: "gh-task-1".into(),
            namespace: "default".into(),
            rv: 1,
            state: JobState::Queued,
            created: 0,
            created_at: None,
            source: Some("github".into()),
            kind: None,
            repository: None,
            repository_name: Some("acme/my_api".into()),
            priority: 0,
            concurrency_key: None,
            dedup_key: None,
            url: None,
            cancelled_at: None,
            started_at: None,
            completed_at: None,
            conditions: Vec::new(),
            active: 0,
            succeeded: 0,
            failed: 0,
            task: None,
            report_mark: None,
            callback_url: None,
            callback_mark: None,
            kueue: None,
            uid: None,
        };
        let x = Extras {
            position: Some(2),
            waiting: Some("repository acme/my_api at its cap 2/2 <b>@x</b>".into()),
            result: None,
            public_url: None,
            now: Utc::now(),
        };
        let body = render(&record, &x);
        assert!(body.contains("number 2 in the queue"), "{body}");
        assert!(
            body.contains("— waiting: repository acme/my_api at its cap 2/2 bx/b"),
            "{body}"
        );
        // Kueue mode: evicted and requeued, then readmitted.
        let evicted = JobRecord {
            kueue: Some(Box::new(crate::job::KueueRecord {
                queue: Some("agents".into()),
                stopping: true,
                evictions: 1,
                ..Default::default()
            })),
            ..record
        };
        let x = Extras {
            position: None,
            waiting: Some("queued in Kueue LocalQueue agents".into()),
            ..x
        };
        let body = render(&evicted, &x);
        assert!(
            body.contains(
                "— evicted by Kueue, requeued (eviction 1) — waiting: queued in Kueue LocalQueue agents"
            ),
            "{body}"
        );
        let running = JobRecord {
            state: JobState::Running,
            ..evicted
        };
        assert!(render(&running, &x).contains("readmitted by Kueue after an eviction"));
    }
}
