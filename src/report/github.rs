//! Reports of GitHub tasks back to their issue or pull request: one status
//! comment per task, found by its marker and edited in place; a 👀 reaction
//! on what triggered it; optionally a check run on the PR head.
//!
//! ```text
//!  JobWatcher ─ changed(record) ─▶ lane of the repository (one report at a time)
//!                                     │ read the newest record from the store
//!                                     │ edit the comment (id from the mark) ─ 404 ─┐
//!                                     │ or find it by marker, else create + 👀 ◀───┘
//!                                     │ check run (App installs, rule asks)
//!                                     ▼
//!                        mark on the Job: {state, comment, check_run} (resourceVersion-guarded)
//! ```
//!
//! Reports go out per repository one at a time (a lane: parallel reports on
//! one thread could each create a comment). A lane reads the Job's newest
//! record from the watch store at each attempt, so states that came while
//! it waited are folded into one edit. A failure is retried with backoff
//! (GitHub's own wait when it asks for one) until `REPORT_GIVE_UP_SECONDS`,
//! then given up, logged and counted; a refusal that cannot succeed (the
//! issue is gone, no access) is dropped at once. Only the Lease holder
//! reports; the mark on the Job tells a restarted or new leader what was
//! reported and where, and [`GithubReporter::sweep`] finds what is still
//! owed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};

use super::comment::{self, AgentResult, Extras, Mark};
use crate::cluster::jobs::Jobs;
use crate::cluster::jobspec::ANNOTATION_REPORT;
use crate::cluster::lease::Leader;
use crate::github::{Call, Github, GithubError};
use crate::job::{JobRecord, JobState};
use crate::metrics::reports::ReportMetrics;

/// Longest wait between two attempts of one report.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Comments listed when looking for a marker (pages of 100).
const MAX_LIST_PAGES: u32 = 10;
/// Log lines read for the agent's result, and their byte budget.
const RESULT_LINES: i64 = 50;
const RESULT_BYTES: usize = 2 * 1024 * 1024;

/// Where a GitHub task reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub repo: String,
    pub number: u64,
    pub is_pr: bool,
    pub installation: Option<u64>,
    /// The comment that triggered the task (reacted to), else the issue.
    pub trigger_comment: Option<u64>,
    pub head_sha: Option<String>,
    pub comment: bool,
    pub check_run: bool,
}

impl Target {
    /// The report target of a GitHub task's record; `None` for other
    /// sources or a rule that asked for no report.
    pub fn of(record: &JobRecord) -> Option<Target> {
        if record.source.as_deref() != Some("github") {
            return None;
        }
        let task = record.task.as_deref()?;
        let repo = task.repository.clone()?;
        let (number, is_pr) = match (task.issue_number, task.pr_number) {
            (Some(n), _) => (n, false),
            (None, Some(n)) => (n, true),
            _ => return None,
        };
        let label = |k: &str| task.labels.get(k);
        let mode = label("report").map_or("comment", String::as_str);
        let (comment, check_run) = match mode {
            "none" => return None,
            "check_run" => (false, true),
            "both" => (true, true),
            _ => (true, false),
        };
        Some(Target {
            repo,
            number,
            is_pr,
            installation: label("installation_id").and_then(|v| v.parse().ok()),
            trigger_comment: label("comment_id").and_then(|v| v.parse().ok()),
            head_sha: label("head_sha").cloned(),
            comment,
            check_run,
        })
    }
}

/// One lane's queue: Jobs owed a report, each once.
#[derive(Default)]
struct Lane {
    order: VecDeque<Arc<str>>,
    queued: HashSet<Arc<str>>,
    /// Jobs asked to be reported even if their mark says done (`/agent status`).
    forced: HashSet<Arc<str>>,
}

struct Inner {
    github: Github,
    jobs: Jobs,
    leader: Leader,
    metrics: ReportMetrics,
    public_url: Option<url::Url>,
    give_up: Duration,
    /// repository → its lane (present while its worker runs).
    lanes: Mutex<HashMap<String, Lane>>,
    /// What this process reported and could not yet mark on the Job (or the
    /// watch has not shown back yet), newest first: Job → mark.
    marks: Mutex<HashMap<Arc<str>, Mark>>,
    /// The agent results read, by Job (read once).
    results: Mutex<HashMap<Arc<str>, Option<Arc<AgentResult>>>>,
}

