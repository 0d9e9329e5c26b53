//! Acting on a trusted slash command from an issue or pull request comment
//! (`/agent status|cancel|retry`, see [`crate::sources::github::command`]).
//!
//! The issue's Jobs are read from the watch store (no Kubernetes list), so
//! the answer stays well inside GitHub's 10 s:
//!
//! * `status`: the newest Job's report is refreshed now (when GitHub
//!   reporting is configured).
//! * `cancel`: every queued or running Job of the issue is cancelled; each
//!   Job's watcher reports `cancelled` by itself.
//! * `retry`: a new run of the newest Job's task, unless that Job is still
//!   queued or running. The new task's dedup key is the original's (without
//!   any `#retry-k`) plus `#retry-<n>`, n one more than the retries stored,
//!   so a redelivery of the command finds the same key and makes no second
//!   Job.
//!
//! A command is acknowledged with a reaction on its comment (`+1` done,
//! `confused` when it could do nothing or failed), sent after the answer.

use std::sync::Arc;
use std::time::Instant;

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use serde_json::json;
use tracing_actix_web::RootSpan;

use super::error::{from_jobs, RouteError};
use super::{Answer, AppState};
use crate::cluster::audit::CancelledBy;
use crate::job::{JobRecord, JobState};
use crate::sources::github::{Command, CommandKind};
use crate::task::Task;
use crate::telemetry::Untrusted;

/// Most retries of one task looked up when numbering a new one.
const MAX_RETRIES: u32 = 10_000;

/// What a command came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    NothingToDo,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::NothingToDo => "nothing_to_do",
        }
    }
}

/// The outcome and the Jobs it concerned.
struct Acted {
    outcome: Outcome,
    jobs: Vec<String>,
}

impl Acted {
    fn done(jobs: Vec<String>) -> Acted {
        Acted {
            outcome: Outcome::Done,
            jobs,
        }
    }

    fn nothing(jobs: Vec<String>) -> Acted {
        Acted {
            outcome: Outcome::NothingToDo,
            jobs,
        }
    }
}

/// Acts on `cmd` and answers 202 `{"status": "command", "command", "outcome",
/// "jobs"}`; a failure is the route's usual error answer (counted as
/// `failed`).
pub async fn act(
    state: &AppState,
    cmd: Box<Command>,
    span: &RootSpan,
    deadline: Instant,
) -> Result<Answer, RouteError> {
    let kind = cmd.command;
    let acted = match kind {
        CommandKind::Status => Ok(status(state, &cmd)),
        CommandKind::Cancel => cancel(state, &cmd, deadline).await,
        CommandKind::Retry => retry(state, &cmd, span, deadline).await,
    };
    let outcome = match &acted {
        Ok(a) => a.outcome.as_str(),
        Err(_) => "failed",
    };
    state.metrics.reports().command(kind.as_str(), outcome);
    tracing::info!(
        command = kind.as_str(),
        outcome,
        by = %Untrusted(cmd.sender.as_bytes()),
        "github slash command"
    );
    acknowledge(state, &cmd, outcome == "done");
    let acted = acted?;
    let response = HttpResponse::Accepted().json(json!({
        "status": "command",
        "command": kind.as_str(),
        "outcome": outcome,
        "jobs": acted.jobs,
    }));
    Ok(Answer {
        decision: "command",
        job: acted.jobs.first().cloned(),
        reason: Some(format!("{kind}: {outcome}")),
        gone: false,
        response,
        subject: Default::default(),
    })
}

/// An untrusted sender's command: logged (login only) and counted; the
/// caller answers it like any ignored untrusted delivery.
pub fn untrusted(state: &AppState, kind: CommandKind, login: &str) {
    state.metrics.reports().command(kind.as_str(), "untrusted");
    tracing::warn!(
        command = kind.as_str(),
        login = %Untrusted(login.as_bytes()),
        "ignored a slash command from an untrusted user"
    );
}

/// `+1` or `confused` on the command's comment, sent in the background
/// (only when GitHub reporting is configured).
fn acknowledge(state: &AppState, cmd: &Command, done: bool) {
    let Some(github) = state.reporting.github().cloned() else {
        return;
    };
    let content = if done { "+1" } else { "confused" };
    let (repo, installation, comment) = (cmd.repository.clone(), cmd.installation, cmd.comment_id);
    tokio::spawn(async move {
        if let Err(e) = github
            .react_to_comment(&repo, installation, comment, content)
            .await
        {
            tracing::info!(error = %e, "could not acknowledge a slash command");
        }
    });
}

/// The GitHub Jobs of the command's issue or pull request, newest first
/// (by creation; among equals, live ones first).
fn issue_jobs(state: &AppState, repo: &str, number: u64) -> Vec<Arc<JobRecord>> {
    state.jobs.of_issue("github", repo, number)
}

fn status(state: &AppState, cmd: &Command) -> Acted {
    let jobs = issue_jobs(state, &cmd.repository, cmd.number);
    let Some(newest) = jobs.first() else {
        return Acted::nothing(Vec::new());
    };
    if let Some(github) = state.reporting.github() {
        github.refresh(newest);
    }
    Acted::done(vec![newest.name.to_string()])
}

