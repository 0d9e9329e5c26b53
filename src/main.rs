//! `orchestrator` binary: parses the command line and calls the library.

use std::process::ExitCode;

use clap::Parser;

/// jemalloc, not glibc's allocator: the embedded simulator's cost per
/// create stays flat as it stores more objects (glibc's doubled between 1k
/// and 50k stored Jobs: its free lists grow with the heap; `cargo bench -p
/// kube-api-sim --bench scale` with and without it), and memory freed after
/// a burst of large bodies goes back to the system within seconds
/// (jemalloc's decay) rather than staying at the peak.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = orchestrator::cli::Cli::parse();
    orchestrator::cli::run(cli)
}
