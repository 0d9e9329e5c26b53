//! What clients see when the API server refuses the service: a 403 from the
//! API server (a simulator fault) is the service's problem, not the
//! client's — a 503 with `Retry-After`, our error code and a fixed message,
//! and none of the API server's text.

mod common;

use common::*;
use serde_json::json;

#[actix_rt::test]
async fn a_forbidden_job_create_is_a_503_without_the_api_server_s_text() {
    let app = spawn_app(&[]).await;
    set_faults(
        &app.sim,
        json!({"errors": [{"verb": "create", "resource": "jobs", "rate": 1.0, "status": 403}]}),
    )
    .await;
    let a = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(1)))
        .await;
    assert_eq!(a.status, 503, "{}", a.text);
    a.assert_json();
    assert!(a.retry_after.is_some(), "a 503 says when to retry");
    assert_eq!(a.json["error"], "unavailable", "{}", a.text);
    for leak in [
        "injected",
        "fault",
        "403",
        "forbidden",
        "Forbidden",
        "InternalError",
    ] {
        assert!(!a.text.contains(leak), "{leak:?} leaked into {}", a.text);
    }
    clear_faults(&app.sim).await;
    let again = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(1)))
        .await;
    assert_eq!(again.status, 202, "{}", again.text);
    app.stop().await.expect("a clean stop");
}
