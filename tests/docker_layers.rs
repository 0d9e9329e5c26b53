//! The Dockerfile's dependency layer builds from the manifests alone, with
//! `scripts/stub-targets.sh` standing in every target: run here on a copy
//! of the manifests, the script must leave Cargo nothing missing (a bench
//! added to a manifest without a stub once broke the image build at that
//! layer). No container engine runs here; `cargo fetch --offline` parses
//! the manifests as the layer's `cargo build` does.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn copy(rel: &str, to: &Path) {
    let dst = to.join(rel);
    std::fs::create_dir_all(dst.parent().expect("a parent")).expect("mkdir");
    std::fs::copy(Path::new(ROOT).join(rel), &dst).unwrap_or_else(|e| panic!("{rel}: {e}"));
}

#[test]
fn the_dependency_layer_finds_every_target_from_the_manifests_alone() {
    let dockerfile =
        std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    // The files the layer copies before its first build, in that order.
    let layer = dockerfile
        .split("COPY . .")
        .next()
        .expect("the Dockerfile copies the whole context after the dependency layer");
    let copied: Vec<&str> = layer
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[..parts.len() - 1].to_vec()
        })
        .collect();
    assert!(
        layer.contains("sh scripts/stub-targets.sh"),
        "the dependency layer runs the stub script"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    for rel in &copied {
        copy(rel, tmp.path());
    }
    for member in [
        "crates/kube-api-sim/Cargo.toml",
        "crates/github-api-sim/Cargo.toml",
    ] {
        assert!(copied.contains(&member), "the layer copies {member}");
    }
    let out = Command::new("sh")
        .arg("scripts/stub-targets.sh")
        .current_dir(tmp.path())
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["fetch", "--offline", "--locked"])
        .current_dir(tmp.path())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "Cargo rejects the stubbed tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
