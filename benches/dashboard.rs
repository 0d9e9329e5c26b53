//! Server time to render each dashboard page with 10,000 Jobs in the watch
//! store (2,000 queued, 50 running, the rest finished in every outcome) and
//! 10,000 recent deliveries in the events log, and each page's size in
//! bytes. Each measurement is the page function a request runs after its
//! session check (`orchestrator::http::dashboard::pages`), template
//! rendering included. Run: `cargo bench --bench dashboard`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use k8s_openapi::api::batch::v1::Job;
use orchestrator::cluster::build_job;
use orchestrator::cluster::store::JobStore;
use orchestrator::config::Config;
use orchestrator::events::{EventLog, NewEvent};
use orchestrator::http::dashboard::pages::{self, DeliveryFilter, Frame, JobExtras, JobsFilter};
use orchestrator::job::JobRecord;
use orchestrator::task::{Task, TaskSource};
use serde_json::json;

const JOBS: usize = 10_000;
const QUEUED: usize = 2_000;
const RUNNING: usize = 50;
const EVENTS: usize = 10_000;

fn template() -> Job {
    let task = Task {
        source: TaskSource::Github,
        kind: "implement".into(),
        priority: 0,
        repository: Some("acme/api".into()),
        issue_number: Some(1),
        pr_number: None,
        checkout: None,
        title: "Fix the flaky login test on the settings page <b>now</b>".into(),
        prompt: "Please fix it. ".repeat(150),
        url: Some("https://github.com/acme/api/issues/1".into()),
        delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
        dedup_key: "template".into(),
        requested_by: Some("octocat".into()),
        labels: Default::default(),
        created_at: chrono::Utc::now(),
    };
    let config =
        Config::from_lookup(|v| (v == "ALLOW_INSECURE_NO_SIGNATURE").then(|| "true".to_string()))
            .expect("config");
    build_job(&task, &config).expect("job")
}

fn job(template: &Job, n: usize) -> Job {
    let mut j = template.clone();
    j.metadata.name = Some(format!("gh-implement-acme-api-{n}-0123456789"));
    j.metadata.resource_version = Some((n + 1).to_string());
    j.metadata.creation_timestamp = Some(
        serde_json::from_value(json!(chrono::DateTime::from_timestamp(
            1_767_000_000 + n as i64,
            0
        )
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))))
        .expect("time"),
    );
    let labels = j.metadata.labels.get_or_insert_default();
    labels.insert(
        "orchestrator.dev/priority".into(),
        format!("p{:02}", n % 10),
    );
    let (suspend, status) = if n < QUEUED {
        (true, json!({}))
    } else if n < QUEUED + RUNNING {
        (
            false,
            json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}),
        )
    } else {
        let (kind, reason) = match n % 3 {
            0 => ("Complete", "Completed"),
            1 => ("Failed", "BackoffLimitExceeded"),
            _ => ("Failed", "DeadlineExceeded"),
        };
        (
            false,
            json!({"startTime": "2026-01-01T00:00:00Z",
                "completionTime": "2026-01-01T00:05:00Z",
                "conditions": [{"type": kind, "status": "True", "reason": reason,
                    "lastTransitionTime": "2026-01-01T00:05:00Z"}]}),
        )
    };
    if let Some(s) = j.spec.as_mut() {
        s.suspend = Some(suspend);
    }
    j.status = Some(serde_json::from_value(status).expect("status"));
    j
}

/// One page's render function.
type Page<'a> = Box<dyn Fn() -> String + 'a>;

fn bench(c: &mut Criterion) {
    let template = template();
    let store = JobStore::new();
    for n in 0..JOBS {
        let r = JobRecord::from_job(&job(&template, n), None).expect("record");
        store.apply(r);
    }
    let log = EventLog::new(EVENTS);
    for n in 0..EVENTS {
        let delivery = format!("72d3162e-cc78-11e3-81ab-{n:012}");
        let job = format!("gh-implement-acme-api-{n}-0123456789");
        let repo = format!("acme/repo-{}", n % 50);
        log.record(NewEvent {
            source: ["github", "grafana", "cli", "pm-agent"][n % 4],
            event: "issues",
            action: Some("labeled"),
            delivery: Some(&delivery),
            decision: ["queued", "duplicate", "ignored"][n % 3],
            reason: (n % 3 == 2).then_some("event 'push' is not routed"),
            job: (n % 3 != 2).then_some(job.as_str()),
            repository: Some(&repo),
            number: Some(n as u64),
            sender: Some("octocat"),
        });
    }
    let frame = Frame {
        who: Some("viewer"),
        csrf: Some("x".repeat(43)),
    };
    let now = chrono::Utc::now();
    let running = store
        .get("gh-implement-acme-api-2000-0123456789")
        .expect("a running Job");
    let extras = JobExtras {
        prompt: Some("Please fix it. ".repeat(150)),
        log: Ok((0..100)
            .map(|i| format!("{{\"type\":\"assistant\",\"n\":{i}}}"))
            .collect()),
        github_host: "github.com".into(),
        may_cancel: true,
        next_retry: None,
        notice: None,
    };
    let system = pages::SystemView {
        replica: "orchestrator-0".into(),
        leader: true,
        jobs: JOBS,
        events: EVENTS,
        ..Default::default()
    };
    let repo_filter = DeliveryFilter {
        repository: Some("acme/repo-7".into()),
        ..Default::default()
    };
    let cases: Vec<(&str, Page<'_>)> = vec![
        (
            "deliveries",
            Box::new(|| pages::deliveries(&log, &DeliveryFilter::default(), None, &frame, now)),
        ),
        (
            "deliveries_by_repository",
            Box::new(|| pages::deliveries(&log, &repo_filter, None, &frame, now)),
        ),
        (
            "jobs",
            Box::new(|| pages::jobs(&store, &JobsFilter::default(), None, &frame, now)),
        ),
        (
            "job",
            Box::new(|| pages::job(&running, &extras, &frame, now)),
        ),
        ("system", Box::new(|| pages::system(&system, &frame))),
        ("login", Box::new(|| pages::login(None, "/ui/"))),
    ];
    for (name, render) in &cases {
        println!("dashboard page {name}: {} bytes", render().len());
    }
    for (name, render) in cases {
        c.bench_function(&format!("page_{name}"), |b| b.iter(|| black_box(render())));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
