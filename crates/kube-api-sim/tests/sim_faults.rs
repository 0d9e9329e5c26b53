//! Fault injection in the embedded API server, observed from the outside: the
//! real `kube` client and raw HTTP see each fault as a real API server would
//! show it. Faults are driven through the `/_sim/` admin endpoint and through
//! `SimConfig.faults`.

mod sim_support;

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams};
use kube::Api;
use kube_api_sim::faults::FaultSpec;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};
use sim_support::*;

#[tokio::test]
async fn added_latency_delays_each_request_by_at_least_the_fixed_latency() {
    let server = start(FaultSpec {
        latency_ms: 300,
        jitter_ms: 100,
        ..Default::default()
    });
    let jobs: Api<Job> = Api::default_namespaced(server.client().await.expect("client"));
    let t = Instant::now();
    bounded("list", jobs.list(&ListParams::default()))
        .await
        .expect("list");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "took {:?}",
        t.elapsed()
    );

    set_faults(&server, json!({"latency_ms": 500, "jitter_ms": 50})).await;
    let t = Instant::now();
    bounded("create", jobs.create(&PostParams::default(), &job("slow")))
        .await
        .expect("create");
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_latency_rule_delays_only_the_matching_resource() {
    let server = start(FaultSpec::default());
    let client = server.client().await.expect("client");
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    // A minute on Jobs: a ConfigMap call that returns at all was spared.
    set_faults(
        &server,
        json!({"latency_rules": [{"resource": "jobs", "ms": 60_000}]}),
    )
    .await;
    bounded("list configmaps", cms.list(&ListParams::default()))
        .await
        .expect("list configmaps");
    let lp = ListParams::default();
    let slow = tokio::time::timeout(Duration::from_millis(300), jobs.list(&lp));
    assert!(slow.await.is_err(), "the Jobs list was not delayed");
    // A short rule on one verb: at least that long.
    set_faults(
        &server,
        json!({"latency_rules": [{"verb": "create", "resource": "configmaps", "ms": 400}]}),
    )
    .await;
    let t = Instant::now();
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("slow".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    bounded("create", cms.create(&PostParams::default(), &cm))
        .await
        .expect("create");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "took {:?}",
        t.elapsed()
    );
    bounded("list jobs", jobs.list(&ListParams::default()))
        .await
        .expect("jobs are no longer delayed");
}

#[tokio::test]
async fn error_rate_one_on_create_jobs_fails_with_the_chosen_status_and_spares_other_verbs_and_resources(
) {
    let server = start(FaultSpec::default());
    let client = client_without_retry(&server).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    for (status, reason) in [
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (429, "TooManyRequests"),
    ] {
        set_faults(
            &server,
            json!({"errors": [{"verb": "create", "resource": "jobs", "rate": 1.0, "status": status, "retry_after": 2}]}),
        )
        .await;
        let r = bounded(
            "create job",
            jobs.create(&PostParams::default(), &job("doomed")),
        )
        .await;
        assert_eq!(api_error(r), (status, reason.to_string()));

        let raw = bounded(
            "raw create",
            reqwest::Client::new()
                .post(jobs_url(&server))
                .json(&job("doomed"))
                .send(),
        )
        .await
        .expect("raw create");
        assert_eq!(raw.status().as_u16(), status);
        let retry_after = raw
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(retry_after.as_deref(), Some("2"), "Retry-After on {status}");
        let body: Value = bounded("body", raw.json()).await.expect("Status body");
        assert_eq!(
            (body["kind"].as_str(), body["code"].as_u64()),
            (Some("Status"), Some(status as u64))
        );

        bounded("list jobs", jobs.list(&ListParams::default()))
            .await
            .expect("list jobs is not affected");
        let name = format!("cm-{status}");
        bounded(
            "create cm",
            cms.create(&PostParams::default(), &config_map(&name)),
        )
        .await
        .expect("create configmaps is not affected");
    }
    let (_, faults) = admin(reqwest::Method::DELETE, &server, "/_sim/faults", None).await;
    assert_eq!(faults["errors"], json!([]));
    bounded(
        "create job",
        jobs.create(&PostParams::default(), &job("fine")),
    )
    .await
    .expect("create after clearing faults");
}

#[tokio::test]
async fn a_429_without_explicit_retry_after_still_carries_a_retry_after_header() {
    let server = start(FaultSpec {
        errors: vec![
            serde_json::from_value(json!({"verb": "list", "rate": 1.0, "status": 429}))
                .expect("rule"),
        ],
        ..Default::default()
    });
    let resp = bounded("list", reqwest::Client::new().get(jobs_url(&server)).send())
        .await
        .expect("list");
    assert_eq!(resp.status().as_u16(), 429);
    let ra = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(ra.is_some_and(|s| s >= 1), "Retry-After: {ra:?}");
}

