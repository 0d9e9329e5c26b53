//! The App side over real HTTP: JWT verification, installation tokens and
//! their expiry, hook deliveries (cursor paging, redelivery POSTed to a
//! loopback receiver with GitHub's signature).

mod support;

use std::time::{Duration, Instant};

use github_api_sim::GithubSimConfig;
use serde_json::json;
use support::*;

#[tokio::test]
async fn app_jwts_are_verified_like_github() {
    let sim = start(config());
    let good = app_jwt();
    let app = call_jwt(&sim, "GET", "/app", &good).await;
    assert_eq!(app.status, 200, "{}", app.body);
    assert_eq!(app.body["id"], APP_ID);
    assert_eq!(app.body["slug"], "orchestrator");
    assert!(app.body["name"].is_string());
    assert!(app.header("x-ratelimit-limit").is_some());

    // iss as a number works as well.
    let t = now();
    let numeric = jwt_with(
        &private_der(),
        json!({"iss": APP_ID, "iat": t - 60, "exp": t + 500}),
    );
    assert_eq!(call_jwt(&sim, "GET", "/app", &numeric).await.status, 200);

    let der = private_der();
    let cases = [
        (
            "expired",
            jwt_with(&der, json!({"iss": APP_ID, "iat": t - 700, "exp": t - 100})),
            "'Expiration time'",
        ),
        (
            "exp too far",
            jwt_with(&der, json!({"iss": APP_ID, "iat": t, "exp": t + 601 + 60})),
            "too far in the future",
        ),
        (
            "wrong iss",
            jwt_with(&der, json!({"iss": "999", "iat": t - 10, "exp": t + 300})),
            "'Issuer' claim",
        ),
        (
            "iat in the future",
            jwt_with(&der, json!({"iss": APP_ID, "iat": t + 120, "exp": t + 400})),
            "'Issued at'",
        ),
        (
            "no iss",
            jwt_with(&der, json!({"iat": t - 10, "exp": t + 300})),
            "'Issuer' claim",
        ),
    ];
    for (what, jwt, expected) in cases {
        let a = call_jwt(&sim, "GET", "/app", &jwt).await;
        assert_eq!(a.status, 401, "{what}: {}", a.body);
        let msg = a.body["message"].as_str().unwrap();
        assert!(msg.contains(expected), "{what}: {msg}");
        assert_eq!(a.body["documentation_url"], "https://docs.github.com/rest");
    }
    // A signature that does not verify: the good token's, altered (a key
    // that is not the App's: see a_jwt_signed_by_another_key_is_refused).
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let sig = parts[2].clone();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    parts[2] = format!("{flipped}{}", &sig[1..]);
    let forged = parts.join(".");
    let a = call_jwt(&sim, "GET", "/app", &forged).await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["message"].as_str().unwrap().contains("signature"),
        "{}",
        a.body
    );
    let a = call_jwt(&sim, "GET", "/app", "not-a-jwt").await;
    assert_eq!(a.status, 401);
    // Tokens never open the App's routes; JWTs never open the others.
    let token = installation_token(&sim).await;
    assert_eq!(
        call(&sim, "GET", "/app", Some(&token), None).await.status,
        401
    );
    assert_eq!(
        call_jwt(&sim, "GET", "/repos/o/r/issues/1/comments", &good)
            .await
            .status,
        401
    );
    // Only JWT-authenticated requests are counted as such (3 good ones here).
    assert_eq!(sim.snapshot()["counts"]["jwt_requests"], 3);
}

#[tokio::test]
async fn a_jwt_signed_by_another_key_is_refused() {
    // The simulator holds a public key that is not the test key's: the
    // first half of the real modulus is fine, the rest differs, so the
    // signature cannot verify.
    let pem = public_pem();
    let mut lines: Vec<String> = pem.lines().map(str::to_string).collect();
    let i = lines.len() / 2;
    lines[i] = lines[i]
        .chars()
        .map(|c| {
            if c == 'A' {
                'B'
            } else if c == 'B' {
                'A'
            } else {
                c
            }
        })
        .collect();
    let sim = start(GithubSimConfig {
        app_public_key_pem: Some(lines.join("\n")),
        ..config()
    });
    let a = call_jwt(&sim, "GET", "/app", &app_jwt()).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .starts_with("A JSON web token could not be decoded"));
    assert_eq!(sim.snapshot()["counts"]["jwt_requests"], 0);
}

