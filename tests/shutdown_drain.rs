//! `SHUTDOWN_DRAIN_SECONDS`: after the shutdown signal the service keeps
//! serving with `/ready` at 503 (so a Service drops the pod first), then
//! stops cleanly.

mod common;

use std::time::Duration;

use common::{spawn_app, wait_for};

#[tokio::test]
async fn during_the_drain_period_ready_is_503_while_requests_are_still_served() {
    let mut app = spawn_app(&[("SHUTDOWN_DRAIN_SECONDS", "2")]).await;
    assert_eq!(app.get("/ready").await.status, 200);
    app.begin_shutdown();
    wait_for("/ready to turn 503", Duration::from_secs(5), || async {
        (app.get("/ready").await.status == 503).then_some(())
    })
    .await;
    assert_eq!(
        app.get("/health").await.status,
        200,
        "still serving while draining"
    );
    let result = tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("stops within the timeout");
    assert!(result.is_ok(), "{result:?}");
}