/// Reports GitHub tasks (clones share the lanes).
#[derive(Clone)]
pub struct GithubReporter {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Bounded memory: a map past this many entries is cleared (what it held
/// is on the Jobs' marks, or re-read).
const MEMORY: usize = 10_000;

impl GithubReporter {
    pub fn new(
        github: Github,
        jobs: Jobs,
        leader: Leader,
        metrics: ReportMetrics,
        public_url: Option<url::Url>,
        give_up: Duration,
    ) -> Self {
        GithubReporter {
            inner: Arc::new(Inner {
                github,
                jobs,
                leader,
                metrics,
                public_url,
                give_up,
                lanes: Mutex::default(),
                marks: Mutex::default(),
                results: Mutex::default(),
            }),
        }
    }

    /// The mark of a Job: this process's newer one, else the Job's.
    fn mark(&self, record: &JobRecord) -> Mark {
        let stored = Mark::of(record);
        match lock(&self.inner.marks).get(&record.name) {
            Some(m) => m.clone(),
            None => stored,
        }
    }

    /// Whether a record is owed a report.
    pub fn owes(&self, record: &JobRecord) -> bool {
        let mark = self.mark(record);
        Target::of(record).is_some()
            && (mark.state.as_deref() != Some(record.state.as_str())
                || mark.evictions != record.evictions())
    }

    /// The Job changed: report it if it is owed a report (never waits).
    pub fn changed(&self, record: &JobRecord) {
        if self.owes(record) {
            self.enqueue(record, false);
        }
    }

    /// Reports the Job now, even if its state was reported (`/agent status`).
    pub fn refresh(&self, record: &JobRecord) {
        if Target::of(record).is_some() {
            self.enqueue(record, true);
        }
    }

    /// Queues every stored Job still owed a report (on taking the Lease,
    /// and periodically): those live, and those that ended within the last
    /// `REPORT_GIVE_UP_SECONDS`.
    pub fn sweep(&self, records: impl IntoIterator<Item = Arc<JobRecord>>) -> usize {
        if !self.inner.leader.is_leader() {
            return 0;
        }
        let horizon =
            Utc::now() - chrono::Duration::from_std(self.inner.give_up).unwrap_or_default();
        let mut n = 0;
        for r in records {
            let recent = r.state.is_live()
                || r.completed_at.is_some_and(|t| t > horizon)
                || r.cancelled_at.is_some_and(|t| t > horizon.timestamp());
            if recent && self.owes(&r) {
                self.enqueue(&r, false);
                n += 1;
            }
        }
        n
    }

    fn enqueue(&self, record: &JobRecord, force: bool) {
        if !self.inner.leader.is_leader() {
            return;
        }
        let Some(target) = Target::of(record) else {
            return;
        };
        let start = {
            let mut lanes = lock(&self.inner.lanes);
            let start = !lanes.contains_key(&target.repo);
            let lane = lanes.entry(target.repo.clone()).or_default();
            if force {
                lane.forced.insert(record.name.clone());
            }
            if lane.queued.insert(record.name.clone()) {
                lane.order.push_back(record.name.clone());
            }
            start
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.run_lane(target.repo).await });
        }
    }

    /// Works through one repository's lane until it is empty.
    async fn run_lane(self, repo: String) {
        loop {
            let next = {
                let mut lanes = lock(&self.inner.lanes);
                let Some(lane) = lanes.get_mut(&repo) else {
                    return;
                };
                match lane.order.pop_front() {
                    Some(name) => {
                        lane.queued.remove(&name);
                        let forced = lane.forced.remove(&name);
                        Some((name, forced))
                    }
                    None => {
                        lanes.remove(&repo);
                        None
                    }
                }
            };
            let Some((name, forced)) = next else {
                return;
            };
            // A panic in one report must not strand the lane.
            let job = name.clone();
            let me = self.clone();
            let outcome =
                tokio::spawn(async move { me.report_with_retries(job, forced).await }).await;
            if let Err(e) = outcome {
                tracing::error!(job = %name, error = %e, "github report panicked; dropped");
                self.inner.metrics.report("github", "dropped");
            }
        }
    }

