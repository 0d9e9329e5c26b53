//! A real Prometheus scrapes the service: Debian's `prometheus` server (2.42,
//! installed by `.ci/run`) runs on loopback with a 1 s scrape of a service
//! that has handled real traffic; the test waits for `up == 1` and then asks
//! Prometheus' HTTP API which `orchestrator_*` series it stored, so the
//! exposition is checked by the parser that matters (OpenMetrics): decisions,
//! Kubernetes calls, actors (mailbox, handling time, restarts, overflow),
//! Job states, queue-wait and run-time histograms, HTTP requests by route and
//! status class, leadership and build info.

mod common;
#[path = "../crates/kube-api-sim/tests/tool_support/mod.rs"]
mod tool_support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Series every deployment's dashboards and alerts rely on.
const REQUIRED: &[&str] = &[
    "orchestrator_build_info",
    "orchestrator_webhook_decisions_total",
    "orchestrator_kube_requests_total",
    "orchestrator_kube_request_seconds_bucket",
    "orchestrator_jobs",
    "orchestrator_jobs_admitted_total",
    "orchestrator_http_requests_total",
    "orchestrator_http_request_seconds_bucket",
    "orchestrator_queue_wait_seconds_bucket",
    "orchestrator_job_run_seconds_bucket",
    "orchestrator_actor_mailbox_depth",
    "orchestrator_actor_messages_total",
    "orchestrator_actor_handling_seconds_bucket",
    "orchestrator_actor_mailbox_overflow_total",
    "orchestrator_actor_restarts_total",
    "orchestrator_leader",
    "orchestrator_leader_transitions_total",
    "orchestrator_dedup_record_keys",
];

fn prometheus_binary() -> PathBuf {
    tool_support::tool("prometheus")
}

/// Stops Prometheus when the test ends.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn query(http: &reqwest::Client, base: &str, q: &str) -> Option<Vec<Value>> {
    let r = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn prometheus_scrapes_the_service_and_stores_every_required_series() {
    let app = spawn_app(&[]).await;
    // Real traffic: a routed issue that becomes a Job and completes, an
    // ignored delivery, an unknown route.
    let answer = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(11)))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let job = answer.job().expect("a Job");
    app.wait_complete(&job, WAIT).await;
    let ignored = app
        .deliver("star", &delivery_id(), b"{\"action\":\"created\"}".to_vec())
        .await;
    assert_eq!(
        (ignored.status, ignored.status_field()),
        (202, "ignored"),
        "{}",
        ignored.text
    );
    assert_eq!(app.get("/no/such/route").await.status, 404);

    let dir = tempfile::tempdir().expect("tempdir");
    let target = app.address.trim_start_matches("http://").to_string();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: orchestrator\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("config");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let _prom = Prometheus(
        Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    let show_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let up = bounded(
        "Prometheus to report up == 1",
        Duration::from_secs(60),
        async {
            loop {
                if let Some(r) = query(&http, &base, "up{job=\"orchestrator\"}").await {
                    if let Some(v) = r.first().and_then(|s| s["value"][1].as_str()) {
                        if v == "1" {
                            return v.to_string();
                        }
                        // A failed scrape says why on the targets page.
                        let t: Value = http
                            .get(format!("{base}/api/v1/targets"))
                            .send()
                            .await
                            .expect("targets")
                            .json()
                            .await
                            .expect("targets JSON");
                        panic!(
                            "scrape failed: {} (log: {})",
                            t["data"]["activeTargets"][0]["lastError"],
                            show_log()
                        );
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    )
    .await;
    assert_eq!(up, "1");

    let names: BTreeSet<String> = query(
        &http,
        &base,
        "count by (__name__) ({__name__=~\"orchestrator_.+\"})",
    )
    .await
    .expect("series query")
    .iter()
    .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_string))
    .collect();
    let missing: Vec<&&str> = REQUIRED.iter().filter(|n| !names.contains(**n)).collect();
    assert!(
        missing.is_empty(),
        "missing series {missing:?}; stored: {names:?}"
    );

    let info = query(&http, &base, "orchestrator_build_info")
        .await
        .expect("build_info");
    let labels = &info[0]["metric"];
    assert_eq!(labels["version"], env!("CARGO_PKG_VERSION"), "{labels}");
    assert!(
        labels["git_sha"].as_str().is_some_and(|s| !s.is_empty()),
        "{labels}"
    );
    let by_class = query(
        &http,
        &base,
        "orchestrator_http_requests_total{route=\"/webhook/github\",status_class=\"2xx\"}",
    )
    .await
    .expect("http requests");
    assert!(
        !by_class.is_empty(),
        "webhook 2xx requests by route and status class"
    );
}
