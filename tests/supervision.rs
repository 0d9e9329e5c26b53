//! Supervision of the real service: a handler of each actor kind (source,
//! scheduler, Kube) is made to panic with the fault-injection `Crash`
//! message (nothing a client can send); the actor is restarted, the restart
//! shows in `/metrics`, and the next webhook is answered normally and its
//! Job admitted — by a restarted scheduler that picks leadership up from
//! the real Lease loop without help. The Job watch, a long-running task
//! beside the actors, makes its lists and watches through the shared Kube
//! gate: each (re)list and reconnection is counted with the other calls.

mod common;

use common::*;
use orchestrator::actors::Crash;

/// The value of the sample `name{labels}` in a Prometheus exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn metric(app: &TestApp, series: &str) -> Option<f64> {
    sample(&app.get("/metrics").await.text, series)
}

#[actix_rt::test]
async fn a_panicking_handler_of_each_actor_kind_is_restarted_counted_and_work_goes_on() {
    let app = spawn_app(&[]).await;
    wait_for("this replica to lead", WAIT, || async {
        app.handles.leader.is_leader().then_some(())
    })
    .await;
    let first = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(1)))
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let job = first.job().expect("a job name");
    app.wait_complete(&job, WAIT).await;

    for (n, actor) in ["github", "scheduler", "kube"].into_iter().enumerate() {
        let series = format!("orchestrator_actor_restarts_total{{actor=\"{actor}\"}}");
        assert_eq!(metric(&app, &series).await, Some(0.0), "{series} before");
        let h = &app.handles;
        match actor {
            "github" => h.github.addr().do_send(Crash),
            "scheduler" => h.scheduler.addr().do_send(Crash),
            _ => h.kube.addr().do_send(Crash),
        }
        wait_for(&format!("{actor} to be restarted"), WAIT, || async {
            (metric(&app, &series).await == Some(1.0)).then_some(())
        })
        .await;
        // The next webhook is answered normally, and its Job is admitted
        // and runs to completion.
        let issue = 10 + n as u64;
        let a = app
            .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(issue)))
            .await;
        assert_eq!(a.status, 202, "after the {actor} restart: {}", a.text);
        assert_eq!(a.status_field(), "queued");
        let job = a.job().expect("a job name");
        app.wait_complete(&job, WAIT).await;
    }
    // Each kind handled messages through its bounded mailbox.
    let text = app.get("/metrics").await.text;
    for actor in ["github", "scheduler", "kube"] {
        let handled = sample(
            &text,
            &format!("orchestrator_actor_messages_total{{actor=\"{actor}\"}}"),
        );
        assert!(handled.is_some_and(|n| n >= 4.0), "{actor}: {handled:?}");
    }
    assert_eq!(
        sample(&text, "orchestrator_leader"),
        Some(1.0),
        "the single replica leads"
    );
    app.stop().await.expect("a clean stop after the restarts");
}

#[actix_rt::test]
async fn a_full_source_mailbox_answers_503_with_retry_after_and_counts_it() {
    // Two Tasks in flight per source; a slow API server keeps them there.
    let sim = start_sim(0.3);
    let app = spawn_app_on(sim.clone(), &[("SOURCE_MAILBOX_CAPACITY", "2")]).await;
    set_faults(&sim, serde_json::json!({"latency_ms": 1500, "errors": []})).await;
    let (d1, d2) = (delivery_id(), delivery_id());
    let in_flight = async {
        tokio::join!(
            app.deliver("issues", &d1, bytes(&issue_labeled_agent(1))),
            app.deliver("issues", &d2, bytes(&issue_labeled_agent(2))),
        )
    };
    let overflow = async {
        wait_for("two tasks in flight", WAIT, || async {
            let depth = metric(&app, "orchestrator_actor_mailbox_depth{actor=\"github\"}").await;
            (depth == Some(2.0)).then_some(())
        })
        .await;
        app.deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(3)))
            .await
    };
    let ((a, b), refused) = tokio::join!(in_flight, overflow);
    assert_eq!((a.status, b.status), (202, 202), "{} / {}", a.text, b.text);
    assert_eq!(refused.status, 503, "{}", refused.text);
    refused.assert_json();
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert_eq!(
        metric(
            &app,
            "orchestrator_actor_mailbox_overflow_total{actor=\"github\"}"
        )
        .await,
        Some(1.0)
    );
    clear_faults(&sim).await;
    assert_eq!(
        metric(&app, "orchestrator_actor_mailbox_depth{actor=\"github\"}").await,
        Some(0.0),
        "the slots are given back"
    );
}