#[tokio::test]
async fn installation_tokens_are_issued_and_expire() {
    let sim = start(GithubSimConfig {
        installation_token_ttl: Duration::from_secs(1),
        installation_ids: vec![1, 77],
        ..config()
    });
    let jwt = app_jwt();
    let a = call_jwt(&sim, "POST", "/app/installations/77/access_tokens", &jwt).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let token = a.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ghs_") && token.len() > 20);
    assert_eq!(a.body["repository_selection"], "all");
    assert!(a.body["permissions"].is_object());
    let expires =
        chrono::DateTime::parse_from_rfc3339(a.body["expires_at"].as_str().unwrap()).unwrap();
    assert!(a.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let ttl = expires.timestamp() - now();
    assert!(
        (-1..=1).contains(&ttl),
        "expires_at {expires} is the 1 s ttl away"
    );
    // Unknown installation: 404.
    assert_eq!(
        call_jwt(&sim, "POST", "/app/installations/5/access_tokens", &jwt)
            .await
            .status,
        404
    );
    // A repository's installation (JWT), default 1, settable through /_sim.
    let inst = call_jwt(&sim, "GET", "/repos/acme/w/installation", &jwt).await;
    assert_eq!((inst.status, inst.body["id"].clone()), (200, json!(1)));
    let set = client()
        .post(format!("{}/_sim/installations", sim.url()))
        .json(&json!({"repo": "acme/w", "id": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 201);
    assert_eq!(
        call_jwt(&sim, "GET", "/repos/acme/w/installation", &jwt)
            .await
            .body["id"],
        5
    );
    // ... and installation 5 is now accepted.
    assert_eq!(
        call_jwt(&sim, "POST", "/app/installations/5/access_tokens", &jwt)
            .await
            .status,
        201
    );

    // The token works until it expires, then it is refused with 401.
    let path = "/repos/acme/w/issues/1/comments";
    let first = call(&sim, "GET", path, Some(&token), None).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = first.status;
    while last == 200 {
        assert!(
            Instant::now() < deadline,
            "the 1 s token is still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = call(&sim, "GET", path, Some(&token), None).await.status;
    }
    assert_eq!(last, 401);
    let refused = call(&sim, "GET", path, Some(&token), None).await;
    assert_eq!(refused.body["message"], "Bad credentials");
    assert_eq!(sim.snapshot()["counts"]["installation_tokens"], 2);
}

#[tokio::test]
async fn deliveries_page_by_cursor_and_redeliver_signed() {
    let sim = start(config());
    for i in 0..5 {
        let seeded = client()
            .post(format!("{}/_sim/deliveries", sim.url()))
            .json(
                &json!({"guid": format!("guid-{i}"), "event": "issue_comment", "action": "created",
                          "status_code": if i == 2 { 500 } else { 200 }, "installation_id": 1,
                          "repository_id": 42, "payload": {"action": "created", "n": i}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(seeded.status(), 201);
    }
    let jwt = app_jwt();
    let first = call_jwt(&sim, "GET", "/app/hook/deliveries?per_page=2", &jwt).await;
    assert_eq!(first.status, 200);
    let guids = |a: &Answer| -> Vec<String> {
        a.body
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["guid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(guids(&first), ["guid-4", "guid-3"], "newest first");
    let d = &first.body[0];
    for field in [
        "id",
        "delivered_at",
        "redelivery",
        "duration",
        "status",
        "status_code",
        "event",
        "action",
        "installation_id",
        "repository_id",
    ] {
        assert!(d.get(field).is_some(), "{field} in {d}");
    }
    let next = link(&first.header("link").expect("Link"), "next").expect("next");
    assert!(
        next.starts_with(&format!(
            "{}/app/hook/deliveries?per_page=2&cursor=",
            sim.url()
        )),
        "{next}"
    );
    let second = call_jwt(&sim, "GET", &next, &jwt).await;
    assert_eq!(guids(&second), ["guid-2", "guid-1"]);
    assert_eq!(second.body[0]["status"], "Invalid HTTP Response: 500");
    assert_eq!(second.body[0]["status_code"], 500);
    let third = call_jwt(
        &sim,
        "GET",
        &link(&second.header("link").unwrap(), "next").unwrap(),
        &jwt,
    )
    .await;
    assert_eq!(guids(&third), ["guid-0"]);
    assert!(third.header("link").is_none());

    let failed_id = second.body[0]["id"].as_u64().unwrap();
    let detail = call_jwt(
        &sim,
        "GET",
        &format!("/app/hook/deliveries/{failed_id}"),
        &jwt,
    )
    .await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.body["request"]["payload"]["n"], 2);
    assert_eq!(
        detail.body["request"]["headers"]["X-GitHub-Event"],
        "issue_comment"
    );
    assert!(detail.body["response"].is_object());
    assert_eq!(
        call_jwt(&sim, "GET", "/app/hook/deliveries/999999", &jwt)
            .await
            .status,
        404
    );

    // Redelivery to a loopback receiver, signed with the webhook secret.
    let (url, mut received) = receiver(202).await;
    let put = client()
        .put(format!("{}/_sim/deliveries/target", sim.url()))
        .json(&json!({"url": url, "secret": "It's a Secret to Everybody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let attempt = call_jwt(
        &sim,
        "POST",
        &format!("/app/hook/deliveries/{failed_id}/attempts"),
        &jwt,
    )
    .await;
    assert_eq!(attempt.status, 202, "{}", attempt.body);
    let got = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("the receiver got the redelivery")
        .expect("a request");
    assert!(got.head.starts_with("POST /webhook "), "{}", got.head);
    assert_eq!(
        got.header("x-github-event").as_deref(),
        Some("issue_comment")
    );
    assert_eq!(got.header("x-github-delivery").as_deref(), Some("guid-2"));
    let payload: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(payload, json!({"action": "created", "n": 2}));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"It's a Secret to Everybody");
    let expected = format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, &got.body).as_ref())
    );
    assert_eq!(got.header("x-hub-signature-256"), Some(expected));

    // The redelivery is recorded, newest, with the same guid and the receiver's status.
    let list = call_jwt(&sim, "GET", "/app/hook/deliveries?per_page=1", &jwt).await;
    let newest = &list.body[0];
    assert_eq!(newest["guid"], "guid-2");
    assert_eq!(newest["redelivery"], true);
    assert_eq!(newest["status_code"], 202);
    assert_eq!(newest["status"], "OK");
    let redelivered = call_jwt(
        &sim,
        "GET",
        &format!("/app/hook/deliveries/{}", newest["id"]),
        &jwt,
    )
    .await;
    assert_eq!(redelivered.body["response"]["payload"], "ok");

    // A receiver that is gone: status_code 0, recorded too.
    sim.set_delivery_target(Some("http://127.0.0.1:9/gone"), "s")
        .unwrap();
    let attempt = call_jwt(
        &sim,
        "POST",
        &format!("/app/hook/deliveries/{failed_id}/attempts"),
        &jwt,
    )
    .await;
    assert_eq!(attempt.status, 202);
    let list = call_jwt(&sim, "GET", "/app/hook/deliveries?per_page=1", &jwt).await;
    assert_eq!(list.body[0]["status_code"], 0);
    assert_eq!(list.body[0]["redelivery"], true);
    assert_eq!(
        call_jwt(
            &sim,
            "POST",
            "/app/hook/deliveries/123456789/attempts",
            &jwt
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn sim_control_seeds_and_resets() {
    let sim = start(config());
    let c = client();
    let bad = c
        .post(format!("{}/_sim/pulls", sim.url()))
        .json(&json!({"repo": "nope", "number": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ok = c
        .post(format!("{}/_sim/pulls", sim.url()))
        .json(&json!({"repo": "o/r", "number": 1, "head_sha": "s", "head_ref": "h", "base_ref": "main"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let (token, _) = sim.issue_installation_token(1);
    assert_eq!(
        call(&sim, "GET", "/repos/o/r/pulls/1", Some(&token), None)
            .await
            .status,
        200
    );
    call(
        &sim,
        "POST",
        "/repos/o/r/issues/1/comments",
        Some(&token),
        Some(json!({"body": "x"})),
    )
    .await;
    let state = sim.snapshot();
    assert_eq!(state["comments"].as_array().unwrap().len(), 1);
    assert_eq!(state["comments"][0]["user"], "orchestrator[bot]");
    let reset = c
        .post(format!("{}/_sim/reset", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let state = sim.snapshot();
    assert!(state["comments"].as_array().unwrap().is_empty());
    assert!(state["requests"].as_array().unwrap().is_empty());
    assert_eq!(state["counts"]["requests"], 0);
    // Issued tokens are forgotten too.
    assert_eq!(
        call(&sim, "GET", "/repos/o/r/pulls/1", Some(&token), None)
            .await
            .status,
        401
    );
    let unknown = c
        .get(format!("{}/_sim/nothing", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}