    async fn report_with_retries(&self, name: Arc<str>, mut forced: bool) {
        let started = Instant::now();
        let mut backoff = Duration::from_secs(1);
        loop {
            if !self.inner.leader.is_leader() {
                return;
            }
            // A Job deleted right after its last change (a cancel in Kueue
            // mode deletes it) is still reported, from its last record.
            let Some((record, gone)) = self.inner.jobs.stored_or_deleted(&name) else {
                return;
            };
            if !forced && !self.owes(&record) {
                return;
            }
            let wait = match self.report_once(&record, gone).await {
                Ok(()) => {
                    self.inner.metrics.report("github", "reported");
                    forced = false;
                    // A state that came meanwhile is picked up by the loop.
                    continue;
                }
                Err(GithubError::Refused { status, message }) if status != 401 => {
                    tracing::warn!(job = %name, status, error = %message, "github report refused; not retried");
                    self.inner.metrics.report("github", "dropped");
                    return;
                }
                Err(GithubError::RateLimited(w)) => w,
                Err(e) => {
                    tracing::info!(job = %name, error = %e, retry_in_s = backoff.as_secs(), "github report failed; retrying");
                    let w = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    w
                }
            };
            if started.elapsed() + wait > self.inner.give_up {
                tracing::warn!(job = %name, after_s = started.elapsed().as_secs(), "github report given up");
                self.inner.metrics.report("github", "given_up");
                return;
            }
            self.inner.metrics.report("github", "retried");
            tokio::time::sleep(wait).await;
        }
    }

    /// Brings the Job's report up to date once (`gone`: the Job is deleted,
    /// nothing can be marked on it).
    async fn report_once(&self, record: &JobRecord, gone: bool) -> Result<(), GithubError> {
        let target = Target::of(record).ok_or_else(|| GithubError::Refused {
            status: 400,
            message: "no report target".into(),
        })?;
        let mut mark = self.mark(record);
        let result = self.result_of(record).await;
        let extras = Extras {
            // Kueue orders its own queue: no place in ours to give.
            position: (record.state == JobState::Queued && record.kueue_queue().is_none())
                .then(|| self.position(record)),
            waiting: self.inner.jobs.store().waits().get().reason_text(record),
            result: result.as_deref(),
            public_url: self.inner.public_url.as_ref(),
            now: Utc::now(),
        };
        let body = comment::render(record, &extras);
        if target.comment {
            // The Job was made with an empty mark and no comment creation
            // was started: no comment can exist, none is searched for. Else
            // (the mark was removed, or a creation was interrupted) the
            // comment is looked for by its marker first.
            let fresh = mark.comment.is_none() && !mark.creating && record.report_mark.is_some();
            if fresh && !gone {
                let intent = Mark {
                    creating: true,
                    ..mark.clone()
                };
                self.write_mark_now(&record.name, &intent).await?;
                // Until the create is known to have worked, a retry looks
                // first (a create that timed out may have made it).
                self.remember(&record.name, intent);
            }
            let id = self
                .upsert_comment(&target, &record.name, mark.comment, !fresh, &body)
                .await?;
            mark.comment = Some(id);
            mark.creating = false;
        }
        if !mark.reacted {
            self.react(&target).await?;
            mark.reacted = true;
        }
        if target.check_run && self.inner.github.is_app() {
            let sha = match &target.head_sha {
                Some(sha) => Some(sha.clone()),
                // A PR seen through an issue comment: ask for its head.
                None if target.is_pr => {
                    let pr = self
                        .call(
                            &target,
                            "pull_get",
                            Method::GET,
                            format!("repos/{}/pulls/{}", target.repo, target.number),
                            None,
                        )
                        .await?;
                    pr["head"]["sha"].as_str().map(str::to_string)
                }
                None => None,
            };
            if let Some(sha) = sha {
                let known = match mark.check_run {
                    Some(id) => Some(id),
                    None => self.find_check_run(&target, &sha, &record.name).await?,
                };
                let id = self.check_run(&target, &sha, record, known, &body).await?;
                mark.check_run = Some(id);
            }
        }
        mark.state = Some(record.state.as_str().to_string());
        mark.evictions = record.evictions();
        if let Some(cost) = result.as_ref().and_then(|r| r.cost_usd) {
            mark.cost_usd = Some(cost);
        }
        self.remember(&record.name, mark.clone());
        self.write_mark(&record.name, &mark).await;
        Ok(())
    }

