//! The dashboard's pages as pure functions of what they show: each builds
//! its rows from the events log, the watch store or a Job's record and
//! renders a minijinja template (auto-escaped: every template name ends in
//! `.html`), so the bench (`benches/dashboard.rs`) times exactly what a
//! request does after authentication.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use serde::Serialize;

use crate::cluster::store::{JobFilter, JobStore};
use crate::events::{EventLog, EventRecord};
use crate::job::record::time_text;
use crate::job::{JobRecord, JobState};
use crate::report::comment::{duration_text, Mark};

/// Most rows a list shows (the newest).
pub const MAX_ROWS: usize = 200;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("job.html", include_str!("templates/job.html")),
    ("system.html", include_str!("templates/system.html")),
    ("message.html", include_str!("templates/message.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Names end in `.html`: minijinja escapes every value for HTML.
        for (name, text) in TEMPLATES {
            if let Err(e) = env.add_template(name, text) {
                tracing::error!(template = name, error = %e, "dashboard template does not parse");
            }
        }
        env
    })
}

/// Who is looking, for the page frame.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Frame {
    /// The token kind of the session (`None`: public dashboard).
    pub who: Option<&'static str>,
    /// The session's CSRF token (forms that change something).
    pub csrf: Option<String>,
}

fn render(page: &str, title: &str, nav: &str, frame: &Frame, ctx: Value) -> String {
    let env = env();
    let body = env
        .get_template(page)
        .and_then(|t| t.render(context! { frame, ..ctx }))
        .unwrap_or_else(|e| {
            tracing::error!(page, error = %e, "dashboard page failed to render");
            "<p>This page could not be shown; the service log has the reason.</p>".into()
        });
    env.get_template("layout.html")
        .and_then(|t| {
            t.render(context! {
                title, nav, frame,
                version => env!("CARGO_PKG_VERSION"),
                css => super::assets::CSS.path(),
                js => super::assets::JS.path(),
                body => Value::from_safe_string(body),
            })
        })
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "dashboard layout failed to render");
            String::from("dashboard layout failed to render")
        })
}

/// `3 s ago`, `5 min 2 s ago`.
fn ago(t: Option<&DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map(|t| format!("{} ago", duration_text((now - *t).num_seconds())))
        .unwrap_or_default()
}

fn abs(t: Option<&DateTime<Utc>>) -> String {
    t.map(time_text).unwrap_or_default()
}

// ---------------------------------------------------------------- login

/// The login form (`error`: why the last attempt failed).
pub fn login(error: Option<&str>, next: &str) -> String {
    render(
        "login.html",
        "Log in",
        "login",
        &Frame::default(),
        context! { error, next },
    )
}

/// A short page with one message (errors, refusals).
pub fn message(frame: &Frame, title: &str, text: &str) -> String {
    render("message.html", title, "", frame, context! { title, text })
}

// ----------------------------------------------------------- deliveries

/// The filters of the deliveries page (query parameters).
#[derive(Debug, Default, Clone, serde::Deserialize, Serialize)]
pub struct DeliveryFilter {
    pub source: Option<String>,
    pub decision: Option<String>,
    pub repository: Option<String>,
}

