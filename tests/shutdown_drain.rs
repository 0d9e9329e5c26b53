//! `SHUTDOWN_DRAIN_SECONDS`: after the shutdown signal the service keeps
//! serving with `/ready` at 503 (so a Service drops the pod first) for the
//! configured time, then closes its listener and stops cleanly.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The configured drain.
const DRAIN: Duration = Duration::from_secs(2);
/// How much later than `DRAIN` the listener may close (a loaded machine).
const SLACK: Duration = Duration::from_secs(3);

#[tokio::test]
async fn during_the_drain_period_ready_is_503_while_requests_are_still_served() {
    let mut app = spawn_app(&[("SHUTDOWN_DRAIN_SECONDS", "2")]).await;
    assert_eq!(app.get("/ready").await.status, 200);
    // A new connection per request: once the listener closes, the next
    // request is refused instead of reusing a pooled connection.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(WAIT)
        .build()
        .expect("an HTTP client");
    let signalled = Instant::now();
    app.begin_shutdown();
    wait_for("/ready to turn 503", Duration::from_secs(5), || async {
        (app.get("/ready").await.status == 503).then_some(())
    })
    .await;
    // A delivery during the drain is still accepted and gets its Job.
    let a = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(7)))
        .await;
    assert_eq!((a.status, a.status_field()), (202, "queued"), "{}", a.text);
    let job = a.job().expect("a queued answer names its Job");
    assert!(app.job(&job).await.is_some(), "the Job of {job} exists");

    // Poll until the listener refuses: until then `/ready` stays 503 and
    // `/health` is served.
    let mut served = 0;
    let mut cut = 0;
    let refused_after = bounded("the listener to close", DRAIN + SLACK + WAIT, async {
        loop {
            let ready = fresh.get(format!("{}/ready", app.address)).send().await;
            let health = fresh.get(format!("{}/health", app.address)).send().await;
            match (ready, health) {
                (Ok(r), Ok(h)) => {
                    assert_eq!(r.status().as_u16(), 503, "/ready while draining");
                    assert_eq!(h.status().as_u16(), 200, "/health while draining");
                    served += 1;
                }
                (Err(e), _) | (_, Err(e)) if e.is_connect() => return signalled.elapsed(),
                (Err(e), _) | (_, Err(e)) => {
                    // A connection the kernel had queued but the server had
                    // not accepted when the listener closed is reset without
                    // an answer; that may happen once, at the close, and the
                    // next connection must be refused.
                    cut += 1;
                    assert!(cut == 1, "cut off again, not refused: {e}");
                    assert!(
                        signalled.elapsed() >= DRAIN,
                        "cut off during the drain: {e}"
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        refused_after >= DRAIN,
        "the listener closed {refused_after:?} after the signal, before the {DRAIN:?} drain"
    );
    assert!(
        refused_after < DRAIN + SLACK,
        "the listener closed only {refused_after:?} after the signal ({DRAIN:?} drain)"
    );
    assert!(served > 0, "requests were served while draining");
    let result = tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("stops within the timeout");
    assert!(result.is_ok(), "{result:?}");
}
