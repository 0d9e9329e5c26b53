//! `orchestrator` binary: parses the command line and calls the library.

use std::process::ExitCode;

use clap::Parser;

/// Allocations from this size up get their own mapping, returned to the
/// system when freed (glibc's default, 128 KiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 128 * 1024;

fn main() -> ExitCode {
    // glibc raises its mmap threshold after the first large buffer is freed
    // (up to 32 MiB), so request bodies of a burst then come from the heap
    // and are kept: RSS stayed at its peak after an attack of 25 MiB bodies.
    // Fixing the threshold (as MALLOC_MMAP_THRESHOLD_ does) returns them
    // (benches/intake_attacks.py: 100 MB kept before, 44 MB after from 41).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    let cli = orchestrator::cli::Cli::parse();
    orchestrator::cli::run(cli)
}