impl DeliveryFilter {
    fn norm(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

#[derive(Serialize)]
struct DeliveryRow<'a> {
    ago: String,
    at: String,
    source: &'a str,
    event: &'a str,
    action: Option<&'a str>,
    repository: Option<&'a str>,
    number: Option<u64>,
    sender: Option<&'a str>,
    decision: &'a str,
    reason: Option<&'a str>,
    delivery: Option<&'a str>,
    job: Option<&'a str>,
}

const SOURCES: [&str; 4] = ["github", "grafana", "pm-agent", "cli"];
const DECISIONS: [&str; 9] = [
    "queued",
    "duplicate",
    "ignored",
    "rejected",
    "rate_limited",
    "unavailable",
    "cancelled",
    "command",
    "ping",
];

/// The deliveries page: the newest matching events, newest first.
/// `only_source`: a scoped session's source (pm-agent).
pub fn deliveries(
    log: &EventLog,
    f: &DeliveryFilter,
    only_source: Option<&str>,
    frame: &Frame,
    now: DateTime<Utc>,
) -> String {
    let asked = DeliveryFilter::norm(&f.source);
    let events: Vec<EventRecord> = match (only_source, asked) {
        (Some(own), Some(a)) if own != a => Vec::new(),
        (own, a) => log.matching(
            MAX_ROWS,
            own.or(a),
            DeliveryFilter::norm(&f.decision),
            DeliveryFilter::norm(&f.repository),
        ),
    };
    let rows: Vec<DeliveryRow<'_>> = events
        .iter()
        .map(|e| DeliveryRow {
            ago: ago(Some(&e.at), now),
            at: time_text(&e.at),
            source: e.source,
            event: &e.event,
            action: e.action.as_deref(),
            repository: e.repository.as_deref(),
            number: e.number,
            sender: e.sender.as_deref(),
            decision: e.decision,
            reason: e.reason.as_deref(),
            delivery: e.delivery.as_deref(),
            job: e.job.as_deref(),
        })
        .collect();
    let repositories = log.repositories(100);
    render(
        "deliveries.html",
        "Deliveries",
        "deliveries",
        frame,
        context! {
            rows, filter => f, sources => SOURCES, decisions => DECISIONS,
            repositories, total => log.len(), max => MAX_ROWS,
        },
    )
}

// ----------------------------------------------------------------- jobs

/// The filters of the jobs page.
#[derive(Debug, Default, Clone, serde::Deserialize, Serialize)]
pub struct JobsFilter {
    pub source: Option<String>,
    pub state: Option<String>,
    pub repository: Option<String>,
    /// The namespace the Jobs run in.
    pub namespace: Option<String>,
}

#[derive(Serialize)]
struct JobRow {
    name: String,
    namespace: String,
    state: &'static str,
    source: Option<String>,
    repository: Option<String>,
    number: Option<u64>,
    title: Option<String>,
    priority: i32,
    position: usize,
    ago: String,
    created: String,
    age: String,
    duration: String,
}

fn number(r: &JobRecord) -> Option<u64> {
    r.task
        .as_deref()
        .and_then(|t| t.issue_number.or(t.pr_number))
}

fn finished_at(r: &JobRecord) -> Option<DateTime<Utc>> {
    r.completed_at
        .or_else(|| {
            r.conditions
                .iter()
                .find(|c| (c.kind == "Failed" || c.kind == "Complete") && c.status == "True")
                .and_then(|c| c.last_transition_time.as_deref())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        })
        .or_else(|| r.cancelled_at.and_then(|s| DateTime::from_timestamp(s, 0)))
}

fn row(r: &JobRecord, position: usize, now: DateTime<Utc>) -> JobRow {
    let text = |s: &Option<Box<str>>| s.as_deref().map(str::to_string);
    let started = r.started_at.or(r.created_at);
    let duration = match (started, finished_at(r)) {
        (Some(a), Some(b)) => duration_text((b - a).num_seconds()),
        _ => String::new(),
    };
    JobRow {
        name: r.name.to_string(),
        namespace: r.namespace.to_string(),
        state: r.state.as_str(),
        source: text(&r.source),
        repository: text(&r.repository_name),
        number: number(r),
        title: r.task.as_deref().and_then(|t| t.title.clone()),
        priority: r.priority,
        position,
        ago: ago(r.created_at.as_ref(), now),
        created: abs(r.created_at.as_ref()),
        age: r
            .started_at
            .map(|s| duration_text((now - s).num_seconds()))
            .unwrap_or_default(),
        duration,
    }
}

/// The queued Jobs in the order the scheduler admits them (higher
/// priority first, then oldest first), each with its position among all
/// queued Jobs, then filtered.
fn queue_order(store: &JobStore, f: &JobFilter<'_>) -> Vec<(usize, Arc<JobRecord>)> {
    let (mut all, _) = store.page(
        &JobFilter {
            state: Some(JobState::Queued),
            ..JobFilter::default()
        },
        None,
        store.len().max(1),
    );
    all.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.created.cmp(&b.created))
            .then(a.name.cmp(&b.name))
    });
    all.into_iter()
        .enumerate()
        .map(|(i, r)| (i + 1, r))
        .filter(|(_, r)| {
            f.source.is_none_or(|s| r.source.as_deref() == Some(s))
                && f.repository
                    .is_none_or(|s| r.repository.as_deref() == Some(s))
        })
        .collect()
}