async fn cancel(state: &AppState, cmd: &Command, deadline: Instant) -> Result<Acted, RouteError> {
    let live: Vec<String> = issue_jobs(state, &cmd.repository, cmd.number)
        .iter()
        .filter(|r| r.state.is_live())
        .map(|r| r.name.to_string())
        .collect();
    if live.is_empty() {
        return Ok(Acted::nothing(Vec::new()));
    }
    let calls = live.iter().map(|name| {
        let by = CancelledBy::Command {
            login: cmd.sender.clone(),
        };
        state.jobs.cancel(name.clone(), false, deadline, true, by)
    });
    let results = futures::future::join_all(calls).await;
    let mut cancelled = Vec::new();
    let mut failure = None;
    for (name, result) in live.into_iter().zip(results) {
        match result {
            Ok(Some(v)) if v.state == JobState::Cancelled => {
                tracing::info!(job = %name, "job cancelled by a slash command");
                cancelled.push(name);
            }
            // Finished (or gone) before the cancel: nothing cancelled.
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "a slash command could not cancel a job");
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(from_jobs(e, "no such job"));
    }
    Ok(if cancelled.is_empty() {
        Acted::nothing(cancelled)
    } else {
        Acted::done(cancelled)
    })
}

fn label<'r>(r: &'r JobRecord, key: &str) -> Option<&'r str> {
    r.task
        .as_deref()
        .and_then(|t| t.labels.get(key))
        .map(String::as_str)
}

/// True if `r` is the retry this command's comment asked for.
fn is_retry_of_comment(r: &JobRecord, comment_id: u64) -> bool {
    label(r, "retry").is_some() && label(r, "comment_id") == Some(comment_id.to_string().as_str())
}

async fn retry(
    state: &AppState,
    cmd: &Command,
    span: &RootSpan,
    deadline: Instant,
) -> Result<Acted, RouteError> {
    let jobs = issue_jobs(state, &cmd.repository, cmd.number);
    // The command seen again (a redelivery): the Job it made.
    if let Some(made) = jobs.iter().find(|r| is_retry_of_comment(r, cmd.comment_id)) {
        return Ok(Acted::done(vec![made.name.to_string()]));
    }
    let Some(newest) = jobs.first() else {
        return Ok(Acted::nothing(Vec::new()));
    };
    if newest.state.is_live() {
        return Ok(Acted::nothing(vec![newest.name.to_string()]));
    }
    let Some(view) = state
        .jobs
        .fetch(newest.name.to_string(), deadline)
        .await
        .map_err(|e| from_jobs(e, "no such job"))?
    else {
        // Deleted since the store saw it.
        return Ok(Acted::nothing(Vec::new()));
    };
    let original: Task = view
        .task
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| {
            RouteError::Failed(format!(
                "the task document of job {} is unreadable",
                newest.name
            ))
        })?;
    let task = retry_task(
        original,
        &newest.name,
        cmd,
        // A retry whose Job is deleted still holds its number (the dedup
        // record would answer its key `duplicate`).
        |key| {
            state.jobs.stored_by_dedup_key(key).is_some()
                || state.record.contains(key, Utc::now().timestamp())
        },
        Utc::now(),
    );
    // The watch may have shown this command's own retry since the Jobs were
    // listed above (a redelivery racing the first): numbered past it, the
    // new key would make a second run. Any earlier retry of this comment
    // is the answer.
    if let Some((base, n)) = task
        .dedup_key
        .rsplit_once("#retry-")
        .and_then(|(b, n)| Some((b.to_string(), n.parse::<u32>().ok()?)))
    {
        for k in 1..n {
            if let Some(r) = state.jobs.stored_by_dedup_key(&format!("{base}#retry-{k}")) {
                if is_retry_of_comment(&r, cmd.comment_id) {
                    return Ok(Acted::done(vec![r.name.to_string()]));
                }
            }
        }
    }
    // The retry runs where its rule runs Jobs now (its namespace, Secret).
    let rule = task.labels.get("rule").and_then(|r| state.rules.get(r));
    let extras = super::github::placement(rule);
    let answer =
        super::github::submit(state, &state.github, Box::new(task), extras, span, deadline).await?;
    let Some(job) = answer.job else {
        return Err(RouteError::Failed("the retry was not persisted".into()));
    };
    if answer.decision == "duplicate" {
        // The same retry asked for twice before the watch showed the
        // first: done if it is (or may be) this comment's, else there was
        // nothing new to do.
        let other = state
            .jobs
            .stored(&job)
            .is_some_and(|r| !is_retry_of_comment(&r, cmd.comment_id));
        if other {
            return Ok(Acted::nothing(vec![job]));
        }
    }
    Ok(Acted::done(vec![job]))
}

