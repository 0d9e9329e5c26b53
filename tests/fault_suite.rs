//! The fault suite: deliveries from every source (GitHub, Grafana, PM
//! Agent, CLI) stream in while the simulator fails 20 % of every verb on
//! every resource, adds latency, drops every watch after two seconds and
//! then goes down for ten seconds. Afterwards, with the faults cleared:
//!
//! - the faults were injected: 503s on Job and ConfigMap creates and 500s
//!   on the Job watch during the error phase, before the outage;
//! - every delivery answered 2xx names a Job that exists in the
//!   simulator's store when the answer arrives (names are deterministic, so
//!   a resend would recreate a Job lost after its 2xx: checked before any),
//!   still exists once the faults are gone, and completes (a PM task's Job
//!   mounts its files' ConfigMap, which it owns);
//! - a delivery answered non-2xx left nothing behind that blocks its retry:
//!   the retry is answered 2xx with a complete Job (and at least one
//!   delivery went that way);
//! - every delivery ends with exactly one Job (redelivering any of them is
//!   a duplicate of the same Job; no other managed Job exists);
//! - every Job is admitted and reaches a final state.

mod api_support;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api_support::*;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

const GRAFANA_USER_PASS: &str = "grafana:grafana-password-0123";

#[derive(Debug, Clone)]
enum Source {
    GitHub(u64),
    Grafana(String),
    Pm(String),
    Cli(String),
}

/// Sends one delivery once and returns (status, Job named in a 2xx answer).
/// A Job named in a 2xx answer exists in the simulator's store (read
/// directly, past every fault) when the answer arrives.
async fn send(app: &TestApp, d: &Source) -> (u16, Option<String>) {
    let (status, job) = send_once(app, d).await;
    if let (true, Some(job)) = (ok(status), &job) {
        assert!(
            app.sim
                .store()
                .get(kube_api_sim::resources::JOBS, "default", job)
                .is_ok(),
            "{d:?} was answered {status} naming Job {job}, which does not exist"
        );
    }
    (status, job)
}

async fn send_once(app: &TestApp, d: &Source) -> (u16, Option<String>) {
    match d {
        Source::GitHub(issue) => {
            let a = app
                .deliver(
                    "issues",
                    &format!("fault-delivery-{issue}"),
                    bytes(&issue_labeled_agent(*issue)),
                )
                .await;
            (a.status, a.job())
        }
        Source::Grafana(fp) => {
            use base64::Engine;
            let alert = grafana_alert(
                "firing",
                fp,
                alert_labels("HighErrorRate", "critical", "acme/checkout"),
                "2025-06-01T12:00:00Z",
            );
            let auth = base64::engine::general_purpose::STANDARD.encode(GRAFANA_USER_PASS);
            let r = call(app, "POST", "/webhook/grafana")
                .header("authorization", &format!("Basic {auth}"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&grafana_body("firing", vec![alert])).expect("json"))
                .send()
                .await;
            let job = r.json["alerts"][0]["job"].as_str().map(str::to_string);
            (r.status, job)
        }
        Source::Pm(id) => {
            let r = call(app, "POST", "/api/v1/pm/tasks")
                .token(PM_TOKEN)
                .json(&json!({
                    "id": id,
                    "title": "Document the API",
                    "description": "Write the API guide.",
                    "markdown_files": [{"filename": "docs/prd.md", "content": "# PRD\n"}]
                }))
                .send()
                .await;
            (r.status, r.json["job"].as_str().map(str::to_string))
        }
        Source::Cli(key) => {
            let r = submit_task(app, &task(key, "acme/widgets"), Some(key)).await;
            (r.status, r.json["job"].as_str().map(str::to_string))
        }
    }
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// `count` deliveries of each source, numbered from `from`.
fn batch(from: u64, count: u64) -> Vec<Source> {
    (from..from + count)
        .flat_map(|i| {
            [
                Source::GitHub(1000 + i),
                Source::Grafana(format!("fp{i:04}")),
                Source::Pm(format!("pm-{i}")),
                Source::Cli(format!("cli-{i}")),
            ]
        })
        .collect()
}

async fn send_all(app: &TestApp, ds: &[Source]) -> Vec<(u16, Option<String>)> {
    futures::future::join_all(ds.iter().map(|d| send(app, d))).await
}

/// The Job a delivery's 2xx answers name, once faults are gone: resent
/// until answered 2xx (bounded).
async fn settle(app: &TestApp, d: &Source) -> String {
    wait_for(
        "a 2xx answer to the retry",
        Duration::from_secs(60),
        || async {
            match send(app, d).await {
                (s, Some(job)) if ok(s) => Some(job),
                _ => None,
            }
        },
    )
    .await
}

async fn assert_pm_complete(app: &TestApp, job: &str) {
    let j = app.job(job).await.expect("the PM task's Job exists");
    let uid = j.metadata.uid.clone().expect("a uid");
    let mounted = j
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.volumes)
        .unwrap_or_default()
        .iter()
        .find_map(|v| v.config_map.as_ref().map(|c| c.name.clone()))
        .expect("the Job mounts its files");
    let cm: Api<ConfigMap> = Api::namespaced(app.kube.clone(), "default");
    let cm = cm
        .get_opt(&mounted)
        .await
        .expect("get ConfigMap")
        .unwrap_or_else(|| panic!("{job}'s files ConfigMap {mounted} exists"));
    let owners = cm.metadata.owner_references.unwrap_or_default();
    assert!(
        owners.iter().any(|o| o.kind == "Job" && o.uid == uid),
        "{mounted} is owned by {job}: {owners:?}"
    );
}