#[tokio::test]
async fn closing_watch_streams_after_n_seconds_ends_raw_watches_after_about_n_seconds() {
    let server = start(FaultSpec::default());
    let http = reqwest::Client::new();
    let watch = |rv: &str| {
        http.get(format!(
            "{}?watch=true&resourceVersion={rv}",
            jobs_url(&server)
        ))
        .send()
    };
    // One watch opened before the fault is set, one after: each ends about
    // one second after it opened (not before, and well before twice that).
    let early_opened = Instant::now();
    let early = bounded("watch", watch("")).await.expect("watch");
    set_faults(&server, json!({"watch_close_after_seconds": 1.0})).await;
    let late_opened = Instant::now();
    let late = bounded("watch", watch("0")).await.expect("watch");
    let until_closed = |resp: reqwest::Response, opened: Instant| async move {
        assert_eq!(resp.status().as_u16(), 200);
        let events = read_lines(resp).await;
        assert!(
            events.is_empty(),
            "no events on an empty collection: {events:?}"
        );
        opened.elapsed()
    };
    let (early, late) = futures::join!(
        until_closed(early, early_opened),
        until_closed(late, late_opened)
    );
    for (which, took) in [("opened before", early), ("opened after", late)] {
        assert!(
            (Duration::from_millis(900)..Duration::from_millis(1900)).contains(&took),
            "the watch {which} the fault was set closed after {took:?}, not about 1 s"
        );
    }
}

#[tokio::test]
async fn compaction_turns_a_watch_from_an_old_resource_version_into_a_410_expired_error_event() {
    let server = start(FaultSpec::default());
    let jobs: Api<Job> = Api::default_namespaced(server.client().await.expect("client"));
    let first = bounded("create", jobs.create(&PostParams::default(), &job("a")))
        .await
        .expect("create");
    let old_rv = first.metadata.resource_version.expect("rv");
    bounded("create", jobs.create(&PostParams::default(), &job("b")))
        .await
        .expect("create");
    for (n, how) in ["POST /_sim/compact", "PUT /_sim/faults compact"]
        .into_iter()
        .enumerate()
    {
        if how.starts_with("POST") {
            sim_support::compact(&server).await;
        } else {
            set_faults(&server, json!({"compact": true})).await;
        }
        let url = format!("{}?watch=true&resourceVersion={old_rv}", jobs_url(&server));
        let resp = bounded("watch", reqwest::Client::new().get(url).send())
            .await
            .expect("watch");
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{how}: an expired watch is a 200 stream"
        );
        let events = read_lines(resp).await;
        assert_eq!(events.len(), 1, "{how}: exactly one event: {events:?}");
        let (ev, obj) = (&events[0], &events[0]["object"]);
        assert_eq!(ev["type"], "ERROR");
        assert_eq!(
            (obj["kind"].as_str(), obj["code"].as_u64()),
            (Some("Status"), Some(410))
        );
        assert_eq!(obj["reason"], "Expired");
        // Counted in the stats: the request as a 200, its event as a 410.
        let stats = sim_support::stats(&server).await;
        let expired: u64 = stats["stream_errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["verb"] == "watch" && r["resource"] == "jobs" && r["code"] == 410)
            .filter_map(|r| r["count"].as_u64())
            .sum();
        assert_eq!(expired, n as u64 + 1, "{how}: {stats}");
        bounded(
            "create",
            jobs.create(&PostParams::default(), &job(&format!("c{}", how.len()))),
        )
        .await
        .expect("create");
    }
}

#[tokio::test]
async fn compaction_makes_a_list_continue_token_from_before_it_answer_410_expired() {
    let server = start(FaultSpec::default());
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().await.expect("client"));
    for i in 0..3 {
        bounded(
            "create",
            cms.create(&PostParams::default(), &config_map(&format!("p{i}"))),
        )
        .await
        .expect("create");
    }
    let page = bounded("list", cms.list(&ListParams::default().limit(1)))
        .await
        .expect("page 1");
    let token = page.metadata.continue_.expect("a continue token");
    let still_fine = bounded(
        "list",
        cms.list(&ListParams::default().limit(1).continue_token(&token)),
    )
    .await;
    assert!(
        still_fine.is_ok(),
        "the token works before compaction: {still_fine:?}"
    );
    bounded(
        "create",
        cms.create(&PostParams::default(), &config_map("later")),
    )
    .await
    .expect("create");
    compact(&server).await;
    let r = bounded(
        "list",
        cms.list(&ListParams::default().limit(1).continue_token(&token)),
    )
    .await;
    assert_eq!(api_error(r), (410, "Expired".to_string()));
}

