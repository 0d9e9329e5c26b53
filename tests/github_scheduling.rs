//! Admission: `MAX_CONCURRENT_JOBS` bounds the pods running at once, every
//! queued Job completes, one Job per issue runs at a time, and a restart of
//! the service mid-queue neither loses nor repeats work.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

/// Queues one `implement` task per issue; returns the Job names.
async fn queue_issues(app: &TestApp, issues: impl IntoIterator<Item = u64>) -> Vec<String> {
    let mut names = Vec::new();
    for n in issues {
        let answer = app
            .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(n)))
            .await;
        assert_eq!(
            (answer.status, answer.status_field()),
            (202, "queued"),
            "issue {n}: {}",
            answer.text
        );
        names.push(answer.job().expect("job"));
    }
    names
}

#[tokio::test]
async fn with_max_concurrent_jobs_2_five_queued_tasks_never_run_more_than_two_pods_and_all_complete(
) {
    let sim = start_sim(1.0);
    let app = spawn_app_on(sim, &[("MAX_CONCURRENT_JOBS", "2")]).await;
    let recorder = Recorder::start(&app.sim);
    let names = queue_issues(&app, 101..=105).await;
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 5, "five Jobs");
    for name in &names {
        app.wait_complete(name, Duration::from_secs(60)).await;
    }
    let (max_running, max_active) = recorder.max_running().await;
    assert!(
        max_running <= 2,
        "at most two pods Running at once, saw {max_running}"
    );
    assert!(
        max_active <= 2,
        "at most two pods Pending or Running at once, saw {max_active}"
    );
    assert_eq!(max_running, 2, "the limit is used, not undercut");
    let per_job = recorder.pods_per_job().await;
    for name in &names {
        assert_eq!(per_job.get(name), Some(&1), "{name} ran exactly once");
        assert_eq!(
            recorder.suspend_history(name).await,
            vec![true, false],
            "{name}"
        );
    }
    app.stop().await.expect("a clean stop");
}

/// Queues one `/agent` comment task per comment id on `issue` (comment
/// rules queue a repeat: each comment is a request); the Job names.
async fn queue_comments(
    app: &TestApp,
    issue: u64,
    ids: impl IntoIterator<Item = u64>,
) -> Vec<String> {
    let mut names = Vec::new();
    for id in ids {
        let mut v = comment_agent("issue_comment/created.json");
        set(&mut v, "/issue/number", issue.into());
        set(&mut v, "/comment/id", id.into());
        let answer = app
            .deliver("issue_comment", &delivery_id(), bytes(&v))
            .await;
        assert_eq!(
            (answer.status, answer.status_field()),
            (202, "queued"),
            "comment {id}: {}",
            answer.text
        );
        names.push(answer.job().expect("job"));
    }
    names
}