#[actix_rt::test]
async fn under_api_server_faults_every_2xx_has_exactly_one_complete_task_and_every_job_finishes() {
    let sim = start_sim(0.2);
    let app = spawn_app_on(
        sim,
        &[
            ("API_TOKENS", API_TOKENS),
            ("GRAFANA_BASIC_AUTH", GRAFANA_USER_PASS),
            ("MAX_CONCURRENT_JOBS", "8"),
            ("RATE_LIMIT_PER_REPO_PER_MINUTE", "10000"),
            ("RATE_LIMIT_PER_SENDER_PER_MINUTE", "10000"),
            ("GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE", "10000"),
        ],
    )
    .await;
    let mut errors = Vec::new();
    for verb in ["get", "list", "create", "update", "patch", "delete"] {
        for resource in ["jobs", "configmaps", "leases", "pods", "events"] {
            errors.push(json!({"verb": verb, "resource": resource, "rate": 0.2, "status": 503}));
        }
    }
    errors.push(json!({"verb": "watch", "resource": "jobs", "rate": 0.2, "status": 500}));
    let faults: Value = json!({
        "latency_ms": 20,
        "jitter_ms": 20,
        "errors": errors,
        "watch_close_after_seconds": 2
    });
    set_faults(&app.sim, faults.clone()).await;

    // Deliveries while 20 % of calls fail and watches drop, in rounds until
    // the error phase has failed Job and ConfigMap creates (bounded).
    let mut first = Vec::new();
    let mut answers = Vec::new();
    let injected = |stats: &Value| {
        answered(stats, "create", "jobs", Some(503)) > 0
            && answered(stats, "create", "configmaps", Some(503)) > 0
    };
    for round in 0..20 {
        let ds = batch(round * 2, 2);
        answers.extend(send_all(&app, &ds).await);
        first.extend(ds);
        if round >= 2 && injected(&sim_stats(&app.sim).await) {
            break;
        }
    }
    // The Job watch reconnects every two seconds; a fifth of the attempts
    // are refused with 500.
    let stats = wait_for(
        "a Job watch refused with 500",
        Duration::from_secs(90),
        || async {
            let stats = sim_stats(&app.sim).await;
            (answered(&stats, "watch", "jobs", Some(500)) > 0).then_some(stats)
        },
    )
    .await;
    assert!(
        injected(&stats),
        "the error phase failed no Job or no ConfigMap create: {stats}"
    );
    // Ten seconds of outage with deliveries arriving in it.
    let mut outage = faults;
    outage["down_for_seconds"] = json!(10);
    set_faults(&app.sim, outage).await;
    let before_outage = answered(&sim_stats(&app.sim).await, "create", "jobs", Some(503));
    let second = batch(100, 2);
    answers.extend(send_all(&app, &second).await);
    let all: Vec<Source> = first.into_iter().chain(second).collect();
    let stats = sim_stats(&app.sim).await;
    clear_faults(&app.sim).await;
    assert!(
        answered(&stats, "create", "jobs", Some(503)) > before_outage,
        "the outage failed no Job create: {stats}"
    );

    let mut job_of = BTreeMap::new();
    for (i, d) in all.iter().enumerate() {
        let (status, job) = &answers[i];
        assert!(
            ok(*status) || [429, 500, 503].contains(status),
            "{d:?} answered {status}"
        );
        if ok(*status) {
            let job = job
                .clone()
                .unwrap_or_else(|| panic!("{d:?}: a 2xx names its Job"));
            job_of.insert(i, job);
        }
    }
    // Before any resend: every Job a 2xx named is still there.
    for (i, job) in &job_of {
        assert!(
            app.job(job).await.is_some(),
            "{:?} was answered 2xx naming {job}, which was lost",
            all[*i]
        );
    }
    let refused: Vec<usize> = (0..all.len()).filter(|i| !job_of.contains_key(i)).collect();
    assert!(
        !refused.is_empty(),
        "no delivery was refused (the outage alone should refuse some)"
    );
    // Retries: a non-2xx left nothing behind that blocks them, and a 2xx'd
    // delivery sent again is the same Job.
    for (i, d) in all.iter().enumerate() {
        let job = settle(&app, d).await;
        if let Some(first) = job_of.get(&i) {
            assert_eq!(&job, first, "{d:?} is one Job");
        }
        job_of.insert(i, job);
    }
    let expected: BTreeSet<String> = job_of.values().cloned().collect();
    assert_eq!(expected.len(), all.len(), "one distinct Job per delivery");
    let existing: BTreeSet<String> = app.job_names().await.into_iter().collect();
    assert_eq!(existing, expected, "exactly the Jobs answered, no strays");
    for (i, d) in all.iter().enumerate() {
        if let Source::Pm(_) = d {
            assert_pm_complete(&app, &job_of[&i]).await;
        }
    }
    // No files ConfigMap without its Job.
    let cms: Api<ConfigMap> = Api::namespaced(app.kube.clone(), "default");
    for cm in cms.list(&ListParams::default()).await.expect("list").items {
        let name = cm.metadata.name.unwrap_or_default();
        if let Some(job) = name.strip_suffix("-files") {
            assert!(existing.contains(job), "stray ConfigMap {name}");
        }
    }
    // Every Job is admitted and finishes.
    for job in &expected {
        let j = app.wait_complete(job, Duration::from_secs(120)).await;
        assert!(
            has_condition(&j, "Complete"),
            "{job} finished: {:?}",
            j.status
        );
    }
    app.stop().await.expect("a clean stop");
}