#[tokio::test]
async fn an_api_server_that_is_down_answers_every_request_503_and_then_serves_normally_again() {
    let server = start(FaultSpec {
        down_for_seconds: Some(1.0),
        ..Default::default()
    });
    let client = client_without_retry(&server).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let r = bounded("list", jobs.list(&ListParams::default())).await;
    assert_eq!(
        api_error(r),
        (503, "ServiceUnavailable".to_string()),
        "down from the start"
    );
    bounded("recovery", async {
        while jobs.list(&ListParams::default()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    set_faults(&server, json!({"down_for_seconds": 1.5})).await;
    let http = reqwest::Client::new();
    let r = bounded("create", jobs.create(&PostParams::default(), &job("x"))).await;
    assert_eq!(api_error(r).0, 503);
    for path in [
        "/version",
        "/apis/batch/v1",
        "/api/v1/namespaces/default/configmaps",
    ] {
        let resp = bounded(path, http.get(format!("{}{path}", server.url())).send())
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 503, "{path} while down");
    }
    let watch = bounded(
        "watch",
        http.get(format!("{}?watch=true", jobs_url(&server))).send(),
    )
    .await
    .expect("watch");
    assert_eq!(watch.status().as_u16(), 503, "watch while down");

    // kube's default client retries 503 with backoff, so it rides out the outage.
    let retrying: Api<Job> = Api::default_namespaced(server.client().await.expect("client"));
    let created = bounded(
        "create through the outage",
        retrying.create(&PostParams::default(), &job("y")),
    )
    .await;
    assert!(created.is_ok(), "{created:?}");
    bounded("list", jobs.list(&ListParams::default()))
        .await
        .expect("normal again");
}

#[tokio::test]
async fn stats_count_requests_per_verb_resource_and_status_and_report_open_watches() {
    let server = start(FaultSpec::default());
    let client = client_without_retry(&server).await;
    let jobs: Api<Job> = Api::default_namespaced(client);
    bounded("create", jobs.create(&PostParams::default(), &job("s")))
        .await
        .expect("create");
    let dup = bounded("create", jobs.create(&PostParams::default(), &job("s"))).await;
    assert_eq!(api_error(dup).0, 409);
    for _ in 0..3 {
        bounded("get", jobs.get("s")).await.expect("get");
    }
    let missing = bounded("get", jobs.get("nope")).await;
    assert_eq!(api_error(missing).0, 404);

    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..3 {
        let url = format!("{}?watch=true&resourceVersion=0", jobs_url(&server));
        open.push(bounded("watch", http.get(url).send()).await.expect("watch"));
    }
    let stats = sim_support::stats(&server).await;
    assert_eq!(stats["simulated"], true);
    assert_eq!(count(&stats, "create", "jobs", 201), 1, "{stats}");
    assert_eq!(count(&stats, "create", "jobs", 409), 1);
    assert_eq!(count(&stats, "get", "jobs", 200), 3);
    assert_eq!(count(&stats, "get", "jobs", 404), 1);
    assert_eq!(stats["open_watches"], 3, "{stats}");

    drop(open);
    bounded("open watches to drop", async {
        loop {
            let stats = sim_support::stats(&server).await;
            if stats["open_watches"].as_u64() == Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn invalid_fault_specs_are_rejected_with_400_and_a_json_error() {
    let server = start(FaultSpec::default());
    for bad in [
        json!({"errors": [{"verb": "create", "rate": 2.0, "status": 503}]}),
        json!({"latency_ms": 10, "explode": true}),
        json!({"errors": [{"rate": 0.5, "status": 200}]}),
        json!({"down_for_seconds": -1}),
        json!({"watch_close_after_seconds": 0}),
    ] {
        let (code, body) = admin(
            reqwest::Method::PUT,
            &server,
            "/_sim/faults",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(code, 400, "{bad} → {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad} → {body}"
        );
    }
    let (_, active) = admin(reqwest::Method::GET, &server, "/_sim/faults", None).await;
    assert_eq!(
        active["errors"],
        json!([]),
        "a rejected spec changes nothing: {active}"
    );
    assert!(SimServer::start_local(SimConfig {
        faults: serde_json::from_value(json!({"errors": [{"rate": 1.5}]})).expect("spec"),
        ..SimConfig::default()
    })
    .is_err());
}

#[tokio::test]
async fn stats_show_a_request_in_flight_until_it_is_answered() {
    let server = start(FaultSpec::default());
    let jobs: Api<Job> = Api::default_namespaced(client_without_retry(&server).await);
    set_faults(&server, json!({"latency_ms": 1000})).await;
    let in_flight = |stats: &Value| -> Vec<(String, String, u64)> {
        stats["in_flight"]
            .as_array()
            .expect("in_flight")
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                (s("verb"), s("resource"), f["count"].as_u64().unwrap_or(0))
            })
            .collect()
    };
    let create = tokio::spawn({
        let jobs = jobs.clone();
        async move { jobs.create(&PostParams::default(), &job("slow")).await }
    });
    let seen = bounded("the create to be in flight", async {
        loop {
            let stats = stats(&server).await;
            if !in_flight(&stats).is_empty() {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        in_flight(&seen),
        [("create".into(), "jobs".into(), 1)],
        "{seen}"
    );
    assert_eq!(
        count(&seen, "create", "jobs", 201),
        0,
        "not yet answered: {seen}"
    );
    bounded("the create", create)
        .await
        .expect("the create task")
        .expect("create");
    let after = stats(&server).await;
    assert_eq!(in_flight(&after), [], "{after}");
    assert_eq!(count(&after, "create", "jobs", 201), 1, "{after}");
}
