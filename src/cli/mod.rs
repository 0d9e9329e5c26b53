//! The command line: `orchestrator serve | sim | send-webhook`.

pub mod send;
pub mod serve;
pub mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "Turns GitHub, Grafana, PM Agent and CLI events into Kubernetes Jobs that run AI coding agents"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (webhooks → Kubernetes Jobs). Configured by environment variables (see README).
    Serve(serve::ServeArgs),
    /// Run the embedded Kubernetes API server simulator (no real cluster, no containers).
    Sim(sim::SimArgs),
    /// Send a signed GitHub webhook delivery from a JSON file (for trying the service out).
    SendWebhook(send::SendArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Sim(args) => {
            crate::telemetry::init("text");
            sim::run_sim(args)
        }
        Command::SendWebhook(args) => send::run(args),
    }
}