/// The dedup key without a `#retry-<k>` suffix.
pub(super) fn base_key(key: &str) -> &str {
    match key.rsplit_once("#retry-") {
        Some((base, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => key,
    }
}

/// The first retry number of the task with dedup key `key` whose
/// `<base>#retry-<n>` is not `taken` (a stored Job's key, or one the dedup
/// record remembers).
pub(super) fn next_retry(key: &str, taken: impl Fn(&str) -> bool) -> u32 {
    let base = base_key(key);
    (1..MAX_RETRIES)
        .find(|k| !taken(&format!("{base}#retry-{k}")))
        .unwrap_or(MAX_RETRIES)
}

/// True if `n` is a retry number [`next_retry`] can give.
pub(super) fn valid_retry(n: u32) -> bool {
    (1..=MAX_RETRIES).contains(&n)
}

/// Retry `n` of `original` (the task of Job `original_job`), asked for by
/// `requested_by`: its dedup key is `<base>#retry-<n>`, and it carries the
/// `retry` and `retry_of` labels the scheduler's `Retried` Event reads.
pub(super) fn retried(
    original: Task,
    original_job: &str,
    n: u32,
    requested_by: String,
    delivery: Option<String>,
    now: DateTime<Utc>,
) -> Task {
    let mut task = original;
    task.dedup_key = format!("{}#retry-{n}", base_key(&task.dedup_key));
    task.created_at = now;
    task.delivery_id = delivery;
    task.requested_by = Some(requested_by);
    task.labels
        .insert("retry_of".into(), original_job.to_string());
    task.labels.insert("retry".into(), n.to_string());
    task
}

/// A new run of `original` (the task of Job `original_job`) asked for by
/// `cmd`: its dedup key is `<base>#retry-<n>`, n the first retry number
/// not `taken` (a stored Job's key).
fn retry_task(
    original: Task,
    original_job: &str,
    cmd: &Command,
    taken: impl Fn(&str) -> bool,
    now: DateTime<Utc>,
) -> Task {
    let n = next_retry(&original.dedup_key, taken);
    let mut task = retried(
        original,
        original_job,
        n,
        cmd.sender.clone(),
        Some(cmd.delivery.clone()),
        now,
    );
    task.labels
        .insert("comment_id".into(), cmd.comment_id.to_string());
    if let Some(i) = cmd.installation {
        task.labels
            .entry("installation_id".into())
            .or_insert_with(|| i.to_string());
    }
    task
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskSource;
    use std::collections::BTreeMap;

    fn command() -> Command {
        Command {
            command: CommandKind::Retry,
            repository: "octo/repo".into(),
            number: 7,
            is_pr: false,
            comment_id: 99,
            sender: "maintainer".into(),
            installation: Some(5),
            delivery: "d-2".into(),
        }
    }

    fn original(key: &str) -> Task {
        Task {
            source: TaskSource::Github,
            kind: "comment".into(),
            priority: 0,
            repository: Some("octo/repo".into()),
            issue_number: Some(7),
            pr_number: None,
            checkout: None,
            title: "t".into(),
            prompt: "p".into(),
            url: None,
            delivery_id: Some("d-1".into()),
            dedup_key: key.into(),
            requested_by: Some("someone".into()),
            labels: BTreeMap::from([
                ("comment_id".to_string(), "12".to_string()),
                ("rule".to_string(), "comment-agent".to_string()),
            ]),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn base_keys_drop_only_a_numeric_retry_suffix() {
        assert_eq!(base_key("github:delivery:x"), "github:delivery:x");
        assert_eq!(base_key("github:delivery:x#retry-3"), "github:delivery:x");
        assert_eq!(base_key("k#retry-"), "k#retry-");
        assert_eq!(base_key("k#retry-2a"), "k#retry-2a");
        assert_eq!(base_key("k#retry-1#retry-2"), "k#retry-1");
    }

    #[test]
    fn a_retry_numbers_after_the_stored_retries_and_keeps_the_task() {
        let now = Utc::now();
        let o = original("github:issue_comment:1:12");
        let t = retry_task(o.clone(), "gh-job-a", &command(), |_| false, now);
        assert_eq!(t.dedup_key, "github:issue_comment:1:12#retry-1");
        assert_ne!(t.job_name(), o.job_name());
        assert_eq!((t.prompt.as_str(), t.kind.as_str()), ("p", "comment"));
        assert_eq!(t.created_at, now);
        assert_eq!(t.delivery_id.as_deref(), Some("d-2"));
        assert_eq!(t.requested_by.as_deref(), Some("maintainer"));
        assert_eq!(t.labels["comment_id"], "99");
        assert_eq!(t.labels["retry_of"], "gh-job-a");
        assert_eq!(t.labels["retry"], "1");
        assert_eq!(t.labels["rule"], "comment-agent");
        assert_eq!(t.labels["installation_id"], "5");
        // Retrying a retry: the base key, numbered after those stored.
        let stored = ["k#retry-1", "k#retry-2"];
        let t = retry_task(
            original("k#retry-2"),
            "gh-job-b",
            &command(),
            |key| stored.contains(&key),
            now,
        );
        assert_eq!(t.dedup_key, "k#retry-3");
        assert_eq!(t.labels["retry"], "3");
        // The same inputs, the same key (a redelivery dedupes).
        let again = retry_task(
            original("k#retry-2"),
            "gh-job-b",
            &command(),
            |key| stored.contains(&key),
            now,
        );
        assert_eq!(again.job_name(), t.job_name());
    }
}
