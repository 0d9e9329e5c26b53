//! Human output of the CLI: aligned tables of Jobs and events and a
//! key/value view of one Job, built from the server's JSON (missing fields
//! show as `-`), plus ages and durations in kubectl's short style.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Lays out `rows` under `headers` (no header line if all are empty),
/// columns separated by two spaces; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let shown = if headers.iter().all(|h| h.is_empty()) {
        &[][..]
    } else {
        std::slice::from_ref(&header)
    };
    let mut out = String::new();
    for row in shown.iter().chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i < last {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A string field, or `-`.
fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) if !s.is_empty() => one_line(s, 60),
        Value::Number(n) => n.to_string(),
        _ => "-".into(),
    }
}

/// `s` on one line, cut to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v[key]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A duration in seconds as `45s`, `3m12s`, `5h3m`, `2d4h`.
pub fn short_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The repository of a Job view: the task's `owner/name`, else the label.
fn repository(job: &Value) -> String {
    match job["task"]["repository"].as_str() {
        Some(r) => r.to_string(),
        None => text(job, "repository"),
    }
}

/// How long the Job ran (so far, if it is running).
fn ran(job: &Value, now: DateTime<Utc>) -> String {
    match (time(job, "started_at"), time(job, "finished_at")) {
        (Some(s), Some(f)) => short_duration((f - s).num_seconds()),
        (Some(s), None) if job["state"] == "running" => short_duration((now - s).num_seconds()),
        _ => "-".into(),
    }
}

fn age(job: &Value, key: &str, now: DateTime<Utc>) -> String {
    time(job, key)
        .map(|t| short_duration((now - t).num_seconds()))
        .unwrap_or_else(|| "-".into())
}

/// Table of a page of Jobs (`{"items":[…]}`).
pub fn jobs_table(items: &[Value], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|j| {
            vec![
                text(j, "name"),
                text(j, "namespace"),
                text(j, "state"),
                text(j, "source"),
                text(j, "kind"),
                repository(j),
                j["priority"]
                    .as_i64()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                age(j, "created_at", now),
                ran(j, now),
                one_line(j["task"]["title"].as_str().unwrap_or("-"), 40),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "NAMESPACE",
            "STATE",
            "SOURCE",
            "KIND",
            "REPOSITORY",
            "PRIORITY",
            "AGE",
            "DURATION",
            "TITLE",
        ],
        &rows,
    )
}

/// Key/value view of one Job.
pub fn job_detail(job: &Value, now: DateTime<Utc>) -> String {
    let task = &job["task"];
    let issue = match (task["issue_number"].as_u64(), task["pr_number"].as_u64()) {
        (Some(n), _) => format!("issue #{n}"),
        (None, Some(n)) => format!("PR #{n}"),
        _ => "-".into(),
    };
    let rows: Vec<Vec<String>> = vec![
        vec!["Name:".into(), text(job, "name")],
        vec!["Namespace:".into(), text(job, "namespace")],
        vec!["State:".into(), text(job, "state")],
        vec!["Source:".into(), text(job, "source")],
        vec!["Kind:".into(), text(job, "kind")],
        vec!["Repository:".into(), repository(job)],
        vec!["Issue/PR:".into(), issue],
        vec![
            "Priority:".into(),
            job["priority"]
                .as_i64()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
        ],
        vec![
            "Title:".into(),
            one_line(task["title"].as_str().unwrap_or("-"), 100),
        ],
        vec!["URL:".into(), text(job, "url")],
        vec!["Requested by:".into(), text(task, "requested_by")],
        vec![
            "Created:".into(),
            format!(
                "{} ({} ago)",
                text(job, "created_at"),
                age(job, "created_at", now)
            ),
        ],
        vec!["Started:".into(), text(job, "started_at")],
        vec!["Finished:".into(), text(job, "finished_at")],
        vec!["Duration:".into(), ran(job, now)],
    ];
    let mut rows = rows;
    if let Some(p) = job["position"].as_u64() {
        rows.push(vec!["Position:".into(), format!("{p} in the queue")]);
    }
    if let Some(w) = job["waiting"].as_str() {
        rows.push(vec!["Waiting:".into(), one_line(w, 200)]);
    }
    let mut out = table(&["", ""], &rows);
    let conditions = job["conditions"].as_array().cloned().unwrap_or_default();
    if !conditions.is_empty() {
        out.push_str("Conditions:\n");
        let rows: Vec<Vec<String>> = conditions
            .iter()
            .map(|c| {
                vec![
                    format!("  {}", text(c, "type")),
                    text(c, "status"),
                    text(c, "reason"),
                    text(c, "last_transition_time"),
                    text(c, "message"),
                ]
            })
            .collect();
        out.push_str(&table(
            &["  TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"],
            &rows,
        ));
    }
    out
}

/// Table of events (newest first).
pub fn events_table(events: &[Value]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let at = time(e, "at")
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| text(e, "at"));
            vec![
                at,
                text(e, "source"),
                text(e, "event"),
                text(e, "decision"),
                text(e, "job"),
                text(e, "delivery"),
                text(e, "reason"),
            ]
        })
        .collect();
    table(
        &[
            "AT", "SOURCE", "EVENT", "DECISION", "JOB", "DELIVERY", "REASON",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["xxxx".into(), "y".into()],
                vec!["z".into(), "w".into()],
            ],
        );
        assert_eq!(t, "A     LONGER\nxxxx  y\nz     w\n");
    }

    #[test]
    fn jobs_show_their_repository_and_duration() {
        let now = Utc::now();
        let job = json!({"name": "j1", "namespace": "team-a", "state": "succeeded", "source": "cli", "kind": "task",
            "repository": "octo.repo", "priority": 5,
            "created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T00:03:12Z", "task": {"repository": "octo/repo", "title": "Fix\nit"}});
        let t = jobs_table(std::slice::from_ref(&job), now);
        let line = t.lines().nth(1).expect("a row");
        assert!(t.starts_with("NAME  NAMESPACE  STATE"), "{t}");
        for part in ["j1", "team-a", "succeeded", "octo/repo", "3m12s", "Fix it"] {
            assert!(line.contains(part), "{part} in {line}");
        }
        let d = job_detail(&job, now);
        assert!(d.contains("State:") && d.contains("succeeded"), "{d}");
        assert!(d.contains("Namespace:") && d.contains("team-a"), "{d}");
    }

    #[test]
    fn a_queued_job_shows_its_position_and_why_it_waits() {
        let job = json!({"name": "j2", "state": "queued", "position": 3,
            "waiting": "repository acme/api at its cap 2/2"});
        let d = job_detail(&job, Utc::now());
        assert!(
            d.contains("Position:") && d.contains("3 in the queue"),
            "{d}"
        );
        assert!(
            d.contains("Waiting:") && d.contains("repository acme/api at its cap 2/2"),
            "{d}"
        );
        let done = job_detail(&json!({"name": "j3", "state": "running"}), Utc::now());
        assert!(!done.contains("Waiting:"), "{done}");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(5), "5s");
        assert_eq!(short_duration(3 * 60 + 1), "3m1s");
        assert_eq!(short_duration(2 * 3600 + 120), "2h2m");
        assert_eq!(short_duration(-3), "0s");
    }
}
