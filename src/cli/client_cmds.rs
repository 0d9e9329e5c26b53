//! The API client commands `submit`, `events`, `leader` and `completions`, and what
//! they share with `jobs` ([`super::jobs_cmds`]): each runs on a
//! current-thread runtime, talks to `--server` with `--token`, prints a
//! table or (`-o json`) the server's JSON on stdout, and exits with a code
//! from [`crate::client::exit`].

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{json, Map, Value};

use crate::client::render::{events_table, jobs_table, table};
use crate::client::wait::{wait_for_job, WaitOptions};
use crate::client::{exit, ApiClient, ClientError, EventFilter};

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned human columns.
    Table,
    /// The server's JSON, for scripts.
    Json,
}

/// Connection and output options shared by the client commands.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Where orchestrator serves.
    #[arg(
        long,
        env = "ORCHESTRATOR_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// API bearer token: a `cli=TOKEN` entry of the server's API_TOKENS
    /// (default: the development token `serve --embedded-cluster` wrote in
    /// the current directory, orchestrator-dev-api-token).
    #[arg(
        long,
        env = "ORCHESTRATOR_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

impl Conn {
    /// A client for `--server` with `--token`.
    pub fn client(&self) -> Result<ApiClient, ClientError> {
        let token = self.token.clone().or_else(super::dev_files::dev_token);
        ApiClient::new(&self.server, token.as_deref())
    }
}

/// `orchestrator submit`.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The GitHub repository the agent works on.
    #[arg(long, value_name = "OWNER/NAME")]
    pub repo: String,
    /// What the agent should do (`-` reads it from stdin).
    #[arg(long)]
    pub prompt: String,
    /// A short title (default: the prompt's first line).
    #[arg(long)]
    pub title: Option<String>,
    /// The issue the task is about.
    #[arg(long, value_name = "N", conflicts_with = "pr")]
    pub issue: Option<u64>,
    /// The pull request the task is about.
    #[arg(long, value_name = "N")]
    pub pr: Option<u64>,
    /// critical (alias urgent), high, medium, low or -1000..=1000; higher runs first (default 0).
    #[arg(long, value_name = "P", allow_hyphen_values = true, value_parser = priority_arg)]
    pub priority: Option<i32>,
    /// The task kind (default `task`).
    #[arg(long, value_name = "K")]
    pub kind: Option<String>,
    /// The Job's time limit, 60..=604800 (default: the server's JOB_TIMEOUT_SECONDS).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// A label recorded with the task; may be repeated.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Makes retries of this submission one task (default: a new UUID).
    #[arg(long, value_name = "K")]
    pub idempotency_key: Option<String>,
    /// Wait for the Job to end, showing progress on stderr; exit 1 unless it succeeds.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up (exit 8) after this long (default: --timeout or 3600, plus 600).
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub wait_timeout: Option<u64>,
}

/// `orchestrator events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Most events to show, 1..=1000 (default 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: Option<u16>,
    /// Only events of this source (github, grafana, pm-agent, cli).
    #[arg(long, value_name = "S")]
    pub source: Option<String>,
    /// Only events with this decision (queued, duplicate, ignored, recovered, …).
    #[arg(long, value_name = "D")]
    pub decision: Option<String>,
}

/// `orchestrator leader`.
#[derive(Debug, Clone, Args)]
pub struct LeaderArgs {
    #[command(flatten)]
    pub conn: Conn,
}

/// `orchestrator completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Runs `f` on a current-thread runtime and turns its outcome into the exit
/// code (errors are reported on stderr).
pub(super) fn block_on<F>(f: F) -> ExitCode
where
    F: std::future::Future<Output = Result<u8, ClientError>>,
{
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    match rt.block_on(f) {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report(),
    }
}

/// Prints `text` on stdout; a closed pipe is not an error.
pub(super) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

pub(super) fn print_json(v: &Value) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}

/// `--priority`: a word or an integer, as the task API accepts.
fn priority_arg(s: &str) -> Result<i32, String> {
    crate::task::parse_priority(s).ok_or_else(|| crate::task::PRIORITY_EXPECTED.to_string())
}

