//! verify + decode + route of GitHub deliveries, against a naive baseline
//! (HMAC verify + `serde_json::Value` parse, nothing else) on the same bodies.
//!
//! Run: `cargo bench --bench github_route`. Each fixture is one group with
//! two functions, `route` and `naive`, so the ratio reads off one run; the
//! `about.*` groups time the events log's skim of a body against a typed
//! decode of the same four values. The target (issue 3): events ignored
//! after verification are at least 1.5x faster than `naive`.
//!
//! Routed cases are real fixtures with the smallest byte edit that makes the
//! default rules route them (label renamed to `agent`/`agent-review`, comment
//! prefixed with `/agent`), keeping the original formatting and size.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, Mac};
use orchestrator::config::Secret;
use orchestrator::rules::Rules;
use orchestrator::sources::github::{route, verify_signature, TrustConfig};
use orchestrator::sources::Decision;
use sha2::Sha256;
use std::hint::black_box;
use std::path::PathBuf;

const SECRET: &str = "bench secret";
const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

struct Case {
    name: &'static str,
    event: &'static str,
    body: Vec<u8>,
    signature: String,
    routed: bool,
}

fn fixture(path: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github");
    std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn case(
    name: &'static str,
    event: &'static str,
    path: &str,
    edit: &[(&str, &str)],
    routed: bool,
) -> Case {
    let mut text = fixture(path);
    for (from, to) in edit {
        assert!(text.contains(from), "{path}: {from:?} not found");
        text = text.replace(from, to);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(text.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    Case {
        name,
        event,
        body: text.into_bytes(),
        signature,
        routed,
    }
}

fn cases() -> Vec<Case> {
    let comment = |from: &'static str| [(from, "\"body\": \"/agent ")];
    vec![
        case(
            "issues.labeled.agent",
            "issues",
            "issues/labeled.json",
            &[("\"name\": \"bug\"", "\"name\": \"agent\"")],
            true,
        ),
        case(
            "pull_request.labeled.agent-review",
            "pull_request",
            "pull_request/labeled.json",
            &[("\"name\": \"bug\"", "\"name\": \"agent-review\"")],
            true,
        ),
        case(
            "issue_comment.created.agent",
            "issue_comment",
            "issue_comment/created.json",
            &comment("\"body\": \"You are"),
            true,
        ),
        case(
            "issue_comment.created.with-installation.agent",
            "issue_comment",
            "issue_comment/created.with-installation.json",
            &comment("\"body\": \"You are"),
            true,
        ),
        case(
            "pull_request_review_comment.created.agent",
            "pull_request_review_comment",
            "pull_request_review_comment/created.json",
            &comment("\"body\": \"Maybe"),
            true,
        ),
        // Ignored after verification.
        case(
            "ignored.issue_comment.created",
            "issue_comment",
            "issue_comment/created.json",
            &[],
            false,
        ),
        case(
            "ignored.issues.opened",
            "issues",
            "issues/opened.json",
            &[],
            false,
        ),
        case("ignored.push", "push", "push/push.json", &[], false),
        case(
            "ignored.workflow_run",
            "workflow_run",
            "workflow_run/completed.json",
            &[],
            false,
        ),
        case(
            "ignored.check_run",
            "check_run",
            "check_run/completed.json",
            &[],
            false,
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let rules = Rules::builtin();
    let trust = TrustConfig::default();
    let secrets = [Secret::new(SECRET)];
    for case in cases() {
        // Check the case does what its name says before timing it.
        let d = route(case.event, DELIVERY, &case.body, &rules, &trust).expect("fixture decodes");
        assert_eq!(
            matches!(d, Decision::Task(_)),
            case.routed,
            "{}: {d:?}",
            case.name
        );

        let mut group = c.benchmark_group(case.name);
        group.throughput(Throughput::Bytes(case.body.len() as u64));
        group.bench_function("route", |b| {
            b.iter(|| {
                let body = black_box(&case.body[..]);
                verify_signature(&secrets, Some(case.signature.as_bytes()), body).expect("signed");
                black_box(
                    route(black_box(case.event), DELIVERY, body, &rules, &trust).expect("routes"),
                )
            })
        });
        group.bench_function("naive", |b| {
            b.iter(|| {
                let body = black_box(&case.body[..]);
                verify_signature(&secrets, Some(case.signature.as_bytes()), body).expect("signed");
                black_box(serde_json::from_slice::<serde_json::Value>(body).expect("json"))
            })
        });
        group.finish();
    }
}

/// What an ignored delivery is about, for the events log: the skim of the
/// body's top level (`about`, what the service runs when the log is read or
/// a body is too large to keep) against a typed serde decode of the same
/// four values (what it ran on every ignored delivery before).
fn about_vs_typed(c: &mut Criterion) {
    #[derive(serde::Deserialize)]
    struct Named {
        #[allow(dead_code)]
        full_name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Numbered {
        #[allow(dead_code)]
        number: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Login {
        #[allow(dead_code)]
        login: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Head {
        repository: Option<Named>,
        issue: Option<Numbered>,
        pull_request: Option<Numbered>,
        number: Option<u64>,
        sender: Option<Login>,
        action: Option<String>,
    }
    for (name, path) in [
        ("about.issue_comment.created", "issue_comment/created.json"),
        ("about.pull_request.opened", "pull_request/opened.json"),
    ] {
        let value: serde_json::Value =
            serde_json::from_str(&fixture(path)).expect("fixture is JSON");
        // Minified, as GitHub sends it.
        let body = serde_json::to_vec(&value).expect("JSON");
        assert!(orchestrator::sources::github::about(&body)
            .repository
            .is_some());
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("skim", |b| {
            b.iter(|| black_box(orchestrator::sources::github::about(black_box(&body))))
        });
        group.bench_function("typed", |b| {
            b.iter(|| black_box(serde_json::from_slice::<Head>(black_box(&body)).ok()))
        });
        group.finish();
    }
}

criterion_group!(benches, bench, about_vs_typed);
criterion_main!(benches);