    /// Keeps a Job's newest mark in memory (bounded).
    fn remember(&self, name: &Arc<str>, mark: Mark) {
        let mut marks = lock(&self.inner.marks);
        if marks.len() >= MEMORY {
            marks.clear();
        }
        marks.insert(name.clone(), mark);
    }

    /// Stores the mark on the Job before going on (an intent that must be
    /// on the Job before the step it announces).
    async fn write_mark_now(&self, name: &str, mark: &Mark) -> Result<(), GithubError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        self.inner
            .jobs
            .annotate(
                name.to_string(),
                vec![(ANNOTATION_REPORT.to_string(), Some(mark.to_json()))],
                |_, _| true,
                deadline,
            )
            .await
            .map(|_| ())
            .map_err(|e| GithubError::Unavailable(format!("could not mark the job: {e}")))
    }

    /// Stores the mark on the Job (best effort: this process remembers it
    /// meanwhile, and a lost one only costs an identical edit later).
    async fn write_mark(&self, name: &str, mark: &Mark) {
        if let Err(e) = self.write_mark_now(name, mark).await {
            tracing::info!(job = %name, error = %e, "could not mark the job as reported; kept in memory");
        }
    }

    /// About where it stands in the queue (see `job::waits::position`).
    fn position(&self, record: &JobRecord) -> usize {
        let queued = self.inner.jobs.store().in_state(JobState::Queued);
        crate::job::waits::position(record, &queued)
    }

    /// The agent's result of a finished Job (its log read once).
    async fn result_of(&self, record: &JobRecord) -> Option<Arc<AgentResult>> {
        if !record.state.is_finished() {
            return None;
        }
        if let Some(r) = lock(&self.inner.results).get(&record.name) {
            return r.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let read = self
            .inner
            .jobs
            .log_tail(
                record.name.to_string(),
                RESULT_LINES,
                RESULT_BYTES,
                deadline,
            )
            .await;
        let result = match read {
            Ok(lines) => comment::agent_result(&lines).map(Arc::new),
            // No pod (deleted, never ran) or no log: report without it.
            Err(_) => None,
        };
        let mut results = lock(&self.inner.results);
        if results.len() >= MEMORY {
            results.clear();
        }
        results.insert(record.name.clone(), result.clone());
        result
    }

    async fn call(
        &self,
        target: &Target,
        op: &'static str,
        method: Method,
        path: String,
        body: Option<Value>,
    ) -> Result<Value, GithubError> {
        self.inner
            .github
            .call(Call {
                op,
                method,
                path,
                body,
                repo: &target.repo,
                installation: target.installation,
            })
            .await
    }

    /// Edits the Job's comment, or finds it by marker, or creates it.
    async fn upsert_comment(
        &self,
        t: &Target,
        job: &str,
        known: Option<u64>,
        look: bool,
        body: &str,
    ) -> Result<u64, GithubError> {
        let repo = &t.repo;
        let known = match known {
            Some(id) => Some(id),
            None if look => self.find_comment(t, job).await?,
            None => None,
        };
        if let Some(id) = known {
            match self.edit_comment(t, id, body).await {
                Ok(_) => return Ok(id),
                // Deleted by someone: look again, else make a new one.
                Err(GithubError::Refused { status: 404, .. }) => {
                    if let Some(id) = self.find_comment(t, job).await?.filter(|f| *f != id) {
                        self.edit_comment(t, id, body).await?;
                        return Ok(id);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let created = self
            .call(
                t,
                "comment_create",
                Method::POST,
                format!("repos/{repo}/issues/{}/comments", t.number),
                Some(json!({"body": body})),
            )
            .await?;
        created["id"]
            .as_u64()
            .ok_or_else(|| GithubError::Unavailable("the created comment has no id".into()))
    }

    async fn edit_comment(&self, t: &Target, id: u64, body: &str) -> Result<Value, GithubError> {
        self.call(
            t,
            "comment_edit",
            Method::PATCH,
            format!("repos/{}/issues/comments/{id}", t.repo),
            Some(json!({"body": body})),
        )
        .await
    }

    /// The comment carrying the Job's marker, if any (newest pages first
    /// is not offered by the API: pages in order, bounded).
    async fn find_comment(&self, t: &Target, job: &str) -> Result<Option<u64>, GithubError> {
        let marker = comment::marker(job);
        for page in 1..=MAX_LIST_PAGES {
            let list = self
                .call(
                    t,
                    "comment_list",
                    Method::GET,
                    format!(
                        "repos/{}/issues/{}/comments?per_page=100&page={page}",
                        t.repo, t.number
                    ),
                    None,
                )
                .await?;
            let Some(items) = list.as_array() else {
                return Ok(None);
            };
            // Only the start of a body counts: a marker quoted inside
            // another comment is not one.
            if let Some(id) = items
                .iter()
                .find(|c| c["body"].as_str().is_some_and(|b| b.starts_with(&marker)))
                .and_then(|c| c["id"].as_u64())
            {
                return Ok(Some(id));
            }
            if items.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    /// A reaction (`+1`, `confused`, …) on an issue comment: how a slash
    /// command is acknowledged. A deleted comment is not an error.
    pub async fn react_to_comment(
        &self,
        repo: &str,
        installation: Option<u64>,
        comment_id: u64,
        content: &str,
    ) -> Result<(), GithubError> {
        let reacted = self
            .inner
            .github
            .call(Call {
                op: "reaction",
                method: Method::POST,
                path: format!("repos/{repo}/issues/comments/{comment_id}/reactions"),
                body: Some(json!({ "content": content })),
                repo,
                installation,
            })
            .await;
        match reacted {
            Err(GithubError::Refused { status: 404, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// 👀 on the triggering comment, else on the issue / PR.
    async fn react(&self, t: &Target) -> Result<(), GithubError> {
        let path = match t.trigger_comment {
            Some(c) => format!("repos/{}/issues/comments/{c}/reactions", t.repo),
            None => format!("repos/{}/issues/{}/reactions", t.repo, t.number),
        };
        match self
            .call(
                t,
                "reaction",
                Method::POST,
                path,
                Some(json!({"content": "eyes"})),
            )
            .await
        {
            // The comment was deleted: nothing to react to.
            Err(GithubError::Refused { status: 404, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The check run made for the Job on `sha`, if any (by `external_id`).
    async fn find_check_run(
        &self,
        t: &Target,
        sha: &str,
        job: &str,
    ) -> Result<Option<u64>, GithubError> {
        let list = self
            .call(
                t,
                "check_run_list",
                Method::GET,
                format!(
                    "repos/{}/commits/{sha}/check-runs?check_name=orchestrator&per_page=100",
                    t.repo
                ),
                None,
            )
            .await?;
        Ok(list["check_runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["external_id"] == job))
            .and_then(|r| r["id"].as_u64()))
    }

    async fn check_run(
        &self,
        t: &Target,
        sha: &str,
        record: &JobRecord,
        known: Option<u64>,
        body: &str,
    ) -> Result<u64, GithubError> {
        let (status, conclusion) = comment::check_status(record.state);
        let (_, words) = comment::state_words(record.state);
        let mut fields = json!({
            "status": status,
            "output": {"title": format!("Agent task {words}"), "summary": body.chars().take(60_000).collect::<String>()},
        });
        if let Some(c) = conclusion {
            fields["conclusion"] = json!(c);
        }
        if let Some(base) = &self.inner.public_url {
            if let Ok(link) = base.join(&format!("api/v1/jobs/{}", record.name)) {
                fields["details_url"] = json!(link.as_str());
            }
        }
        if let Some(id) = known {
            self.call(
                t,
                "check_run",
                Method::PATCH,
                format!("repos/{}/check-runs/{id}", t.repo),
                Some(fields),
            )
            .await?;
            return Ok(id);
        }
        fields["name"] = json!("orchestrator");
        fields["head_sha"] = json!(sha);
        fields["external_id"] = json!(&*record.name);
        let created = self
            .call(
                t,
                "check_run",
                Method::POST,
                format!("repos/{}/check-runs", t.repo),
                Some(fields),
            )
            .await?;
        created["id"]
            .as_u64()
            .ok_or_else(|| GithubError::Unavailable("the created check run has no id".into()))
    }
}
