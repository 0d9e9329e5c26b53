//! `build.sh`'s command line: an unknown flag or a missing value prints the
//! usage and exits 2; `-h` prints it and exits 0; without docker it stops
//! with one line saying so (before running any cargo command).

use std::path::Path;
use std::process::{Command, Output};

fn build_sh(args: &[&str], path: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/build.sh"))
        .args(args);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    cmd.output().expect("bash runs build.sh")
}

#[test]
fn unknown_flags_and_missing_values_print_usage_and_exit_2() {
    for args in [&["-x"][..], &["--push"], &["-t"], &["extra-argument"]] {
        let out = build_sh(args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("Usage: ./build.sh"), "{args:?}: {err}");
    }
    let help = build_sh(&["-h"], None);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("-p           push"));
}

#[test]
fn without_docker_it_stops_with_one_line() {
    // A PATH with the tools the script needs, but no docker.
    let dir = tempfile::tempdir().expect("tempdir");
    for tool in ["bash", "dirname", "git", "sed", "head"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(tool))
            .find(|p| p.is_file());
        if let Some(p) = found {
            std::os::unix::fs::symlink(p, dir.path().join(tool)).expect("symlink");
        }
    }
    let out = build_sh(&["-b"], Some(dir.path()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        "build.sh: docker is not installed (needed to build the image)"
    );
}