#[tokio::test]
async fn two_tasks_on_the_same_issue_run_one_after_the_other() {
    let sim = start_sim(0.5);
    let app = spawn_app_on(sim, &[("MAX_CONCURRENT_JOBS", "5")]).await;
    let recorder = Recorder::start(&app.sim);
    let names = queue_comments(&app, 42, [4201, 4202, 4203]).await;
    assert_eq!(
        names.iter().collect::<BTreeSet<_>>().len(),
        3,
        "three deliveries, three Jobs"
    );
    for name in &names {
        app.wait_complete(name, Duration::from_secs(60)).await;
    }
    let (max_running, max_active) = recorder.max_running().await;
    assert_eq!(
        (max_running, max_active),
        (1, 1),
        "one Job per issue at a time"
    );
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_restart_of_the_service_mid_queue_runs_the_remaining_tasks_and_none_twice() {
    let sim = start_sim(1.0);
    let env = [("MAX_CONCURRENT_JOBS", "1")];
    let app = spawn_app_on(sim.clone(), &env).await;
    let recorder = Recorder::start(&app.sim);
    let names = queue_issues(&app, 201..=204).await;
    // Wait until the first Job runs while the others still wait.
    wait_for("a first admission", WAIT, || async {
        let jobs = app.jobs().await;
        let admitted = jobs.iter().filter(|j| !suspended(j)).count();
        (admitted >= 1).then_some(())
    })
    .await;
    app.stop().await.expect("the first instance stops cleanly");
    let waiting = app_jobs_suspended(&sim).await;
    assert!(
        !waiting.is_empty(),
        "the restart happens mid-queue (some Jobs still suspended)"
    );

    let app = spawn_app_on(sim.clone(), &env).await;
    for name in &names {
        app.wait_complete(name, Duration::from_secs(60)).await;
    }
    let per_job = recorder.pods_per_job().await;
    for name in &names {
        assert_eq!(per_job.get(name), Some(&1), "{name} ran exactly once");
        assert_eq!(app.pods_of(name).await.len(), 1, "{name} has one pod");
        let job = app.job(name).await.expect("job");
        let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
        assert_eq!(succeeded, 1, "{name}");
    }
    let (max_running, max_active) = recorder.max_running().await;
    assert!(
        max_running <= 1 && max_active <= 1,
        "the limit held across the restart: {max_running}/{max_active}"
    );
    assert_eq!(app.jobs().await.len(), 4, "no Job lost or added");
    app.stop().await.expect("a clean stop");
}

async fn app_jobs_suspended(sim: &kube_api_sim::SimServer) -> Vec<String> {
    let client = sim.client().await.expect("client");
    let api: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(client, "default");
    api.list(&kube::api::ListParams::default().labels(MANAGED))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(suspended)
        .filter_map(|j| j.metadata.name)
        .collect()
}

#[tokio::test]
async fn two_replicas_on_one_cluster_accept_webhooks_but_admit_under_one_limit() {
    let sim = start_sim(1.0);
    let env = [("MAX_CONCURRENT_JOBS", "2")];
    let recorder = Recorder::start(&sim);
    let a = spawn_app_on(sim.clone(), &env).await;
    let b = spawn_app_on(sim.clone(), &env).await;
    let mut names = queue_issues(&a, 301..=303).await;
    names.extend(queue_issues(&b, 304..=306).await);
    for name in &names {
        a.wait_complete(name, Duration::from_secs(60)).await;
    }
    let (max_running, max_active) = recorder.max_running().await;
    assert!(
        max_running <= 2 && max_active <= 2,
        "one admitting scheduler across replicas: {max_running}/{max_active}"
    );
    let per_job = recorder.pods_per_job().await;
    for name in &names {
        assert_eq!(per_job.get(name), Some(&1), "{name} ran exactly once");
    }
    a.stop().await.expect("a clean stop");
    b.stop().await.expect("a clean stop");
}

/// The faults of the churn test: latency, watches closed every 0.7 s, 30 %
/// of Job patches failing, and (`compact`) the history compacted.
fn churn(compact: bool) -> serde_json::Value {
    serde_json::json!({
        "latency_ms": 20, "jitter_ms": 80,
        "watch_close_after_seconds": 0.7,
        "errors": [{"verb": "patch", "resource": "jobs", "rate": 0.3, "status": 503}],
        "compact": compact,
    })
}

#[tokio::test]
async fn the_limit_holds_and_every_task_completes_while_watches_drop_history_compacts_and_patches_fail(
) {
    let sim = start_sim(1.0);
    let recorder = Recorder::start(&sim);
    let app = spawn_app_on(sim.clone(), &[("MAX_CONCURRENT_JOBS", "2")]).await;
    set_faults(&sim, churn(false)).await;
    let names = queue_issues(&app, 401..=406).await;
    // Mid-run: a pod has run while Jobs still wait for admission.
    wait_for("a first pod to run", WAIT, || async {
        let g = recorder.seen.lock().expect("lock");
        (g.max_running >= 1).then_some(())
    })
    .await;
    recorder.sync().await;
    let waiting = recorder
        .seen
        .lock()
        .expect("lock")
        .suspend_history
        .values()
        .filter(|h| h.last() == Some(&true))
        .count();
    assert!(waiting > 0, "the compaction happens mid-run");
    // Drop the history: the Job watch, resuming from an older version when
    // it is next closed, gets 410 Expired and lists again. A change the Job
    // watch does not see first makes the store's version newer than any
    // the watch holds; if a bookmark still catches it up, compact again.
    let stats = sim_stats(&sim).await;
    let (expired_before, lists_before) = (
        stream_errors(&stats, "watch", "jobs", 410),
        answered(&stats, "list", "jobs", Some(200)),
    );
    let mut expired = false;
    for attempt in 0..5 {
        let marker: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": format!("compaction-{attempt}")}}),
        )
        .expect("a ConfigMap");
        kube::Api::namespaced(app.kube.clone(), "default")
            .create(&kube::api::PostParams::default(), &marker)
            .await
            .expect("create a ConfigMap");
        set_faults(&sim, churn(true)).await;
        // The watch closes every 0.7 s: a resume follows within seconds.
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            wait_for("a 410", WAIT, || async {
                let s = sim_stats(&sim).await;
                (stream_errors(&s, "watch", "jobs", 410) > expired_before).then_some(())
            }),
        )
        .await;
        if seen.is_ok() {
            expired = true;
            break;
        }
    }
    assert!(expired, "no Job watch got 410 Expired after the compaction");
    wait_for("the Job watch to list again", WAIT, || async {
        let s = sim_stats(&sim).await;
        (answered(&s, "list", "jobs", Some(200)) > lists_before).then_some(())
    })
    .await;
    for name in &names {
        app.wait_complete(name, Duration::from_secs(90)).await;
    }
    clear_faults(&sim).await;
    let (max_running, max_active) = recorder.max_running().await;
    assert!(
        max_running <= 2 && max_active <= 2,
        "at most two at once despite the faults: {max_running}/{max_active}"
    );
    let per_job = recorder.pods_per_job().await;
    for name in &names {
        assert_eq!(per_job.get(name), Some(&1), "{name} ran exactly once");
    }
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn an_admission_held_up_by_api_errors_still_counts_against_the_limit_when_a_higher_priority_task_arrives(
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: urgent\n    events: [issues]\n    actions: [labeled]\n    label: urgent\n    \
         kind: implement\n    priority: 10\n    prompt: \"Urgently implement {{ repository }}#{{ number }}: {{ title }}\"\n",
    )
    .expect("write rules");
    let sim = start_sim(1.5);
    let recorder = Recorder::start(&sim);
    let rules_path = rules.to_string_lossy().into_owned();
    let app = spawn_app_on(
        sim.clone(),
        &[
            ("MAX_CONCURRENT_JOBS", "1"),
            ("ORCHESTRATOR_RULES", &rules_path),
            // Periodic resyncs every 0.2 s (not 5 s) while admissions fail.
            ("SCHEDULER_RESYNC_SECONDS", "0.2"),
        ],
    )
    .await;
    // Admissions (unsuspend patches) fail for a while.
    set_faults(
        &sim,
        serde_json::json!({"errors": [{"verb": "patch", "resource": "jobs", "rate": 1.0, "status": 503}]}),
    )
    .await;
    let low = queue_issues(&app, [501]).await;
    let mut urgent = issue_labeled_agent(502);
    set(&mut urgent, "/label/name", "urgent".into());
    let a = app.deliver("issues", &delivery_id(), bytes(&urgent)).await;
    assert_eq!((a.status, a.status_field()), (202, "queued"), "{}", a.text);
    let high = a.job().expect("job");
    // Several refused admissions (and many periodic resyncs) with both the
    // held-up Job and the urgent one queued.
    let refused = |s: &serde_json::Value| answered(s, "patch", "jobs", Some(503));
    let before = refused(&sim_stats(&sim).await);
    wait_for("three more refused admissions", WAIT, || async {
        (refused(&sim_stats(&sim).await) >= before + 3).then_some(())
    })
    .await;
    clear_faults(&sim).await;
    for name in low.iter().chain([&high]) {
        app.wait_complete(name, Duration::from_secs(60)).await;
    }
    let (max_running, max_active) = recorder.max_running().await;
    assert!(
        max_running <= 1 && max_active <= 1,
        "MAX_CONCURRENT_JOBS=1 held: {max_running}/{max_active}"
    );
    app.stop().await.expect("a clean stop");
}
