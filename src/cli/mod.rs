//! The command line: `orchestrator serve | sim | github-sim | send-webhook` and the API
//! client commands `submit | jobs | events | leader | completions`, `healthcheck`,
//! and `doctor` (the preflight checks, run once).

pub mod client_cmds;
pub mod dev_files;
pub mod doctor;
#[cfg(feature = "embedded-cluster")]
pub mod github_sim;
pub mod healthcheck;
pub mod jobs_cmds;
pub mod send;
pub mod serve;
#[cfg(feature = "embedded-cluster")]
pub mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "Turns GitHub, Grafana, PM Agent and CLI events into Kubernetes Jobs that run AI coding agents",
    after_help = crate::client::EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (webhooks → Kubernetes Jobs), configured by
    /// environment variables (`serve --help` lists them with their defaults).
    #[command(after_help = crate::config::vars::help_text())]
    Serve(serve::ServeArgs),
    /// Run the embedded Kubernetes API server simulator (no real cluster, no containers).
    #[cfg(feature = "embedded-cluster")]
    Sim(sim::SimArgs),
    /// Run a fake GitHub REST API (github-api-sim: in-memory, for tests and demos).
    #[cfg(feature = "embedded-cluster")]
    GithubSim(github_sim::GithubSimArgs),
    /// Send a signed GitHub webhook delivery from a JSON file (for trying the service out).
    SendWebhook(send::SendArgs),
    /// Submit a task to a running orchestrator (POST /api/v1/tasks); --wait follows its Job.
    #[command(after_help = crate::client::EXIT_CODES_HELP)]
    Submit(client_cmds::SubmitArgs),
    /// List, inspect, follow the logs of, and cancel Jobs.
    #[command(after_help = crate::client::EXIT_CODES_HELP)]
    Jobs(jobs_cmds::JobsArgs),
    /// The most recent deliveries from every source and the decision taken.
    #[command(after_help = crate::client::EXIT_CODES_HELP)]
    Events(client_cmds::EventsArgs),
    /// Which replica holds the scheduler Lease (admits Jobs), and who answered.
    #[command(after_help = crate::client::EXIT_CODES_HELP)]
    Leader(client_cmds::LeaderArgs),
    /// Check what the service needs from the cluster: the API server answers, the namespace exists, and each permission is granted.
    #[command(after_help = doctor::EXIT_CODES_HELP)]
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(client_cmds::CompletionsArgs),
    /// Check a running service's health endpoint (exit 0 when healthy; for container HEALTHCHECKs).
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        #[cfg(feature = "embedded-cluster")]
        Command::Sim(args) => {
            crate::telemetry::init("text");
            sim::run_sim(args)
        }
        #[cfg(feature = "embedded-cluster")]
        Command::GithubSim(args) => {
            crate::telemetry::init("text");
            github_sim::run_github_sim(args)
        }
        Command::SendWebhook(args) => send::run(args),
        Command::Submit(args) => client_cmds::submit(args),
        Command::Jobs(args) => jobs_cmds::jobs(args),
        Command::Events(args) => client_cmds::events(args),
        Command::Leader(args) => client_cmds::leader(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Completions(args) => client_cmds::completions(args),
        Command::Healthcheck(args) => healthcheck::run(args),
    }
}
