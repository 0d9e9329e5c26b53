//! Deduplication: a redelivery (same `X-GitHub-Delivery`), concurrent or
//! sequential, and the same comment under two delivery ids each make one
//! Job; the first answer is `queued`, every other one `duplicate`.

mod common;

use common::*;
use futures::future::join_all;

#[tokio::test]
async fn ten_concurrent_redeliveries_of_one_delivery_make_one_job_answered_queued_once() {
    let app = spawn_app(&[]).await;
    let delivery = delivery_id();
    let body = bytes(&issue_labeled_agent(7));
    let answers = join_all((0..10).map(|_| app.deliver("issues", &delivery, body.clone()))).await;
    let mut queued = 0;
    let mut names = std::collections::BTreeSet::new();
    for a in &answers {
        a.assert_json();
        match (a.status, a.status_field()) {
            (202, "queued") => queued += 1,
            (200, "duplicate") => {}
            other => panic!("unexpected answer {other:?}: {}", a.text),
        }
        names.insert(a.job().expect("every answer names the job"));
    }
    assert_eq!(queued, 1, "exactly one answer is queued: {answers:#?}");
    assert_eq!(names.len(), 1, "every answer names the same job");
    let jobs = app.job_names().await;
    assert_eq!(jobs, names.into_iter().collect::<Vec<_>>(), "one Job");
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn sequential_redeliveries_of_one_delivery_make_one_job_and_answer_duplicate() {
    let app = spawn_app(&[]).await;
    let delivery = delivery_id();
    let body = bytes(&issue_labeled_agent(8));
    let first = app.deliver("issues", &delivery, body.clone()).await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(first.status_field(), "queued");
    let job = first.job().expect("job");
    for _ in 0..3 {
        let again = app.deliver("issues", &delivery, body.clone()).await;
        again.assert_json();
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.status_field(), "duplicate");
        assert_eq!(again.job().as_deref(), Some(job.as_str()));
    }
    // Still a duplicate once the Job has run to completion.
    app.wait_complete(&job, WAIT).await;
    let late = app.deliver("issues", &delivery, body.clone()).await;
    assert_eq!(
        (late.status, late.status_field()),
        (200, "duplicate"),
        "{}",
        late.text
    );
    assert_eq!(app.job_names().await, vec![job.clone()]);
    assert_eq!(app.pods_of(&job).await.len(), 1, "the Job ran once");
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_redelivery_after_a_restart_is_still_a_duplicate_thanks_to_the_deterministic_job_name() {
    let sim = start_sim(0.3);
    let app = spawn_app_on(sim.clone(), &[]).await;
    let delivery = delivery_id();
    let body = bytes(&issue_labeled_agent(9));
    let first = app.deliver("issues", &delivery, body.clone()).await;
    assert_eq!(first.status_field(), "queued", "{}", first.text);
    app.stop().await.expect("a clean stop");
    // A new process has an empty dedup cache; the API server still dedups.
    let app = spawn_app_on(sim, &[]).await;
    let again = app.deliver("issues", &delivery, body).await;
    assert_eq!(
        (again.status, again.status_field()),
        (200, "duplicate"),
        "{}",
        again.text
    );
    assert_eq!(again.job(), first.job());
    assert_eq!(app.jobs().await.len(), 1);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_same_comment_under_two_delivery_ids_makes_one_job() {
    let app = spawn_app(&[]).await;
    // A repository hook and an App installation deliver the same comment.
    let repo_hook = comment_agent("issue_comment/created.json");
    let installation = comment_agent("issue_comment/created.with-installation.json");
    assert_eq!(repo_hook["comment"]["id"], installation["comment"]["id"]);
    let first = app
        .deliver("issue_comment", &delivery_id(), bytes(&repo_hook))
        .await;
    assert_eq!(
        (first.status, first.status_field()),
        (202, "queued"),
        "{}",
        first.text
    );
    let second = app
        .deliver("issue_comment", &delivery_id(), bytes(&installation))
        .await;
    assert_eq!(
        (second.status, second.status_field()),
        (200, "duplicate"),
        "{}",
        second.text
    );
    assert_eq!(first.job(), second.job());
    assert_eq!(app.jobs().await.len(), 1);
    // And concurrently, a new comment delivered by both hooks at once.
    let mut a = repo_hook.clone();
    set(&mut a, "/comment/id", 999_000_111u64.into());
    let mut b = installation.clone();
    set(&mut b, "/comment/id", 999_000_111u64.into());
    let answers = join_all([
        app.deliver("issue_comment", &delivery_id(), bytes(&a)),
        app.deliver("issue_comment", &delivery_id(), bytes(&b)),
    ])
    .await;
    let statuses: Vec<&str> = answers.iter().map(|a| a.status_field()).collect();
    assert!(
        statuses.contains(&"queued") && statuses.contains(&"duplicate"),
        "{answers:#?}"
    );
    assert_eq!(answers[0].job(), answers[1].job());
    assert_eq!(app.jobs().await.len(), 2);
    app.stop().await.expect("a clean stop");
}
