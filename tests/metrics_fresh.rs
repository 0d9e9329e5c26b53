//! A fresh replica exports every metric family: each labelled family has
//! its known label values initialised to zero before anything happened, so
//! dashboards, `rate()` and alert rules see series from the first scrape
//! (Prometheus' instrumentation guidance).

mod common;

use common::exposition::Exposition;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_scrape_of_a_fresh_replica_has_a_series_in_every_family() {
    let app = spawn_app(&[]).await;
    let text = app.get("/metrics").await.text;
    let m = Exposition::parse(&text).expect("a valid exposition");
    // Every family the service registers (a family without series is not
    // printed at all, so each is named here).
    let families = [
        "webhook_decisions",
        "kube_requests",
        "kube_request_seconds",
        "actor_restarts",
        "actor_mailbox_overflow",
        "actor_mailbox_depth",
        "actor_messages",
        "actor_handling_seconds",
        "leader",
        "leader_transitions",
        "jobs",
        "job_watchers",
        "jobs_admitted",
        "job_watch_events",
        "job_watcher_messages",
        "job_watch_scheduler_messages",
        "job_watch_overflows",
        "jobs_tracked",
        "github_requests",
        "github_installation_tokens",
        "reports",
        "github_commands",
        "build_info",
        "http_requests",
        "http_request_seconds",
        "queue_wait_seconds",
        "job_run_seconds",
        "kueue_admissions",
        "kueue_evictions",
    ];
    let empty: Vec<&str> = families
        .iter()
        .copied()
        .filter(|f| {
            let family = format!("orchestrator_{f}");
            !m.samples
                .iter()
                .any(|s| s.name == family || s.name.starts_with(&format!("{family}_")))
        })
        .collect();
    assert!(
        empty.is_empty(),
        "families without a series on a fresh replica: {empty:?}"
    );
    // Zeros for what has not happened yet.
    for (name, labels) in [
        (
            "orchestrator_webhook_decisions_total",
            vec![("source", "grafana"), ("decision", "duplicate")],
        ),
        (
            "orchestrator_kube_requests_total",
            vec![("verb", "delete"), ("outcome", "conflict")],
        ),
        (
            "orchestrator_job_run_seconds_count",
            vec![("outcome", "failed")],
        ),
        (
            "orchestrator_reports_total",
            vec![("target", "github"), ("outcome", "given_up")],
        ),
        (
            "orchestrator_actor_restarts_total",
            vec![("actor", "scheduler")],
        ),
        ("orchestrator_jobs", vec![("state", "timed_out")]),
        ("orchestrator_jobs_waiting", vec![("reason", "kueue")]),
        ("orchestrator_kueue_evictions_total", vec![]),
    ] {
        assert_eq!(m.value(name, &labels), Some(0.0), "{name}{labels:?}");
    }
    app.stop().await.expect("a clean stop");
}
