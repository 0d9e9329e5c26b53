//! Records the git commit being built as `ORCHESTRATOR_GIT_SHA` (for the
//! `orchestrator_build_info` metric): `GIT_SHA` from the environment (the
//! Docker build passes it), else `git rev-parse HEAD`, else nothing.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    let sha = std::env::var("GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty() && s != "unknown")
        .or_else(|| {
            // Rebuild when HEAD moves (the ref file it points to changes).
            for p in [
                git(&["rev-parse", "--git-path", "HEAD"]),
                git(&["rev-parse", "--symbolic-full-name", "HEAD"])
                    .and_then(|r| git(&["rev-parse", "--git-path", &r])),
            ]
            .into_iter()
            .flatten()
            {
                println!("cargo:rerun-if-changed={p}");
            }
            git(&["rev-parse", "HEAD"])
        });
    if let Some(sha) = sha.filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric())) {
        println!("cargo:rustc-env=ORCHESTRATOR_GIT_SHA={sha}");
    }
}
