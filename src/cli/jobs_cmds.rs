//! `orchestrator jobs list|get|logs|cancel`: the operator API from the
//! command line. Shares the connection options, output and exit-code
//! handling of [`super::client_cmds`].

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client_cmds::{block_on, out, print_json, Conn, Output};
use crate::client::render::{job_detail, jobs_table, table};
use crate::client::{exit, ApiClient, ClientError, JobFilter};

/// `orchestrator jobs …`.
#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// List Jobs, newest first.
    List(ListArgs),
    /// Show one Job.
    Get {
        /// The Job's name (as `submit` and `jobs list` print it).
        name: String,
    },
    /// Print a Job's log (newest pod); with -f, say how the Job ended.
    Logs {
        /// The Job's name (as `submit` and `jobs list` print it).
        name: String,
        /// Stream new lines until the pod ends (waits for a queued Job to start).
        #[arg(short, long)]
        follow: bool,
    },
    /// Cancel a Job (idempotent; a finished Job is left as it is).
    Cancel {
        /// The Job's name (as `submit` and `jobs list` print it).
        name: String,
    },
}

/// `orchestrator jobs list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// github, grafana, pm-agent or cli.
    #[arg(long, value_name = "S")]
    pub source: Option<String>,
    /// queued, running, succeeded, failed, cancelled or timed_out.
    #[arg(long, value_name = "S", value_parser = ["queued", "running", "succeeded", "failed", "cancelled", "timed_out"])]
    pub state: Option<String>,
    /// Only Jobs of this repository.
    #[arg(long, value_name = "OWNER/NAME")]
    pub repo: Option<String>,
    /// Only Jobs running in this namespace (the service's own, or a rule's
    /// tenant namespace).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Page size, 1..=500 (default 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=500))]
    pub limit: Option<u16>,
    /// Follow the pages to the end.
    #[arg(long)]
    pub all: bool,
}

/// `orchestrator jobs …`.
pub fn jobs(a: JobsArgs) -> ExitCode {
    block_on(async move {
        let client = a.conn.client()?;
        let output = a.conn.output;
        match a.command {
            JobsCommand::List(l) => list(&client, output, l).await,
            JobsCommand::Get { name } => {
                let job = client.get_job(&name).await?;
                match output {
                    Output::Json => print_json(&job),
                    Output::Table => out(&job_detail(&job, chrono::Utc::now())),
                }
                Ok(exit::OK)
            }
            JobsCommand::Logs { name, follow } => logs(&client, &name, follow).await,
            JobsCommand::Cancel { name } => {
                let job = client.cancel_job(&name).await?;
                let state = job["state"].as_str().unwrap_or("unknown");
                if state != "cancelled" {
                    eprintln!("note: job {name} had already ended ({state}); nothing to cancel");
                }
                match output {
                    Output::Json => print_json(&job),
                    Output::Table => out(&table(
                        &["NAME", "STATE"],
                        &[vec![name.clone(), state.to_string()]],
                    )),
                }
                Ok(exit::OK)
            }
        }
    })
}

async fn list(client: &ApiClient, output: Output, l: ListArgs) -> Result<u8, ClientError> {
    let mut filter = JobFilter {
        source: l.source,
        state: l.state,
        repository: l.repo,
        namespace: l.namespace,
        limit: l.limit.map(usize::from),
        continue_token: None,
    };
    let mut items: Vec<Value> = Vec::new();
    let mut next;
    // Bounded, in case a server hands out the same token again.
    let mut pages = 0;
    loop {
        let page = client.list_jobs(&filter).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        next = page["next"].as_str().map(str::to_string);
        pages += 1;
        if !l.all || next.is_none() || next == filter.continue_token || pages >= 10_000 {
            break;
        }
        filter.continue_token = next.clone();
    }
    match output {
        Output::Json => print_json(&json!({"items": items, "next": next})),
        Output::Table => {
            if items.is_empty() {
                eprintln!("no jobs");
            } else {
                out(&jobs_table(&items, chrono::Utc::now()));
            }
            if next.is_some() && !l.all {
                eprintln!("(more jobs: add --all, or a larger --limit)");
            }
        }
    }
    Ok(exit::OK)
}

async fn logs(client: &ApiClient, name: &str, follow: bool) -> Result<u8, ClientError> {
    let mut said_waiting = false;
    let mut resp = loop {
        match client.logs(name, follow).await {
            Ok(r) => break r,
            // A queued Job has no pod yet: with -f, wait for it to start.
            Err(ClientError::NoLogs { .. }) if follow => {
                let job = client.get_job(name).await?;
                let state = job["state"].as_str().unwrap_or("unknown");
                if state != "queued" && state != "running" {
                    return Err(ClientError::NoLogs {
                        name: name.to_string(),
                        message: format!("job {name:?} has no pod (state {state})"),
                    });
                }
                if !said_waiting {
                    eprintln!("waiting for job {name} to start ({state})…");
                    said_waiting = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = client.chunk(&mut resp).await? {
        if stdout
            .write_all(&chunk)
            .and_then(|_| stdout.flush())
            .is_err()
        {
            // The reader went away (e.g. `| head`).
            return Ok(exit::OK);
        }
    }
    drop(stdout);
    if follow {
        return ended(client, name).await;
    }
    Ok(exit::OK)
}

/// After a followed log ends: says on stderr how the Job ended (waiting a
/// bounded moment for its status to catch up with its pod) and returns the
/// exit code `submit --wait` would (1 unless it succeeded).
async fn ended(client: &ApiClient, name: &str) -> Result<u8, ClientError> {
    let mut state = String::from("unknown");
    for _ in 0..40 {
        let job = client.get_job(name).await?;
        state = job["state"].as_str().unwrap_or("unknown").to_string();
        if !matches!(state.as_str(), "queued" | "running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    match state.as_str() {
        "succeeded" => {
            eprintln!("job {name} succeeded");
            Ok(exit::OK)
        }
        "queued" | "running" => {
            eprintln!("the log of job {name} ended; the job is still {state}");
            Ok(exit::OK)
        }
        other => {
            eprintln!("job {name} ended: {other}");
            Ok(exit::JOB_FAILED)
        }
    }
}
