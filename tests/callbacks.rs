//! Black-box tests of task callbacks (`callback_url` on `POST /api/v1/tasks`
//! and `POST /api/v1/pm/tasks`): the real service on the simulator, a
//! loopback receiver started here that records each request and can be
//! told to fail the first N. Signed events arrive in order, each until
//! acknowledged; a host not on `CALLBACK_ALLOWED_HOSTS` is a 422; a listed
//! name that resolves to an unlisted internal address is never called.

mod api_support;
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_support::*;
use common::exposition::Exposition;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CALLBACK_SECRET: &str = "callback-secret-0123456789";

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1: answers `500` to the first
/// `fail_first` requests, then `200`; one request per connection.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    /// Events of this state are answered `500` while it is set.
    refuse: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let refuse: Arc<Mutex<Option<String>>> = Arc::default();
        let seen = got.clone();
        let refusing = refuse.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                let refusing = refusing.clone();
                tokio::spawn(async move {
                    let Some((headers, body)) = read_request(&mut conn).await else {
                        return;
                    };
                    let answered = {
                        let mut seen = seen.lock().unwrap();
                        let state = serde_json::from_slice::<Value>(&body).unwrap_or_default()
                            ["state"]
                            .as_str()
                            .map(str::to_string);
                        let refused = {
                            let r = refusing.lock().unwrap();
                            r.is_some() && *r == state
                        };
                        let status = if seen.len() < fail_first || refused {
                            500
                        } else {
                            200
                        };
                        seen.push(Received {
                            headers,
                            body,
                            answered: status,
                        });
                        status
                    };
                    let reply = format!(
                        "HTTP/1.1 {answered} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Receiver {
            port,
            got,
            refuse,
            task,
        }
    }

    /// Answer `500` to events of `state` (or to none).
    fn refuse(&self, state: Option<&str>) {
        *self.refuse.lock().unwrap() = state.map(str::to_string);
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The states of the requests answered 200, in arrival order.
    fn acknowledged(&self) -> Vec<String> {
        self.got()
            .iter()
            .filter(|r| r.answered == 200)
            .map(|r| r.json()["state"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until `states` were acknowledged (and returns the requests).
    async fn wait_acknowledged(&self, states: &[&str]) -> Vec<Received> {
        wait_for(
            &format!("the receiver to acknowledge {states:?}"),
            Duration::from_secs(60),
            || async { (self.acknowledged().len() >= states.len()).then(|| self.got()) },
        )
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request: its headers and its body (by Content-Length).
async fn read_request(
    conn: &mut tokio::net::TcpStream,
) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(WAIT, conn.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(WAIT, conn.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((headers, body))
}

/// Checks `X-Orchestrator-Signature` of a request with `secret`: the HMAC
/// over `<t>.<body>` matches, and `t` is within 5 minutes of now.
fn assert_signed(r: &Received, secret: &str) {
    let header = r
        .header("x-orchestrator-signature")
        .unwrap_or_else(|| panic!("a signature on {:?}", r.headers));
    let parts: std::collections::HashMap<&str, &str> = header
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let t: i64 = parts["t"].parse().expect("t is unix seconds");
    let now = chrono::Utc::now().timestamp();
    assert!((now - t).abs() <= 300, "t={t} is recent (now {now})");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    let want = hex::encode(mac.finalize().into_bytes());
    assert_eq!(parts["v1"], want, "the signature verifies");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("x-orchestrator-event-id"),
        r.json()["event_id"].as_str(),
        "the event id header is the body's"
    );
}

async fn app_with(run_seconds: f64, env: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("API_TOKENS", API_TOKENS)];
    vars.extend_from_slice(env);
    spawn_app_on(start_sim(run_seconds), &vars).await
}

async fn metrics(app: &TestApp) -> Exposition {
    let m = app.get("/metrics").await;
    assert_eq!(m.status, 200);
    Exposition::parse(&m.text).unwrap_or_else(|e| panic!("{e}\n{}", m.text))
}

fn callback_metric(e: &Exposition, outcome: &str) -> f64 {
    e.value(
        "orchestrator_reports_total",
        &[("target", "callback"), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

/// The Job's `orchestrator.dev/callback-state` annotation.
async fn mark_of(app: &TestApp, name: &str) -> Option<String> {
    app.job(name)
        .await?
        .metadata
        .annotations?
        .get("orchestrator.dev/callback-state")
        .cloned()
}

#[tokio::test]
async fn a_listed_receiver_gets_queued_running_succeeded_in_order_each_signed() {
    let rx = Receiver::start(0).await;
    let app = app_with(
        1.0,
        &[
            ("CALLBACK_SECRET", CALLBACK_SECRET),
            ("CALLBACK_ALLOWED_HOSTS", "127.0.0.1"),
        ],
    )
    .await;
    let mut body = task("callbacks in order", "acme/api");
    body["callback_url"] = json!(format!(
        "http://127.0.0.1:{}/hooks/agent?token=abc",
        rx.port
    ));
    let r = submit_task(&app, &body, Some("cb-key-1")).await;
    r.expect(202, "a task with a callback");
    let name = job_of(&r);
    // The URL is on the Job, not in the task document the agent sees.
    let job = app.job(&name).await.expect("the job");
    let annotations = job.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("orchestrator.dev/callback-url")
            .map(String::as_str),
        Some(format!("http://127.0.0.1:{}/hooks/agent?token=abc", rx.port).as_str())
    );
    let task_json = serde_json::to_string(&job.spec).unwrap();
    assert!(
        !task_json.contains("hooks/agent"),
        "the agent does not see the URL"
    );

    let got = rx
        .wait_acknowledged(&["queued", "running", "succeeded"])
        .await;
    assert_eq!(rx.acknowledged(), ["queued", "running", "succeeded"]);
    assert_eq!(got.len(), 3, "each event once: {got:?}");
    let mut previous = Value::Null;
    for r in &got {
        assert_signed(r, CALLBACK_SECRET);
        let b = r.json();
        assert_eq!(b["job"], name.as_str());
        assert_eq!(b["task_id"], "cb-key-1");
        assert_eq!(b["previous_state"], previous);
        assert_eq!(
            b["event_id"],
            format!("{name}:{}", b["state"].as_str().unwrap())
        );
        assert!(b["timestamps"]["created"].is_string(), "{b}");
        previous = b["state"].clone();
    }
    let last = got[2].json();
    assert_eq!(last["outcome"]["succeeded"], true);
    assert!(last["timestamps"]["started"].is_string(), "{last}");
    assert!(last["timestamps"]["finished"].is_string(), "{last}");
    assert_eq!(got[0].json()["outcome"]["succeeded"], Value::Null);
    // The acknowledged state is marked on the Job.
    wait_for("the callback mark", WAIT, || async {
        (mark_of(&app, &name).await.as_deref() == Some("succeeded")).then_some(())
    })
    .await;
    let m = metrics(&app).await;
    assert_eq!(callback_metric(&m, "reported"), 3.0);
    assert_eq!(callback_metric(&m, "dropped"), 0.0);
    // Nothing more arrives (the mark holds).
    assert_eq!(rx.got().len(), 3);
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn a_receiver_failing_twice_still_acknowledges_each_event_once_in_order() {
    let rx = Receiver::start(2).await;
    let app = app_with(
        0.5,
        &[
            ("CALLBACK_SECRET", CALLBACK_SECRET),
            ("CALLBACK_ALLOWED_HOSTS", "127.0.0.0/8"),
        ],
    )
    .await;
    let body = json!({
        "id": "cb-77",
        "title": "Callbacks after failures",
        "callback_url": format!("http://127.0.0.1:{}/pm", rx.port),
    });
    let r = call(&app, "POST", "/api/v1/pm/tasks")
        .token(PM_TOKEN)
        .json(&body)
        .send()
        .await;
    r.expect(202, "a PM task with a callback");
    let name = job_of(&r);
    let got = rx
        .wait_acknowledged(&["queued", "running", "succeeded"])
        .await;
    assert_eq!(rx.acknowledged(), ["queued", "running", "succeeded"]);
    // The two failures were the first event's: retried, never overtaken.
    assert_eq!(got[0].answered, 500);
    assert_eq!(got[1].answered, 500);
    assert_eq!(got[0].json()["state"], "queued");
    assert_eq!(got[1].json()["state"], "queued");
    // (Duplicates before an acknowledgement would be allowed: at least once.)
    assert!(got.len() >= 5, "{got:?}");
    for r in &got {
        assert_signed(r, CALLBACK_SECRET);
        assert_eq!(r.json()["task_id"], "cb-77");
    }
    wait_for("the callback mark", WAIT, || async {
        (mark_of(&app, &name).await.as_deref() == Some("succeeded")).then_some(())
    })
    .await;
    let m = metrics(&app).await;
    assert_eq!(callback_metric(&m, "reported"), 3.0);
    assert!(callback_metric(&m, "retried") >= 2.0);
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn a_callback_url_on_an_unlisted_host_is_a_422_and_no_job_is_made() {
    let rx = Receiver::start(0).await;
    let app = app_with(
        0.3,
        &[
            ("CALLBACK_SECRET", CALLBACK_SECRET),
            ("CALLBACK_ALLOWED_HOSTS", "hooks.example.com,*.example.org"),
        ],
    )
    .await;
    let url = format!("http://127.0.0.1:{}/x", rx.port);
    let mut body = task("unlisted callback", "acme/api");
    body["callback_url"] = json!(url);
    let r = submit_task(&app, &body, None).await;
    r.expect(422, "an unlisted host");
    assert_eq!(r.bad_fields(), ["callback_url"], "{}", r.text);
    assert!(
        !r.text.contains("127.0.0.1"),
        "the answer does not echo the URL: {}",
        r.text
    );
    for bad in [
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://example.org/x",
    ] {
        body["callback_url"] = json!(bad);
        let r = submit_task(&app, &body, None).await;
        r.expect(422, bad);
        assert_eq!(r.bad_fields(), ["callback_url"], "{bad}: {}", r.text);
    }
    // Beside the document's other field errors, on the PM route too.
    let r = call(&app, "POST", "/api/v1/pm/tasks")
        .token(PM_TOKEN)
        .json(&json!({"id": "cb-1", "callback_url": url}))
        .send()
        .await;
    r.expect(422, "a PM task with an unlisted callback");
    let mut fields = r.bad_fields();
    fields.sort();
    assert_eq!(fields, ["callback_url", "title"], "{}", r.text);
    assert!(app.job_names().await.is_empty(), "no Job was created");
    assert!(rx.got().is_empty());
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn a_listed_name_resolving_to_an_unlisted_loopback_address_is_never_called() {
    let rx = Receiver::start(0).await;
    let app = app_with(
        0.3,
        &[
            ("CALLBACK_SECRET", CALLBACK_SECRET),
            ("CALLBACK_ALLOWED_HOSTS", "localhost"),
        ],
    )
    .await;
    let mut body = task("ssrf", "acme/api");
    body["callback_url"] = json!(format!("http://localhost:{}/", rx.port));
    let r = submit_task(&app, &body, None).await;
    r.expect(202, "the name is listed");
    let name = job_of(&r);
    wait_for(
        "the callback to be dropped",
        Duration::from_secs(60),
        || async { (callback_metric(&metrics(&app).await, "dropped") >= 1.0).then_some(()) },
    )
    .await;
    // The Job runs to its end; still nothing reaches the receiver.
    wait_state(&app, &name, "succeeded", Duration::from_secs(60)).await;
    assert!(rx.got().is_empty(), "no request: {:?}", rx.got());
    let m = metrics(&app).await;
    assert_eq!(callback_metric(&m, "reported"), 0.0);
    assert_eq!(mark_of(&app, &name).await, None);
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn without_a_callback_secret_a_callback_url_is_a_422() {
    let app = app_with(0.3, &[("CALLBACK_ALLOWED_HOSTS", "127.0.0.1")]).await;
    let mut body = task("no secret", "acme/api");
    body["callback_url"] = json!("http://127.0.0.1:9/x");
    let r = submit_task(&app, &body, None).await;
    r.expect(422, "callbacks are off");
    assert_eq!(r.bad_fields(), ["callback_url"], "{}", r.text);
    assert!(r.text.contains("CALLBACK_SECRET"), "{}", r.text);
    // Without a callback_url the same task is fine.
    let r = submit_task(&app, &task("no secret", "acme/api"), None).await;
    r.expect(202, "no callback");
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn the_openapi_document_describes_callback_url_and_the_callback_body() {
    let app = app_with(0.3, &[]).await;
    let doc = app.get("/api/v1/openapi.json").await.json;
    let schemas = &doc["components"]["schemas"];
    for s in ["TaskRequest", "PmTaskRequest"] {
        let field = &schemas[s]["properties"]["callback_url"];
        assert!(field.is_object(), "{s}.callback_url: {}", schemas[s]);
        assert!(
            field["description"]
                .as_str()
                .is_some_and(|d| d.contains("CALLBACK_ALLOWED_HOSTS")),
            "{field}"
        );
    }
    let event = &schemas["CallbackEvent"];
    for p in [
        "event_id",
        "job",
        "task_id",
        "state",
        "previous_state",
        "timestamps",
        "outcome",
        "sent_at",
    ] {
        assert!(
            event["properties"][p].is_object(),
            "CallbackEvent.{p}: {event}"
        );
    }
    assert!(event["description"]
        .as_str()
        .is_some_and(|d| d.contains("X-Orchestrator-Signature")));
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn a_new_process_resumes_after_the_last_acknowledged_state_without_resending_it() {
    let rx = Receiver::start(0).await;
    rx.refuse(Some("succeeded"));
    let env = [
        ("API_TOKENS", API_TOKENS),
        ("CALLBACK_SECRET", CALLBACK_SECRET),
        ("CALLBACK_ALLOWED_HOSTS", "127.0.0.1"),
    ];
    let sim = start_sim(0.5);
    let app = spawn_app_on(sim.clone(), &env).await;
    let mut body = task("resume after restart", "acme/api");
    body["callback_url"] = json!(format!("http://127.0.0.1:{}/", rx.port));
    let r = submit_task(&app, &body, None).await;
    r.expect(202, "a task with a callback");
    let name = job_of(&r);
    // queued and running acknowledged (and marked), succeeded refused.
    rx.wait_acknowledged(&["queued", "running"]).await;
    wait_for("a refused succeeded", Duration::from_secs(60), || async {
        rx.got()
            .iter()
            .any(|r| r.answered == 500 && r.json()["state"] == "succeeded")
            .then_some(())
    })
    .await;
    wait_for("the running mark", WAIT, || async {
        (mark_of(&app, &name).await.as_deref() == Some("running")).then_some(())
    })
    .await;
    app.stop().await.expect("stops");

    // A new process (a restart, or a new leader) owes only succeeded.
    rx.refuse(None);
    let app = spawn_app_on(sim, &env).await;
    rx.wait_acknowledged(&["queued", "running", "succeeded"])
        .await;
    assert_eq!(rx.acknowledged(), ["queued", "running", "succeeded"]);
    for state in ["queued", "running"] {
        let sent = rx
            .got()
            .iter()
            .filter(|r| r.json()["state"] == state)
            .count();
        assert_eq!(sent, 1, "{state} was not sent again");
    }
    wait_for("the succeeded mark", WAIT, || async {
        (mark_of(&app, &name).await.as_deref() == Some("succeeded")).then_some(())
    })
    .await;
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_given_up() {
    let rx = Receiver::start(usize::MAX).await;
    let app = app_with(
        0.3,
        &[
            ("CALLBACK_SECRET", CALLBACK_SECRET),
            ("CALLBACK_ALLOWED_HOSTS", "127.0.0.1"),
            ("REPORT_GIVE_UP_SECONDS", "2"),
        ],
    )
    .await;
    let mut body = task("given up", "acme/api");
    body["callback_url"] = json!(format!("http://127.0.0.1:{}/", rx.port));
    submit_task(&app, &body, None).await.expect(202, "a task");
    wait_for(
        "the callback to be given up",
        Duration::from_secs(60),
        || async { (callback_metric(&metrics(&app).await, "given_up") >= 1.0).then_some(()) },
    )
    .await;
    assert!(!rx.got().is_empty());
    assert!(
        rx.got().iter().all(|r| r.json()["state"] == "queued"),
        "nothing overtook queued"
    );
    assert_eq!(callback_metric(&metrics(&app).await, "reported"), 0.0);
    app.stop().await.expect("stops");
}
