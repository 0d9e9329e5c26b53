//! `orchestrator` binary: parses the command line and calls the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = orchestrator::cli::Cli::parse();
    orchestrator::cli::run(cli)
}