/// The jobs page: queued (position, priority), running (age), finished
/// (outcome, duration), each at most [`MAX_ROWS`].
pub fn jobs(
    store: &JobStore,
    f: &JobsFilter,
    only_source: Option<&str>,
    frame: &Frame,
    now: DateTime<Utc>,
) -> String {
    let asked_source = DeliveryFilter::norm(&f.source);
    let empty = matches!((only_source, asked_source), (Some(o), Some(a)) if o != a);
    let repo = DeliveryFilter::norm(&f.repository).map(crate::task::label_value);
    let state = DeliveryFilter::norm(&f.state).and_then(JobState::parse);
    let filter = JobFilter {
        state: None,
        source: only_source.or(asked_source),
        repository: repo.as_deref(),
        namespace: DeliveryFilter::norm(&f.namespace),
    };
    let shown = |s: JobState| !empty && state.is_none_or(|want| want == s);
    let with = |s: JobState| JobFilter {
        state: Some(s),
        ..filter
    };
    let queued: Vec<JobRow> = if shown(JobState::Queued) {
        queue_order(store, &filter)
            .iter()
            .take(MAX_ROWS)
            .map(|(position, r)| row(r, *position, now))
            .collect()
    } else {
        Vec::new()
    };
    let running: Vec<JobRow> = if shown(JobState::Running) {
        store
            .page(&with(JobState::Running), None, MAX_ROWS)
            .0
            .iter()
            .map(|r| row(r, 0, now))
            .collect()
    } else {
        Vec::new()
    };
    let mut done: Vec<Arc<JobRecord>> = Vec::new();
    for s in [
        JobState::Succeeded,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Cancelled,
    ] {
        if shown(s) {
            done.extend(store.page(&with(s), None, MAX_ROWS).0);
        }
    }
    done.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
    done.truncate(MAX_ROWS);
    let finished: Vec<JobRow> = done.iter().map(|r| row(r, 0, now)).collect();
    let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    render(
        "jobs.html",
        "Jobs",
        "jobs",
        frame,
        context! {
            queued, running, finished, filter => f, sources => SOURCES, states,
            total => store.len(), max => MAX_ROWS,
            queued_total => store.count_in(JobState::Queued),
            running_total => store.count_in(JobState::Running),
        },
    )
}

// ------------------------------------------------------------------ job

/// What the Job page shows beyond the record.
#[derive(Debug)]
pub struct JobExtras {
    /// The prompt (from the whole task document; `None` when it could not
    /// be read).
    pub prompt: Option<String>,
    /// The last lines of the agent's log, or why there are none.
    pub log: Result<Vec<String>, String>,
    /// `GITHUB_HOST` (comment links).
    pub github_host: String,
    /// The session may cancel (a `cli` session with a CSRF token).
    pub may_cancel: bool,
    /// The retry number a finished Job's Retry form asks for (a `cli`
    /// session only).
    pub next_retry: Option<u32>,
    /// A message after an action (cancelled, refused).
    pub notice: Option<String>,
}

#[derive(Serialize)]
struct Step {
    what: &'static str,
    at: String,
    ago: String,
}

