//! Helpers shared by the task-API, PM Agent, Grafana and OpenAPI tests, on
//! top of `tests/common` (which starts the service): API tokens, requests
//! with arbitrary method, headers and bearer token, and bounded waits on a
//! Job's state as the operator API reports it.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use crate::common::{bounded, wait_for, TestApp, WAIT};

/// The PM Agent's bearer token in every test app of these suites.
pub const PM_TOKEN: &str = "pm-agent-token-0123456789abcdef";
/// The CLI's bearer token.
pub const CLI_TOKEN: &str = "cli-token-0123456789abcdef";
/// `API_TOKENS` holding both.
pub const API_TOKENS: &str =
    "pm-agent=pm-agent-token-0123456789abcdef,cli=cli-token-0123456789abcdef";
/// A read-only token.
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
/// `API_TOKENS` holding the PM Agent's, the CLI's and a viewer token.
pub const API_TOKENS_WITH_VIEWER: &str = "pm-agent=pm-agent-token-0123456789abcdef,cli=cli-token-0123456789abcdef,viewer=viewer-token-0123456789abcdef";

/// One answer of the service.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    pub text: String,
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub json: Value,
}

impl Reply {
    /// Panics unless the answer has `status` and a JSON object body.
    pub fn expect(&self, status: u16, what: &str) -> &Value {
        assert_eq!(self.status, status, "{what}: {}", self.text);
        self.expect_json(what);
        &self.json
    }

    /// Panics unless the body is a JSON object served as application/json.
    pub fn expect_json(&self, what: &str) {
        assert!(
            self.content_type.starts_with("application/json"),
            "{what}: content type {:?} of {} {}",
            self.content_type,
            self.status,
            self.text
        );
        assert!(
            self.json.is_object() || self.json.is_array(),
            "{what}: a JSON body: {}",
            self.text
        );
    }

    /// The names in a 422 body's `fields`.
    pub fn bad_fields(&self) -> Vec<String> {
        self.json["fields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["field"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A request under construction.
pub struct Call<'a> {
    app: &'a TestApp,
    req: reqwest::RequestBuilder,
}

impl Call<'_> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.req = self.req.header(name, value);
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body.
    pub fn json(mut self, body: &Value) -> Self {
        self.req = self.req.json(body);
        self
    }

    /// A raw body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.req = self.req.body(body);
        self
    }

    /// Sends the request and reads the whole answer.
    pub async fn send(self) -> Reply {
        let _ = self.app;
        let resp = bounded("an HTTP answer", WAIT, self.req.send())
            .await
            .expect("the request is answered");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = bounded("the response body", WAIT, resp.text())
            .await
            .unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            retry_after,
            text,
            json,
        }
    }
}

/// Starts a request `method path` on `app`.
pub fn call<'a>(app: &'a TestApp, method: &str, path: &str) -> Call<'a> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let req = app.http.request(method, format!("{}{path}", app.address));
    Call { app, req }
}

/// `POST /api/v1/tasks` with the CLI token and optional Idempotency-Key.
pub async fn submit_task(app: &TestApp, body: &Value, key: Option<&str>) -> Reply {
    let mut c = call(app, "POST", "/api/v1/tasks")
        .token(CLI_TOKEN)
        .json(body);
    if let Some(k) = key {
        c = c.header("idempotency-key", k);
    }
    c.send().await
}

/// A valid generic task on `repo`.
pub fn task(title: &str, repo: &str) -> Value {
    serde_json::json!({
        "title": title,
        "prompt": format!("Do {title}"),
        "repository": repo,
    })
}

/// `GET /api/v1/jobs/{name}` with the CLI token.
pub async fn get_job(app: &TestApp, name: &str) -> Reply {
    call(app, "GET", &format!("/api/v1/jobs/{name}"))
        .token(CLI_TOKEN)
        .send()
        .await
}

/// The state the operator API reports for Job `name` ("" if it has none).
pub async fn api_state(app: &TestApp, name: &str) -> String {
    get_job(app, name).await.json["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits (at most `limit`) until the operator API reports `state` for `name`.
pub async fn wait_state(app: &TestApp, name: &str, state: &str, limit: Duration) -> Value {
    wait_for(&format!("job {name} to be {state}"), limit, || async {
        let r = get_job(app, name).await;
        (r.status == 200 && r.json["state"] == state).then_some(r.json)
    })
    .await
}

/// The job name of a 202/200 submit answer.
pub fn job_of(r: &Reply) -> String {
    r.json["job"]
        .as_str()
        .unwrap_or_else(|| panic!("a job in {}", r.text))
        .to_string()
}

/// One alert of a Grafana webhook body (`version: "1"`), as
/// grafana/alerting's `webhookMessage` encodes it.
pub fn grafana_alert(status: &str, fingerprint: &str, labels: Value, starts_at: &str) -> Value {
    let ends_at = if status == "resolved" {
        "2025-06-01T12:30:00Z"
    } else {
        "0001-01-01T00:00:00Z"
    };
    serde_json::json!({
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": "Error rate above 5% for 10 minutes",
            "description": "The checkout service returns 5xx for 7% of requests.",
            "runbook_url": "https://runbooks.example.com/high-error-rate"
        },
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "https://grafana.example.com/alerting/grafana/abc/view?orgId=1",
        "fingerprint": fingerprint,
        "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana",
        "dashboardURL": "https://grafana.example.com/d/checkout?orgId=1",
        "panelURL": "https://grafana.example.com/d/checkout?orgId=1&viewPanel=2",
        "values": {"B": 7.1, "C": 1},
        "valueString": "[ var='B' labels={} value=7.1 ], [ var='C' labels={} value=1 ]"
    })
}

/// A Grafana webhook body (`version: "1"`) around `alerts`.
pub fn grafana_body(status: &str, alerts: Vec<Value>) -> Value {
    let state = if status == "resolved" {
        "ok"
    } else {
        "alerting"
    };
    serde_json::json!({
        "receiver": "orchestrator",
        "status": status,
        "orgId": 1,
        "alerts": alerts,
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {},
        "externalURL": "https://grafana.example.com/",
        "version": "1",
        "groupKey": "{}/{__grafana_autogenerated__=\"true\"}:{alertname=\"HighErrorRate\"}",
        "truncatedAlerts": 0,
        "title": format!("[{}] HighErrorRate", status.to_uppercase()),
        "state": state,
        "message": "**Firing**\n\nValue: B=7.1\nLabels:\n - alertname = HighErrorRate\n"
    })
}

/// Labels of an alert on `repository` with `severity`.
pub fn alert_labels(alertname: &str, severity: &str, repository: &str) -> Value {
    serde_json::json!({
        "alertname": alertname,
        "severity": severity,
        "repository": repository,
        "grafana_folder": "Checkout"
    })
}
