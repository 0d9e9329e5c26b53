//! The GitHub routes over real HTTP: comments and paging, reactions, check
//! runs, pull requests, rate limits, ETags and fault rules.

mod support;

use github_api_sim::GithubSimConfig;
use serde_json::json;
use support::*;

#[tokio::test]
async fn comment_crud_with_github_shapes() {
    let sim = start(config());
    let token = installation_token(&sim).await;
    let created = call(
        &sim,
        "POST",
        "/repos/acme/widgets/issues/7/comments",
        Some(&token),
        Some(json!({"body": "hello"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let c = &created.body;
    let id = c["id"].as_u64().expect("id");
    assert_eq!(c["body"], "hello");
    assert_eq!(c["user"]["login"], "orchestrator[bot]");
    assert_eq!(c["user"]["type"], "Bot");
    assert_eq!(
        c["html_url"],
        format!("https://github.com/acme/widgets/issues/7#issuecomment-{id}")
    );
    assert_eq!(
        c["url"],
        format!("{}/repos/acme/widgets/issues/comments/{id}", sim.url())
    );
    assert_eq!(
        c["issue_url"],
        format!("{}/repos/acme/widgets/issues/7", sim.url())
    );
    for field in ["node_id", "created_at", "updated_at", "author_association"] {
        assert!(c[field].is_string(), "{field} in {c}");
    }
    assert!(c["created_at"].as_str().unwrap().ends_with('Z'));

    let path = format!("/repos/acme/widgets/issues/comments/{id}");
    let got = call(&sim, "GET", &path, Some(&token), None).await;
    assert_eq!(
        (got.status, got.body["body"].clone()),
        (200, json!("hello"))
    );

    let patched = call(
        &sim,
        "PATCH",
        &path,
        Some(PAT),
        Some(json!({"body": "edited"})),
    )
    .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["body"], "edited");

    let state = sim.snapshot();
    assert_eq!(state["comments"][0]["repo"], "acme/widgets");
    assert_eq!(state["comments"][0]["issue"], 7);
    assert_eq!(state["comments"][0]["body"], "edited");

    let deleted = call(&sim, "DELETE", &path, Some(&token), None).await;
    assert_eq!(
        (deleted.status, deleted.body.clone()),
        (204, serde_json::Value::Null)
    );
    assert_eq!(
        call(&sim, "GET", &path, Some(&token), None).await.status,
        404
    );
    // Another repository's id is not found either.
    assert_eq!(
        call(
            &sim,
            "GET",
            "/repos/acme/other/issues/comments/1",
            Some(&token),
            None
        )
        .await
        .status,
        404
    );
    let too_long = "x".repeat(65_537);
    let refused = call(
        &sim,
        "POST",
        "/repos/acme/widgets/issues/7/comments",
        Some(&token),
        Some(json!({"body": too_long})),
    )
    .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["message"], "Validation Failed");
    assert_eq!(refused.body["errors"][0]["resource"], "IssueComment");
    assert_eq!(refused.body["errors"][0]["field"], "body");
    assert_eq!(
        refused.body["errors"][0]["message"],
        "body is too long (maximum is 65536 characters)"
    );
    // Exactly the maximum is fine (characters, not bytes).
    let max = "é".repeat(65_536);
    let ok = call(
        &sim,
        "POST",
        "/repos/acme/widgets/issues/7/comments",
        Some(&token),
        Some(json!({"body": max})),
    )
    .await;
    assert_eq!(ok.status, 201);
}

#[tokio::test]
async fn credentials_and_unknown_routes() {
    let sim = start(config());
    let bad =
        json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"});
    let a = call(
        &sim,
        "GET",
        "/repos/o/r/issues/1/comments",
        Some("nope"),
        None,
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, bad);
    // Reads need no credentials (as on public repositories); writes do.
    let a = call(&sim, "GET", "/repos/o/r/issues/1/comments", None, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-ratelimit-limit").as_deref(), Some("60"));
    let body = Some(json!({"body": "hi"}));
    let a = call(&sim, "POST", "/repos/o/r/issues/1/comments", None, body).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, bad);
    let a = call(&sim, "GET", "/repos/o/r/teleport", Some(PAT), None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["message"], "Not Found");
    // Static tokens do not open the App's routes.
    let a = call(&sim, "GET", "/app", Some(PAT), None).await;
    assert_eq!(a.status, 401);
    let a = call(
        &sim,
        "POST",
        "/repos/o/r/issues/1/comments",
        Some(PAT),
        None,
    )
    .await;
    assert_eq!(a.status, 422, "no body: {}", a.body);
}

#[tokio::test]
async fn comment_pages_carry_github_link_headers() {
    let sim = start(config());
    for i in 0..5 {
        let a = call(
            &sim,
            "POST",
            "/repos/o/r/issues/3/comments",
            Some(PAT),
            Some(json!({"body": format!("c{i}")})),
        )
        .await;
        assert_eq!(a.status, 201);
    }
    // A comment elsewhere is not listed.
    call(
        &sim,
        "POST",
        "/repos/o/r/issues/4/comments",
        Some(PAT),
        Some(json!({"body": "x"})),
    )
    .await;

    let first = call(
        &sim,
        "GET",
        "/repos/o/r/issues/3/comments?per_page=2",
        Some(PAT),
        None,
    )
    .await;
    assert_eq!(first.status, 200);
    let bodies = |a: &Answer| -> Vec<String> {
        a.body
            .as_array()
            .expect("array")
            .iter()
            .map(|c| c["body"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(bodies(&first), ["c0", "c1"]);
    let link_h = first.header("link").expect("Link header");
    let next = link(&link_h, "next").expect("next");
    let last = link(&link_h, "last").expect("last");
    assert_eq!(
        next,
        format!(
            "{}/repos/o/r/issues/3/comments?per_page=2&page=2",
            sim.url()
        )
    );
    assert_eq!(
        last,
        format!(
            "{}/repos/o/r/issues/3/comments?per_page=2&page=3",
            sim.url()
        )
    );
    assert!(link(&link_h, "prev").is_none());

    let second = call(&sim, "GET", &next, Some(PAT), None).await;
    assert_eq!(bodies(&second), ["c2", "c3"]);
    let l2 = second.header("link").unwrap();
    assert!(link(&l2, "prev").unwrap().ends_with("page=1"));
    assert!(link(&l2, "first").unwrap().ends_with("page=1"));

    let third = call(&sim, "GET", &last, Some(PAT), None).await;
    assert_eq!(bodies(&third), ["c4"]);
    let l3 = third.header("link").unwrap();
    assert!(link(&l3, "next").is_none() && link(&l3, "last").is_none());

    // The default page (30) holds everything: no Link.
    let all = call(&sim, "GET", "/repos/o/r/issues/3/comments", Some(PAT), None).await;
    assert_eq!(bodies(&all).len(), 5);
    assert!(all.header("link").is_none());
    // per_page is capped at 100.
    let capped = call(
        &sim,
        "GET",
        "/repos/o/r/issues/3/comments?per_page=1000",
        Some(PAT),
        None,
    )
    .await;
    assert_eq!(bodies(&capped).len(), 5);
}

#[tokio::test]
async fn reactions_are_created_once_per_user_and_content() {
    let sim = start(config());
    let token = installation_token(&sim).await;
    let c = call(
        &sim,
        "POST",
        "/repos/o/r/issues/9/comments",
        Some(&token),
        Some(json!({"body": "hi"})),
    )
    .await;
    let cid = c.body["id"].as_u64().unwrap();
    let on_comment = format!("/repos/o/r/issues/comments/{cid}/reactions");
    let first = call(
        &sim,
        "POST",
        &on_comment,
        Some(&token),
        Some(json!({"content": "eyes"})),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["content"], "eyes");
    assert_eq!(first.body["user"]["login"], "orchestrator[bot]");
    assert!(first.body["node_id"].is_string() && first.body["created_at"].is_string());
    let again = call(
        &sim,
        "POST",
        &on_comment,
        Some(&token),
        Some(json!({"content": "eyes"})),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], first.body["id"]);
    // Another user (the static token's) gets a reaction of its own.
    let other = call(
        &sim,
        "POST",
        &on_comment,
        Some(PAT),
        Some(json!({"content": "eyes"})),
    )
    .await;
    assert_eq!(other.status, 201);
    assert_eq!(other.body["user"]["login"], "orchestrator-bot");
    let bad = call(
        &sim,
        "POST",
        &on_comment,
        Some(&token),
        Some(json!({"content": "thumbsup"})),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["message"], "Validation Failed");

    let on_issue = "/repos/o/r/issues/9/reactions";
    assert_eq!(
        call(
            &sim,
            "POST",
            on_issue,
            Some(&token),
            Some(json!({"content": "rocket"}))
        )
        .await
        .status,
        201
    );
    assert_eq!(
        call(
            &sim,
            "POST",
            on_issue,
            Some(&token),
            Some(json!({"content": "rocket"}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            &sim,
            "POST",
            on_issue,
            Some(&token),
            Some(json!({"content": "+1"}))
        )
        .await
        .status,
        201
    );

    let listed = call(&sim, "GET", &on_comment, Some(&token), None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    let listed = call(&sim, "GET", on_issue, Some(&token), None).await;
    let contents: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["rocket", "+1"]);
    // Reactions to a missing comment: 404.
    assert_eq!(
        call(
            &sim,
            "POST",
            "/repos/o/r/issues/comments/999999/reactions",
            Some(&token),
            Some(json!({"content": "eyes"}))
        )
        .await
        .status,
        404
    );
    let state = sim.snapshot();
    let reactions = state["reactions"].as_array().unwrap();
    assert_eq!(reactions.len(), 4);
    assert_eq!(reactions[0]["subject"], "comment");
    assert_eq!(reactions[0]["number_or_comment_id"], cid);
    assert_eq!(reactions[0]["repo"], "o/r");
    assert_eq!(reactions[2]["subject"], "issue");
    assert_eq!(reactions[2]["number_or_comment_id"], 9);
}

#[tokio::test]
async fn check_runs_need_an_installation_token() {
    let sim = start(config());
    sim.seed_pull(json!({"repo": "o/r", "number": 5, "head_sha": "abc123", "head_ref": "feature/x", "base_ref": "main"}))
        .unwrap();
    let denied = call(
        &sim,
        "POST",
        "/repos/o/r/check-runs",
        Some(PAT),
        Some(json!({"name": "agent", "head_sha": "abc123"})),
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.body["message"],
        "You must authenticate via a GitHub App."
    );

    let token = installation_token(&sim).await;
    let missing = call(
        &sim,
        "POST",
        "/repos/o/r/check-runs",
        Some(&token),
        Some(json!({"name": "agent"})),
    )
    .await;
    assert_eq!(missing.status, 422);
    let no_conclusion = call(
        &sim,
        "POST",
        "/repos/o/r/check-runs",
        Some(&token),
        Some(json!({"name": "agent", "head_sha": "abc123", "status": "completed"})),
    )
    .await;
    assert_eq!(no_conclusion.status, 422);
    let bad_status = call(
        &sim,
        "POST",
        "/repos/o/r/check-runs",
        Some(&token),
        Some(json!({"name": "agent", "head_sha": "abc123", "status": "running"})),
    )
    .await;
    assert_eq!(bad_status.status, 422);

    let created = call(
        &sim,
        "POST",
        "/repos/o/r/check-runs",
        Some(&token),
        Some(json!({"name": "agent", "head_sha": "abc123", "status": "in_progress", "external_id": "job-1",
                    "details_url": "https://example.test/jobs/1", "output": {"title": "Running", "summary": "started"}})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_u64().unwrap();
    assert_eq!(created.body["status"], "in_progress");
    assert_eq!(created.body["conclusion"], serde_json::Value::Null);
    assert_eq!(created.body["output"]["title"], "Running");
    assert_eq!(created.body["pull_requests"][0]["number"], 5);
    let path = format!("/repos/o/r/check-runs/{id}");
    let static_update = call(
        &sim,
        "PATCH",
        &path,
        Some(PAT),
        Some(json!({"status": "completed", "conclusion": "success"})),
    )
    .await;
    assert_eq!(static_update.status, 403);
    let done = call(&sim, "PATCH", &path, Some(&token), Some(json!({"conclusion": "success", "output": {"title": "Done", "summary": "ok", "text": "all good"}}))).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["status"], "completed");
    assert_eq!(done.body["conclusion"], "success");
    assert!(done.body["completed_at"].is_string());
    // Reading is open to any token.
    let got = call(&sim, "GET", &path, Some(PAT), None).await;
    assert_eq!(got.body["output"]["text"], "all good");

    let second = call(
        &sim,
        "POST",
        "/repos/o/r/check-runs",
        Some(&token),
        Some(json!({"name": "lint", "head_sha": "abc123"})),
    )
    .await;
    assert_eq!(second.body["status"], "queued");
    for r in ["abc123", "feature%2Fx"] {
        let listed = call(
            &sim,
            "GET",
            &format!("/repos/o/r/commits/{r}/check-runs"),
            Some(PAT),
            None,
        )
        .await;
        assert_eq!(listed.status, 200);
        assert_eq!(listed.body["total_count"], 2, "{r}: {}", listed.body);
        assert_eq!(listed.body["check_runs"].as_array().unwrap().len(), 2);
    }
    let named = call(
        &sim,
        "GET",
        "/repos/o/r/commits/abc123/check-runs?check_name=agent",
        Some(PAT),
        None,
    )
    .await;
    assert_eq!(named.body["total_count"], 1);
    assert_eq!(named.body["check_runs"][0]["id"], id);
    let none = call(
        &sim,
        "GET",
        "/repos/o/r/commits/fff/check-runs",
        Some(PAT),
        None,
    )
    .await;
    assert_eq!(none.body, json!({"total_count": 0, "check_runs": []}));
    assert_eq!(sim.snapshot()["check_runs"].as_array().unwrap().len(), 2);

    let pr = call(&sim, "GET", "/repos/o/r/pulls/5", Some(PAT), None).await;
    assert_eq!(pr.status, 200);
    assert_eq!(pr.body["number"], 5);
    assert_eq!(pr.body["state"], "open");
    assert_eq!(pr.body["head"]["sha"], "abc123");
    assert_eq!(pr.body["head"]["ref"], "feature/x");
    assert_eq!(pr.body["base"]["ref"], "main");
    assert_eq!(pr.body["html_url"], "https://github.com/o/r/pull/5");
    assert_eq!(
        call(&sim, "GET", "/repos/o/r/pulls/6", Some(PAT), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn rate_limit_headers_count_down_to_a_403() {
    let sim = start(GithubSimConfig {
        rate_limit_per_hour: 3,
        ..config()
    });
    let path = "/repos/o/r/issues/1/comments";
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let a = call(&sim, "GET", path, Some(PAT), None).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(a.header("x-ratelimit-resource").as_deref(), Some("core"));
        let reset: i64 = a.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > now() && reset <= now() + 3601);
        remaining.push(a.header("x-ratelimit-remaining").unwrap());
        assert_eq!(
            a.header("x-ratelimit-used").unwrap(),
            (3 - remaining.last().unwrap().parse::<u32>().unwrap()).to_string()
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let over = call(&sim, "GET", path, Some(PAT), None).await;
    assert_eq!(over.status, 403);
    assert_eq!(over.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(over.body["message"]
        .as_str()
        .unwrap()
        .starts_with("API rate limit exceeded for "));
    assert!(over.body["documentation_url"].is_string());

    // Installations have buckets of their own, named in the message.
    let token = installation_token(&sim).await;
    for _ in 0..3 {
        assert_eq!(
            call(&sim, "GET", path, Some(&token), None).await.status,
            200
        );
    }
    let over = call(&sim, "GET", path, Some(&token), None).await;
    assert_eq!(over.status, 403);
    assert_eq!(
        over.body["message"],
        "API rate limit exceeded for installation ID 1."
    );
    // Refused credentials get answers without rate-limit headers.
    let refused = call(&sim, "GET", path, Some("nope"), None).await;
    assert_eq!(refused.status, 401);
    assert!(refused.header("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn etags_answer_304_without_spending_the_rate_limit() {
    let sim = start(config());
    call(
        &sim,
        "POST",
        "/repos/o/r/issues/2/comments",
        Some(PAT),
        Some(json!({"body": "a"})),
    )
    .await;
    let path = "/repos/o/r/issues/2/comments";
    let first = call(&sim, "GET", path, Some(PAT), None).await;
    let etag = first.header("etag").expect("ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let used = first.header("x-ratelimit-used").unwrap();
    let cached = call_with(
        &sim,
        "GET",
        path,
        Some(PAT),
        None,
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(cached.status, 304);
    assert_eq!(cached.body, serde_json::Value::Null);
    assert_eq!(cached.header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(
        cached.header("x-ratelimit-used").unwrap(),
        used,
        "a 304 is free"
    );
    let weak = call_with(
        &sim,
        "GET",
        path,
        Some(PAT),
        None,
        &[("If-None-Match", &format!("W/{etag}"))],
    )
    .await;
    assert_eq!(weak.status, 304);
    // A change changes the ETag.
    call(&sim, "POST", path, Some(PAT), Some(json!({"body": "b"}))).await;
    let changed = call_with(
        &sim,
        "GET",
        path,
        Some(PAT),
        None,
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag").unwrap(), etag);
    assert_eq!(
        changed
            .header("x-ratelimit-used")
            .unwrap()
            .parse::<u32>()
            .unwrap(),
        used.parse::<u32>().unwrap() + 2
    );
}

#[tokio::test]
async fn fault_rules_apply_in_order_and_count_down() {
    let sim = start(config());
    let token = installation_token(&sim).await;
    let c = call(
        &sim,
        "POST",
        "/repos/o/r/issues/1/comments",
        Some(&token),
        Some(json!({"body": "x"})),
    )
    .await;
    let comment = format!("/repos/o/r/issues/comments/{}", c.body["id"]);
    let put = client()
        .put(format!("{}/_sim/faults", sim.url()))
        .json(&json!({"rules": [
            {"method": "PATCH", "path": "/issues/comments/", "status": 403, "times": 2,
             "headers": {"Retry-After": "2"},
             "body": {"message": "You have exceeded a secondary rate limit."}},
            {"method": "GET", "path": "^/repos/o/r/pulls/", "status": 502, "times": null}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    for _ in 0..2 {
        let a = call(
            &sim,
            "PATCH",
            &comment,
            Some(&token),
            Some(json!({"body": "y"})),
        )
        .await;
        assert_eq!(a.status, 403);
        assert_eq!(a.header("retry-after").as_deref(), Some("2"));
        assert_eq!(
            a.body["message"],
            "You have exceeded a secondary rate limit."
        );
    }
    let a = call(
        &sim,
        "PATCH",
        &comment,
        Some(&token),
        Some(json!({"body": "y"})),
    )
    .await;
    assert_eq!(a.status, 200, "the rule ran out: {}", a.body);
    // GET of the comment never matched the PATCH rule.
    assert_eq!(
        call(&sim, "GET", &comment, Some(&token), None).await.status,
        200
    );
    for _ in 0..3 {
        assert_eq!(
            call(&sim, "GET", "/repos/o/r/pulls/1", Some(&token), None)
                .await
                .status,
            502
        );
    }
    // The in-process helpers: the secondary rate limit once, then the API down.
    sim.set_faults(github_api_sim::faults::secondary_rate_limit(
        None,
        Some(1),
        7,
    ))
    .unwrap();
    let a = call(&sim, "GET", &comment, Some(&token), None).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.header("retry-after").as_deref(), Some("7"));
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .starts_with("You have exceeded a secondary rate limit"));
    assert_eq!(
        call(&sim, "GET", &comment, Some(&token), None).await.status,
        200
    );
    sim.set_faults(github_api_sim::faults::api_down()).unwrap();
    assert_eq!(
        call(&sim, "GET", &comment, Some(&token), None).await.status,
        503
    );
    assert_eq!(
        call(&sim, "GET", &comment, Some(&token), None).await.status,
        503
    );
    let del = client()
        .delete(format!("{}/_sim/faults", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert_eq!(
        call(&sim, "GET", &comment, Some(&token), None).await.status,
        200
    );
    // A rule that only delays, then the request is handled.
    sim.set_faults(json!({"rules": [{"path": "comments", "delay_ms": 150, "times": 1}]}))
        .unwrap();
    let t = std::time::Instant::now();
    assert_eq!(
        call(&sim, "GET", &comment, Some(&token), None).await.status,
        200
    );
    assert!(t.elapsed() >= std::time::Duration::from_millis(150));
    // Invalid rules are refused whole.
    let bad = client()
        .put(format!("{}/_sim/faults", sim.url()))
        .json(&json!({"rules": [{"status": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The request log saw every answer, faults included.
    let state: serde_json::Value = client()
        .get(format!("{}/_sim/state", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<u64> = state["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "PATCH")
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [403, 403, 200]);
    assert_eq!(state["counts"]["installation_tokens"], 1);
    assert_eq!(state["counts"]["jwt_requests"], 1);
    assert_eq!(
        state["counts"]["requests"].as_u64().unwrap() as usize,
        state["requests"].as_array().unwrap().len()
    );
}