#[actix_rt::test]
async fn the_job_watch_s_lists_and_watches_are_counted_with_the_other_kubernetes_calls() {
    let sim = start_sim(0.3);
    let app = spawn_app_on(sim.clone(), &[]).await;
    let calls = |verb: &'static str| {
        let app = &app;
        async move {
            let series =
                format!("orchestrator_kube_requests_total{{verb=\"{verb}\",outcome=\"ok\"}}");
            metric(app, &series).await.unwrap_or(0.0)
        }
    };
    // Ready means listed once and watching.
    let lists = calls("list").await;
    let watches = wait_for("the watch request to be counted", WAIT, || async {
        let n = calls("watch").await;
        (n >= 1.0).then_some(n)
    })
    .await;
    assert!(lists >= 1.0, "the initial list is counted: {lists}");
    // Watches the simulator closes, with the history compacted under them:
    // each reconnection, and the relist a 410 forces, is a counted call.
    set_faults(
        &sim,
        serde_json::json!({"watch_close_after_seconds": 0.3, "compact": true}),
    )
    .await;
    wait_for(
        "a relist and two more watches to be counted",
        WAIT,
        || async {
            (calls("list").await > lists && calls("watch").await >= watches + 2.0).then_some(())
        },
    )
    .await;
    clear_faults(&sim).await;
    app.stop().await.expect("a clean stop");
}

#[actix_rt::test]
async fn a_job_watch_that_keeps_failing_turns_ready_to_503_naming_it_until_it_works_again() {
    let app = spawn_app(&[("JOB_WATCH_FAILING_SECONDS", "2")]).await;
    // Every watch request fails and open watches are closed: the watch
    // retries with backoff and hears nothing good.
    set_faults(
        &app.sim,
        serde_json::json!({
            "errors": [{"verb": "watch", "resource": "jobs", "rate": 1.0, "status": 500}],
            "watch_close_after_seconds": 0.2
        }),
    )
    .await;
    let why = wait_for("/ready to turn 503 for the watch", WAIT, || async {
        let r = app.get("/ready").await;
        (r.status == 503).then(|| r.json["reason"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(why.contains("Job watch has been failing"), "{why}");
    clear_faults(&app.sim).await;
    wait_for("/ready to be 200 again", WAIT, || async {
        (app.get("/ready").await.status == 200).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn a_kube_call_that_panics_is_answered_503_counted_as_a_restart_and_the_retry_succeeds() {
    let app = spawn_app(&[]).await;
    let series = "orchestrator_actor_restarts_total{actor=\"kube\"}";
    let before = metric(&app, series).await.unwrap_or(0.0);
    app.handles
        .kube
        .tell(orchestrator::cluster::kube_actor::CrashNextCall)
        .expect("the kube mailbox has room");
    let body = bytes(&issue_labeled_agent(77));
    let id = delivery_id();
    let first = app.deliver("issues", &id, body.clone()).await;
    assert_eq!(first.status, 503, "{}", first.text);
    assert!(first.retry_after.is_some(), "{}", first.text);
    assert_eq!(metric(&app, series).await, Some(before + 1.0));
    // GitHub's redelivery (same id) is persisted this time.
    let again = app.deliver("issues", &id, body).await;
    assert_eq!(again.status, 202, "{}", again.text);
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn a_job_create_in_flight_takes_no_scheduler_mailbox_slot() {
    let app = spawn_app(&[]).await;
    // Every API call takes a while: the create is in flight long enough to look.
    set_faults(&app.sim, serde_json::json!({"latency_ms": 1500})).await;
    let delivery = {
        let app = &app;
        async move {
            app.deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(88)))
                .await
        }
    };
    let look = async {
        wait_for(
            "the Job's create in flight on the API server",
            WAIT,
            || async {
                (in_flight(&sim_stats(&app.sim).await, "create", "jobs") >= 1).then_some(())
            },
        )
        .await;
        metric(
            &app,
            "orchestrator_actor_mailbox_depth{actor=\"scheduler\"}",
        )
        .await
    };
    let (answer, scheduler_depth) = tokio::join!(delivery, look);
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(
        scheduler_depth,
        Some(0.0),
        "the create held a scheduler slot"
    );
    clear_faults(&app.sim).await;
    app.stop().await.expect("clean stop");
}
