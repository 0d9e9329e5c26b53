//! The environment variables of `orchestrator serve` have one table
//! (`orchestrator::config::VARIABLES`), and it is held to everything else:
//! the configuration reads exactly the variables it lists, each listed
//! default is what the configuration uses when the variable is unset,
//! `serve --help` shows every variable with its default, and the README's
//! configuration table names every variable (and no other) with the same
//! default.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use orchestrator::config::vars::{default_text, DefaultValue, READ_ELSEWHERE};
use orchestrator::config::{Config, VARIABLES};

/// A valid environment in which every variable is read and every default
/// applies: a webhook secret, and the Grafana settings the optional
/// Grafana variables depend on (credentials, HMAC secret, timestamp header).
fn base() -> BTreeMap<String, String> {
    [
        ("GITHUB_WEBHOOK_SECRET", "a-webhook-secret"),
        ("GRAFANA_AUTH_CREDENTIALS", "a-grafana-token"),
        ("GRAFANA_HMAC_SECRET", "a-grafana-hmac-secret"),
        ("GRAFANA_TIMESTAMP_HEADER", "X-Grafana-Timestamp"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The configuration from `env` (its `Debug` form) and the names it read.
fn load(env: &BTreeMap<String, String>) -> (String, BTreeSet<String>) {
    let read = RefCell::new(BTreeSet::new());
    let cfg = Config::from_lookup(|name| {
        read.borrow_mut().insert(name.to_string());
        env.get(name).cloned()
    })
    .unwrap_or_else(|e| panic!("a valid environment {env:?}: {e}"));
    (format!("{cfg:?}"), read.into_inner())
}

fn listed() -> BTreeSet<String> {
    VARIABLES.iter().map(|v| v.name.to_string()).collect()
}

#[test]
fn the_configuration_reads_exactly_the_listed_variables() {
    let (_, mut read) = load(&base());
    let insecure = BTreeMap::from([(
        "ALLOW_INSECURE_NO_SIGNATURE".to_string(),
        "true".to_string(),
    )]);
    read.extend(load(&insecure).1);
    let listed = listed();
    let unlisted: Vec<_> = read.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "read but not in config::VARIABLES: {unlisted:?}"
    );
    let stale: Vec<_> = listed
        .iter()
        .filter(|n| !read.contains(*n) && !READ_ELSEWHERE.contains(&n.as_str()))
        .collect();
    assert!(stale.is_empty(), "listed but never read: {stale:?}");
    assert_eq!(listed.len(), VARIABLES.len(), "a variable is listed twice");
}

#[test]
fn each_listed_default_is_what_the_configuration_uses_when_unset() {
    let (unset, _) = load(&base());
    // The comparison sees a changed value (so equality below means something).
    let mut other = base();
    other.insert("SERVER_PORT".into(), "8081".into());
    assert_ne!(load(&other).0, unset, "SERVER_PORT=8081 changes the config");
    for v in VARIABLES {
        let DefaultValue::Value(value) = v.default else {
            continue;
        };
        if v.name == "RUST_LOG" {
            assert_eq!(value, orchestrator::telemetry::DEFAULT_FILTER);
            continue;
        }
        let mut env = base();
        env.insert(v.name.to_string(), value.to_string());
        assert_eq!(
            load(&env).0,
            unset,
            "{}={value} (the listed default) differs from leaving it unset",
            v.name
        );
    }
}

#[test]
fn serve_help_lists_every_variable_with_its_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["serve", "--help"])
        .output()
        .expect("run orchestrator serve --help");
    assert!(out.status.success(), "serve --help exits 0");
    let help = String::from_utf8_lossy(&out.stdout);
    for v in VARIABLES {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", v.name)))
            .unwrap_or_else(|| panic!("{} is in serve --help:\n{help}", v.name));
        let want = format!("[default: {}]", default_text(v));
        assert!(line.contains(&want), "{} shows {want}: {line}", v.name);
    }
}

/// The README's configuration table: each row's variables (the backticked
/// names of its first cell, `A` / `B`) with the matching default cells.
fn readme_rows() -> Vec<(Vec<String>, Vec<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Configuration (environment)\n")
        .nth(1)
        .expect("a Configuration (environment) section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            let names = cells[0]
                .trim_start_matches('|')
                .split(" / ")
                .map(|n| n.trim().trim_matches('`').to_string())
                .collect();
            let defaults = cells
                .get(1)
                .map(|d| d.split(" / ").map(|d| d.trim().to_string()).collect())
                .unwrap_or_default();
            (names, defaults)
        })
        .collect()
}

#[test]
fn the_readme_table_lists_every_variable_and_no_other_with_the_same_default() {
    let rows = readme_rows();
    let in_readme: BTreeSet<String> = rows.iter().flat_map(|(n, _)| n.clone()).collect();
    let listed = listed();
    let missing: Vec<_> = listed.difference(&in_readme).collect();
    assert!(missing.is_empty(), "not in the README's table: {missing:?}");
    let extra: Vec<_> = in_readme.difference(&listed).collect();
    assert!(extra.is_empty(), "in the README's table only: {extra:?}");
    for v in VARIABLES {
        let DefaultValue::Value(value) = v.default else {
            continue;
        };
        let (names, defaults) = rows
            .iter()
            .find(|(n, _)| n.iter().any(|n| n == v.name))
            .expect("found above");
        let i = names.iter().position(|n| n == v.name).unwrap_or(0);
        let cell = if defaults.len() == names.len() {
            &defaults[i]
        } else {
            &defaults[0]
        };
        assert_eq!(cell, &format!("`{value}`"), "README default of {}", v.name);
    }
}
