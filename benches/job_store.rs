//! The watch store and the admission queue with 100,000 Jobs (90,000
//! finished, 10,000 queued, 49 running of `MAX_CONCURRENT_JOBS=50`):
//! - `admission_pick`: pick the next Job to admit (then put it back, so
//!   every iteration sees the same queue);
//! - `list_queued_50`: the page of `GET /api/v1/jobs?state=queued&limit=50`
//!   built from the store's indexes and serialised to JSON;
//! - `apply_event`: one watch event (a Job's record replaced) at 100,000.
//! - `admission_pick_fair`: the pick with 100,000 queued Jobs across 1,000
//!   repositories and two sources (fair order between repositories, a
//!   per-repository cap of 2 and a per-source cap), 49 running of 50; each
//!   pick moves the picked repository to the back of its turn.
//!
//! Also prints the resident memory the 100,000 records and their indexes
//! take. Run: `cargo bench --bench job_store`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use k8s_openapi::api::batch::v1::Job;
use orchestrator::cluster::build_job;
use orchestrator::cluster::store::{JobFilter, JobStore};
use orchestrator::config::Config;
use orchestrator::http::jobs::list_page;
use orchestrator::job::JobRecord;
use orchestrator::job::JobState;
use orchestrator::scheduler::queue::{Limits, Observed, Queue};
use orchestrator::task::{Task, TaskSource};
use serde_json::json;

const JOBS: usize = 100_000;
const QUEUED: usize = 10_000;
const RUNNING: usize = 49;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn template() -> Job {
    let task = Task {
        source: TaskSource::Github,
        kind: "implement".into(),
        priority: 0,
        repository: Some("acme/api".into()),
        issue_number: Some(1),
        pr_number: None,
        checkout: None,
        title: "Fix the flaky login test on the settings page".into(),
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

/// Job `n`: queued, running or finished, as the watch delivers it.
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
    labels.insert(
        "orchestrator.dev/concurrency-key".into(),
        format!("acme.api-{n}"),
    );
    j.metadata
        .annotations
        .get_or_insert_default()
        .insert("orchestrator.dev/dedup-key".into(), format!("github:{n}"));
    let (suspend, status) = if n < QUEUED {
        (true, json!({}))
    } else if n < QUEUED + RUNNING {
        (
            false,
            json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}),
        )
    } else {
        (
            false,
            json!({"succeeded": 1, "startTime": "2026-01-01T00:00:00Z",
                "completionTime": "2026-01-01T00:05:00Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True",
                    "lastTransitionTime": "2026-01-01T00:05:00Z"},
                    {"type": "Complete", "status": "True",
                    "lastTransitionTime": "2026-01-01T00:05:00Z"}]}),
        )
    };
    if let Some(s) = j.spec.as_mut() {
        s.suspend = Some(suspend);
    }
    j.status = Some(serde_json::from_value(status).expect("status"));
    j
}

fn bench(c: &mut Criterion) {
    let template = template();
    let store = JobStore::new();
    let mut queue = Queue::new(RUNNING + 1);
    let before = rss_bytes();
    for n in 0..JOBS {
        let j = job(&template, n);
        let r = JobRecord::from_job(&j, None).expect("record");
        queue.observe(Observed::of(&r));
        store.apply(r);
    }
    let after = rss_bytes();
    assert_eq!(store.count_in(JobState::Queued), QUEUED);
    assert_eq!((queue.queued(), queue.running()), (QUEUED, RUNNING));
    println!(
        "job_store: resident memory of {JOBS} records, indexes and queue: {:.1} MB ({:.2} KB per Job); process RSS {:.1} MB",
        (after.saturating_sub(before)) as f64 / 1e6,
        (after.saturating_sub(before)) as f64 / 1e3 / JOBS as f64,
        after as f64 / 1e6,
    );

    c.bench_function("admission_pick", |b| {
        b.iter(|| {
            let picked = queue.take_admissions();
            assert_eq!(picked.len(), 1);
            queue.admission_failed(black_box(&picked[0]));
        })
    });

    let filter = JobFilter {
        state: Some(JobState::Queued),
        ..Default::default()
    };
    c.bench_function("list_queued_50", |b| {
        b.iter(|| {
            let page = list_page(&store, black_box(&filter), None, 50).expect("page");
            black_box(serde_json::to_vec(&page).expect("json"))
        })
    });

    let mut fair = Queue::with_limits(Limits {
        max_running: RUNNING + 1,
        per_repository: 2,
        per_source: [("github".to_string(), 10_000)].into(),
    });
    for n in 0..100_000usize {
        let repo = format!("owner/repo-{}", n % 1000);
        let source = if n % 3 == 0 { "github" } else { "cli" };
        fair.observe(Observed {
            name: format!("job-{n}").into(),
            state: if n < RUNNING {
                JobState::Running
            } else {
                JobState::Queued
            },
            priority: (n % 2) as i32,
            created: n as i64,
            concurrency_key: (n % 5 == 0).then(|| format!("{repo}#{}", n % 50).into()),
            source: source.into(),
            repository: repo.into(),
            started: 0,
            rv: 0,
        });
    }
    assert_eq!(fair.running(), RUNNING);
    c.bench_function("admission_pick_fair", |b| {
        b.iter(|| {
            let picked = fair.take_admissions();
            assert_eq!(picked.len(), 1);
            fair.admission_failed(black_box(&picked[0]));
        })
    });

    let running = job(&template, QUEUED);
    let previous = store.get(running.metadata.name.as_deref().expect("name"));
    c.bench_function("apply_event", |b| {
        b.iter(|| {
            let r = JobRecord::from_job(black_box(&running), previous.as_deref()).expect("record");
            store.apply(r)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