/// One Job: task, timeline, conditions, report, log tail.
pub fn job(r: &JobRecord, x: &JobExtras, frame: &Frame, now: DateTime<Utc>) -> String {
    let mut timeline = vec![Step {
        what: "created (queued)",
        at: abs(r.created_at.as_ref()),
        ago: ago(r.created_at.as_ref(), now),
    }];
    if let Some(t) = r.started_at.as_ref() {
        timeline.push(Step {
            what: "started",
            at: abs(Some(t)),
            ago: ago(Some(t), now),
        });
    }
    if let Some(t) = r.cancelled_at.and_then(|s| DateTime::from_timestamp(s, 0)) {
        timeline.push(Step {
            what: "cancelled",
            at: abs(Some(&t)),
            ago: ago(Some(&t), now),
        });
    }
    if r.state.is_finished() {
        let t = finished_at(r);
        timeline.push(Step {
            what: match r.state {
                JobState::Succeeded => "finished: succeeded",
                JobState::TimedOut => "finished: timed out",
                _ => "finished: failed",
            },
            at: abs(t.as_ref()),
            ago: ago(t.as_ref(), now),
        });
    }
    let mark = Mark::of(r);
    let repo = r.repository_name.as_deref();
    let num = number(r);
    let comment_url = match (mark.comment, repo, num, r.source.as_deref()) {
        (Some(id), Some(repo), Some(n), Some("github")) => Some(format!(
            "https://{}/{}/issues/{}#issuecomment-{}",
            x.github_host, repo, n, id
        )),
        _ => None,
    };
    let (log, log_error) = match &x.log {
        Ok(lines) => (lines.join("\n"), None),
        Err(e) => (String::new(), Some(e.as_str())),
    };
    let task = r.task.as_deref();
    let info = row(r, 0, now);
    render(
        "job.html",
        &format!("Job {}", r.name),
        "jobs",
        frame,
        context! {
            job => info,
            kind => r.kind.as_deref(),
            url => r.url.as_deref(),
            requested_by => task.and_then(|t| t.requested_by.as_deref()),
            prompt => x.prompt.as_deref(),
            timeline,
            conditions => &r.conditions,
            reported_state => mark.state,
            comment_id => mark.comment,
            comment_url,
            check_run => mark.check_run,
            cost => mark.cost_usd,
            callback_url => r.callback_url.as_deref(),
            callback_state => r.callback_mark.as_deref(),
            log, log_error,
            live => r.state.is_live(),
            may_cancel => x.may_cancel && r.state.is_live(),
            next_retry => x.next_retry.filter(|_| !r.state.is_live()),
            notice => x.notice.as_deref(),
        },
    )
}

// --------------------------------------------------------------- system

/// One actor's numbers.
#[derive(Debug, Serialize)]
pub struct ActorRow {
    pub name: &'static str,
    pub depth: i64,
    pub messages: u64,
    pub overflows: u64,
    pub restarts: u64,
}

/// One preflight check.
#[derive(Debug, Serialize)]
pub struct CheckRow {
    pub check: String,
    pub result: String,
    pub message: String,
    pub fix: Option<String>,
}

/// Everything the system page shows.
#[derive(Debug, Serialize, Default)]
pub struct SystemView {
    pub replica: String,
    pub leader: bool,
    pub holder: Option<String>,
    pub actors: Vec<ActorRow>,
    pub checks: Vec<CheckRow>,
    pub preflight_done: bool,
    pub synced: bool,
    pub watch: Option<String>,
    pub draining: bool,
    pub config: Vec<(&'static str, String)>,
    pub version: &'static str,
    pub git_sha: &'static str,
    pub follows: u64,
    pub follows_refused: u64,
    /// Dashboard logins refused by the per-address limit.
    pub logins_refused: u64,
    pub jobs: usize,
    pub events: usize,
    pub session_key: &'static str,
}

/// The system page.
pub fn system(v: &SystemView, frame: &Frame) -> String {
    render(
        "system.html",
        "System",
        "system",
        frame,
        context! { s => v },
    )
}