/// The task document of `submit`.
fn task_body(a: &SubmitArgs) -> Result<Value, ClientError> {
    let prompt = if a.prompt == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| ClientError::Usage(format!("cannot read the prompt from stdin: {e}")))?
    } else {
        a.prompt.clone()
    };
    let title = a.title.clone().unwrap_or_else(|| {
        let first = prompt
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("task");
        first.chars().take(80).collect()
    });
    let mut body = Map::new();
    body.insert("title".into(), json!(title));
    body.insert("prompt".into(), json!(prompt));
    body.insert("repository".into(), json!(a.repo));
    let optional = [
        ("issue", a.issue.map(|v| json!(v))),
        ("pr", a.pr.map(|v| json!(v))),
        ("priority", a.priority.map(|v| json!(v))),
        ("kind", a.kind.as_ref().map(|v| json!(v))),
        ("timeout_seconds", a.timeout.map(|v| json!(v))),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    }
    if !a.labels.is_empty() {
        let mut labels = Map::new();
        for l in &a.labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| ClientError::Usage(format!("--label {l:?}: expected KEY=VALUE")))?;
            labels.insert(k.to_string(), json!(v));
        }
        body.insert("labels".into(), Value::Object(labels));
    }
    Ok(Value::Object(body))
}

/// `orchestrator submit`.
pub fn submit(a: SubmitArgs) -> ExitCode {
    block_on(async move {
        let client = a.conn.client()?;
        let body = task_body(&a)?;
        let key = a
            .idempotency_key
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // The key makes resending safe: ride out a busy server briefly.
        let mut attempt = 0;
        let (status, answer) = loop {
            attempt += 1;
            match client.submit(&body, &key).await {
                Err(ClientError::Server { status, .. })
                    if matches!(status, 429 | 503) && attempt < 3 =>
                {
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                }
                other => break other?,
            }
        };
        let name =
            answer["job"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ClientError::Server {
                    status,
                    message: "the answer names no job".into(),
                })?;
        if status == 200 {
            eprintln!("note: duplicate of an earlier submission with the same idempotency key; job {name}");
        }
        if !a.wait {
            match a.conn.output {
                Output::Json => print_json(&answer),
                Output::Table => {
                    let status = answer["status"].as_str().unwrap_or("-").to_string();
                    out(&table(&["JOB", "STATUS"], &[vec![name, status]]));
                }
            }
            return Ok(exit::OK);
        }
        let limit = a.wait_timeout.unwrap_or(a.timeout.unwrap_or(3600) + 600);
        let opts = WaitOptions {
            limit: Duration::from_secs(limit),
            ..WaitOptions::default()
        };
        let job = wait_for_job(&client, &name, &opts).await?;
        match a.conn.output {
            Output::Json => print_json(&job),
            Output::Table => out(&jobs_table(std::slice::from_ref(&job), chrono::Utc::now())),
        }
        let state = job["state"].as_str().unwrap_or("unknown");
        if state == "succeeded" {
            Ok(exit::OK)
        } else {
            eprintln!("Error: job {name} ended {state}; see \"orchestrator jobs get {name}\" and \"orchestrator jobs logs {name}\".");
            Ok(exit::JOB_FAILED)
        }
    })
}

/// `orchestrator events`.
pub fn events(a: EventsArgs) -> ExitCode {
    block_on(async move {
        let client = a.conn.client()?;
        let filter = EventFilter {
            limit: a.limit.map(usize::from),
            source: a.source,
            decision: a.decision,
        };
        let events = client.events(&filter).await?;
        match a.conn.output {
            Output::Json => print_json(&events),
            Output::Table => {
                let list = events.as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    eprintln!("no events");
                } else {
                    out(&events_table(&list));
                }
            }
        }
        Ok(exit::OK)
    })
}

/// `orchestrator leader`: the scheduler Lease's holder as the answering
/// replica sees it.
pub fn leader(a: LeaderArgs) -> ExitCode {
    block_on(async move {
        let v = a.conn.client()?.leader().await?;
        match a.conn.output {
            Output::Json => print_json(&v),
            Output::Table => {
                let text = |k: &str| v[k].as_str().unwrap_or("-").to_string();
                let leads = if v["leader"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                };
                out(&table(
                    &["HOLDER", "ANSWERED BY", "IT LEADS"],
                    &[vec![text("holder"), text("identity"), leads.to_string()]],
                ));
            }
        }
        Ok(exit::OK)
    })
}

/// `orchestrator completions SHELL`: the completion script on stdout.
pub fn completions(a: CompletionsArgs) -> ExitCode {
    use clap::CommandFactory;
    let mut cmd = super::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "orchestrator", &mut std::io::stdout());
    ExitCode::SUCCESS
}
