//! Black-box harness for the GitHub pipeline tests: an embedded Kubernetes
//! simulator, the real service (`orchestrator::app::run`) on a loopback port
//! in a thread of its own, a signing HTTP client, fixture loading, and
//! watch-based recorders of what happened in the cluster.
//!
//! Every wait here is bounded; a helper that times out panics with what it
//! was waiting for.
#![allow(dead_code)]

pub mod exposition;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube_api_sim::{SimConfig, SimServer};
use orchestrator::config::Config;
use serde_json::Value;
use tokio::sync::oneshot;

/// The webhook secret every test app is configured with (unless overridden).
pub const TEST_SECRET: &str = "it's-a-secret-to-everybody";
/// Upper bound of a single wait.
pub const WAIT: Duration = Duration::from_secs(30);
/// The label selector of managed Jobs.
pub const MANAGED: &str = "app.kubernetes.io/managed-by=orchestrator";

/// Installs a tracing subscriber that writes through the test harness, so a
/// failing test shows the service's log (`RUST_LOG` sets the filter).
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,hyper=warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Awaits `f`, panicking if it takes longer than `limit`.
pub async fn bounded<F: Future>(what: &str, limit: Duration, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    bounded(what, limit, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Reads the banner `orchestrator sim` prints on `stdout` (its address,
/// then "kubeconfig written"); returns the URL and the remaining lines.
pub fn sim_banner(
    stdout: std::process::ChildStdout,
) -> (
    String,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").expect("utf-8");
    let url = first
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    let second = lines.next().expect("a second line").expect("utf-8");
    assert!(second.contains("kubeconfig written"), "{second}");
    (url, lines)
}

/// Starts a simulator whose pods run `run_seconds`.
pub fn start_sim(run_seconds: f64) -> Arc<SimServer> {
    init_logging();
    Arc::new(
        SimServer::start_local(SimConfig {
            default_run_seconds: run_seconds,
            ..SimConfig::default()
        })
        .expect("the simulator starts"),
    )
}

/// Replaces the simulator's faults (`PUT /_sim/faults`).
pub async fn set_faults(sim: &SimServer, spec: Value) {
    let resp = bounded(
        "PUT /_sim/faults",
        WAIT,
        reqwest::Client::new()
            .put(format!("{}/_sim/faults", sim.url()))
            .json(&spec)
            .send(),
    )
    .await
    .expect("PUT /_sim/faults");
    assert_eq!(resp.status().as_u16(), 200, "PUT /_sim/faults {spec}");
}

/// Clears the simulator's faults.
pub async fn clear_faults(sim: &SimServer) {
    let resp = bounded(
        "DELETE /_sim/faults",
        WAIT,
        reqwest::Client::new()
            .delete(format!("{}/_sim/faults", sim.url()))
            .send(),
    )
    .await
    .expect("DELETE /_sim/faults");
    assert!(resp.status().is_success(), "DELETE /_sim/faults");
}

/// The simulator's request statistics (`GET /_sim/stats`).
pub async fn sim_stats(sim: &SimServer) -> Value {
    let resp = bounded(
        "GET /_sim/stats",
        WAIT,
        reqwest::Client::new()
            .get(format!("{}/_sim/stats", sim.url()))
            .send(),
    )
    .await
    .expect("GET /_sim/stats");
    bounded("the stats", WAIT, resp.json())
        .await
        .expect("stats JSON")
}

/// Requests answered for `verb` on `resource`, with status `code` (any
/// status when `None`), from [`sim_stats`].
pub fn answered(stats: &Value, verb: &str, resource: &str, code: Option<u16>) -> u64 {
    stats["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["verb"] == verb && r["resource"] == resource)
        .filter(|r| code.is_none_or(|c| r["code"] == c))
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

/// `ERROR` events of status `code` sent inside 200 streams for `verb` on
/// `resource` (a watch from a compacted resourceVersion: 410), from
/// [`sim_stats`].
pub fn stream_errors(stats: &Value, verb: &str, resource: &str, code: u16) -> u64 {
    stats["stream_errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["verb"] == verb && r["resource"] == resource && r["code"] == code)
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

/// Requests for `verb` on `resource` received and not yet answered.
pub fn in_flight(stats: &Value, verb: &str, resource: &str) -> u64 {
    stats["in_flight"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["verb"] == verb && r["resource"] == resource)
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The `X-Hub-Signature-256` value of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    orchestrator::cli::send::signature(secret.as_bytes(), body)
}

/// A fresh delivery id.
pub fn delivery_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One answer of the service.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub text: String,
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub json: Value,
}

impl Answer {
    /// Reads `resp` (bounded).
    pub async fn from_response(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let text = bounded("the response body", WAIT, resp.text())
            .await
            .unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            retry_after,
            text,
            json,
        }
    }

    /// `json["status"]` as a string ("" if absent).
    pub fn status_field(&self) -> &str {
        self.json["status"].as_str().unwrap_or("")
    }

    /// `json["job"]` as a string, if any.
    pub fn job(&self) -> Option<String> {
        self.json["job"].as_str().map(str::to_string)
    }

    /// Panics unless the body is a JSON object served as application/json.
    pub fn assert_json(&self) {
        assert!(
            self.content_type.starts_with("application/json"),
            "content type {:?} of {} {}",
            self.content_type,
            self.status,
            self.text
        );
        assert!(self.json.is_object(), "a JSON object body: {}", self.text);
    }
}

/// The parts of a webhook request, each of which a test may leave out or
/// falsify.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Option<String>,
    pub delivery: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Delivery {
    /// A complete delivery signed with `secret`.
    pub fn signed(secret: &str, event: &str, delivery: &str, body: Vec<u8>) -> Delivery {
        Delivery {
            event: Some(event.into()),
            delivery: Some(delivery.into()),
            signature: Some(sign(secret, &body)),
            content_type: Some("application/json".into()),
            body,
        }
    }
}

/// The service under test.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The secret `deliver` signs with.
    pub secret: String,
    pub sim: Arc<SimServer>,
    /// A kube client on the simulator, for assertions.
    pub kube: kube::Client,
    pub http: reqwest::Client,
    /// The running service's actors and shared state (fault injection).
    pub handles: orchestrator::app::Handles,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Starts the service on a new simulator (pods run 0.3 s) with the default
/// test configuration plus `env`.
pub async fn spawn_app(env: &[(&str, &str)]) -> TestApp {
    spawn_app_on(start_sim(0.3), env).await
}

/// Starts the service against `sim` (shared, e.g. across a restart) with the
/// default test configuration plus `env` (later entries win), and waits
/// until `/ready` is 200.
pub async fn spawn_app_on(sim: Arc<SimServer>, env: &[(&str, &str)]) -> TestApp {
    let kubeconfig = sim.kubeconfig();
    spawn_app_with_kubeconfig(sim, kubeconfig, env).await
}

/// [`spawn_app_on`] with the service connecting through `kubeconfig` (e.g.
/// a token with an RBAC allow-list); the test's own client stays the
/// simulator's default one.
pub async fn spawn_app_with_kubeconfig(
    sim: Arc<SimServer>,
    kubeconfig: String,
    env: &[(&str, &str)],
) -> TestApp {
    let mut app = start_app_with_kubeconfig(sim, kubeconfig, env).await;
    app.wait_ready().await;
    app
}

/// [`spawn_app_on`] without waiting for `/ready` (for tests of a service
/// that is not ready).
pub async fn start_app_on(sim: Arc<SimServer>, env: &[(&str, &str)]) -> TestApp {
    let kubeconfig = sim.kubeconfig();
    start_app_with_kubeconfig(sim, kubeconfig, env).await
}

/// [`spawn_app_with_kubeconfig`] without waiting for `/ready`.
pub async fn start_app_with_kubeconfig(
    sim: Arc<SimServer>,
    kubeconfig: String,
    env: &[(&str, &str)],
) -> TestApp {
    init_logging();
    let mut vars: HashMap<String, String> = [
        ("GITHUB_WEBHOOK_SECRET", TEST_SECRET),
        ("SHUTDOWN_TIMEOUT_SECONDS", "5"),
        ("RATE_LIMIT_PER_REPO_PER_MINUTE", "10000"),
        ("RATE_LIMIT_PER_SENDER_PER_MINUTE", "10000"),
        // Tests poll the operator API far faster than an operator would;
        // the per-token limit has its own tests, which set it.
        ("API_RATE_LIMIT_PER_TOKEN_PER_MINUTE", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in env {
        vars.insert(k.to_string(), v.to_string());
    }
    let secret = vars
        .get("GITHUB_WEBHOOK_SECRET")
        .and_then(|s| s.split(',').next_back())
        .unwrap_or_default()
        .trim()
        .to_string();
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("a valid test configuration");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    let (tx, rx) = oneshot::channel::<()>();
    let (handles_tx, handles_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("orchestrator-{port}"))
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig)?;
                let kube_config =
                    kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
                orchestrator::app::run_with(
                    config,
                    listener,
                    kube_config,
                    async {
                        let _ = rx.await;
                    },
                    move |h| {
                        let _ = handles_tx.send(h);
                    },
                )
                .await
            })
        })
        .expect("spawn the app thread");
    let kube = sim.client().await.expect("a kube client on the simulator");
    let handles = match bounded("the service to start its actors", WAIT, handles_rx).await {
        Ok(h) => h,
        Err(_) => {
            let r = thread.join();
            panic!("the service stopped before it started its actors: {r:?}");
        }
    };
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        secret,
        sim,
        kube,
        http: reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .expect("an HTTP client"),
        handles,
        shutdown: Some(tx),
        thread: Some(thread),
    }
}

impl TestApp {
    async fn wait_ready(&mut self) {
        let url = format!("{}/ready", self.address);
        let http = self.http.clone();
        for _ in 0..400 {
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let r = self.thread.take().map(|t| t.join());
                panic!("the service stopped before it was ready: {r:?}");
            }
            if let Ok(r) = http.get(&url).send().await {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service was not ready within 20 s");
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Answer {
        let resp = self
            .http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET request");
        Answer::from_response(resp).await
    }

    /// Sends `d` as-is to `POST /webhook/github`.
    pub async fn send(&self, d: Delivery) -> Answer {
        self.try_send(d).await.expect("POST /webhook/github")
    }

    /// Sends `d`; transport errors are returned.
    pub async fn try_send(&self, d: Delivery) -> Result<Answer, reqwest::Error> {
        let mut req = self
            .http
            .post(format!("{}/webhook/github", self.address))
            .header("user-agent", "GitHub-Hookshot/test");
        if let Some(v) = d.event {
            req = req.header("x-github-event", v);
        }
        if let Some(v) = d.delivery {
            req = req.header("x-github-delivery", v);
        }
        if let Some(v) = d.signature {
            req = req.header("x-hub-signature-256", v);
        }
        if let Some(v) = d.content_type {
            req = req.header("content-type", v);
        }
        let resp = req.body(d.body).send().await?;
        Ok(Answer::from_response(resp).await)
    }

    /// A delivery signed with the test secret.
    pub async fn deliver(&self, event: &str, delivery: &str, body: Vec<u8>) -> Answer {
        self.send(Delivery::signed(&self.secret, event, delivery, body))
            .await
    }

    /// A delivery signed with `secret` instead of the configured one.
    pub async fn deliver_signed_with(
        &self,
        secret: &str,
        event: &str,
        delivery: &str,
        body: Vec<u8>,
    ) -> Answer {
        self.send(Delivery::signed(secret, event, delivery, body))
            .await
    }

    /// A delivery without `X-Hub-Signature-256`.
    pub async fn deliver_unsigned(&self, event: &str, delivery: &str, body: Vec<u8>) -> Answer {
        let mut d = Delivery::signed(&self.secret, event, delivery, body);
        d.signature = None;
        self.send(d).await
    }

    /// A delivery with the given signature header.
    pub async fn deliver_with_signature(
        &self,
        signature: &str,
        event: &str,
        delivery: &str,
        body: Vec<u8>,
    ) -> Answer {
        let mut d = Delivery::signed(&self.secret, event, delivery, body);
        d.signature = Some(signature.into());
        self.send(d).await
    }

    pub fn jobs_api(&self) -> Api<Job> {
        Api::namespaced(self.kube.clone(), "default")
    }

    pub fn pods_api(&self) -> Api<Pod> {
        Api::namespaced(self.kube.clone(), "default")
    }

    /// The managed Jobs.
    pub async fn jobs(&self) -> Vec<Job> {
        bounded(
            "list jobs",
            WAIT,
            self.jobs_api().list(&ListParams::default().labels(MANAGED)),
        )
        .await
        .expect("list jobs")
        .items
    }

    /// Names of the managed Jobs.
    pub async fn job_names(&self) -> Vec<String> {
        self.jobs()
            .await
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .collect()
    }

    /// One Job, if it exists.
    pub async fn job(&self, name: &str) -> Option<Job> {
        bounded("get job", WAIT, self.jobs_api().get_opt(name))
            .await
            .expect("get job")
    }

    /// The pods of Job `name` (by owner reference).
    pub async fn pods_of(&self, name: &str) -> Vec<Pod> {
        bounded(
            "list pods",
            WAIT,
            self.pods_api().list(&ListParams::default()),
        )
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| owner_job(p).as_deref() == Some(name))
        .collect()
    }

    /// Waits until Job `name` has the condition Complete.
    pub async fn wait_complete(&self, name: &str, limit: Duration) -> Job {
        wait_for(&format!("job {name} to complete"), limit, || async {
            self.job(name)
                .await
                .filter(|j| has_condition(j, "Complete"))
        })
        .await
    }

    /// Resolves the service's shutdown future (SIGTERM in production)
    /// without waiting for it to stop.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the service gracefully and returns what `app::run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let thread = self.thread.take().expect("the app thread");
        bounded(
            "the service to stop",
            WAIT,
            tokio::task::spawn_blocking(move || thread.join()),
        )
        .await
        .expect("join task")
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the app thread panicked")))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Dropping the sender resolves the shutdown future; the thread ends on
        // its own (not joined here: this may run on an async test thread).
        self.shutdown.take();
    }
}

/// The Job owning `pod`.
pub fn owner_job(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "Job")
        .map(|o| o.name.clone())
}

/// True if `job` has condition `kind` with status True.
pub fn has_condition(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// `spec.suspend` of `job` (false when absent).
pub fn suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false)
}

// ---------------------------------------------------------------- fixtures

/// The fixture directory.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github")
}

/// Every fixture payload: (event = directory name, relative path, raw bytes).
pub fn all_fixtures() -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let dirs = std::fs::read_dir(fixtures_dir()).expect("the fixture directory");
    for dir in dirs.flatten() {
        if !dir.path().is_dir() {
            continue;
        }
        let event = dir.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(dir.path())
            .expect("a fixture subdirectory")
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                let bytes = std::fs::read(f.path()).expect("a fixture file");
                out.push((event.clone(), format!("{event}/{name}"), bytes));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// A fixture parsed, for editing.
pub fn fixture(path: &str) -> Value {
    let bytes = std::fs::read(fixtures_dir().join(path)).expect("fixture file");
    serde_json::from_slice(&bytes).expect("fixture JSON")
}

/// Sets the JSON pointer `ptr` of `v` to `value`.
pub fn set(v: &mut Value, ptr: &str, value: Value) {
    *v.pointer_mut(ptr)
        .unwrap_or_else(|| panic!("fixture has no {ptr}")) = value;
}

/// Serializes an edited fixture.
pub fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialize")
}

/// `issues/labeled.json` labeled `agent` (routed: implement), on `issue`.
pub fn issue_labeled_agent(issue: u64) -> Value {
    let mut v = fixture("issues/labeled.json");
    set(&mut v, "/label/name", "agent".into());
    set(&mut v, "/issue/number", issue.into());
    v
}

/// `issue_comment/created.json` on `issue`: comment `id` by an author of
/// `association` saying `body`.
pub fn comment_by(issue: u64, id: u64, body: &str, association: &str) -> Value {
    let mut v = fixture("issue_comment/created.json");
    set(&mut v, "/issue/number", issue.into());
    set(&mut v, "/comment/id", id.into());
    set(&mut v, "/comment/body", body.into());
    set(&mut v, "/comment/author_association", association.into());
    v
}

/// `issue_comment/created.json` with the comment starting with `/agent `.
pub fn comment_agent(path: &str) -> Value {
    let mut v = fixture(path);
    let body = v["comment"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    set(&mut v, "/comment/body", format!("/agent {body}").into());
    v
}

// -------------------------------------------------------------- recording

/// What the simulator's store went through, change by change, from before
/// the test acted (server-side truth: no watch, no faults in between).
#[derive(Debug, Default)]
pub struct Seen {
    /// Job name → the `spec.suspend` values in the order they were seen.
    pub suspend_history: BTreeMap<String, Vec<bool>>,
    /// Pod name → (owning Job, last phase; `Deleted` once gone).
    pub pods: BTreeMap<String, (String, String)>,
    /// Largest number of pods Running at once.
    pub max_running: usize,
    /// Largest number of pods Pending or Running at once.
    pub max_active: usize,
    /// resourceVersion of the last change applied.
    pub rv: u64,
    /// The recorder fell behind the store's broadcast and missed changes.
    pub lagged: bool,
}

/// Follows every change of the simulator's store in the background.
pub struct Recorder {
    pub seen: Arc<Mutex<Seen>>,
    store: Arc<kube_api_sim::store::Store>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts recording (before the test acts).
    pub fn start(sim: &SimServer) -> Recorder {
        use kube_api_sim::resources::{JOBS, PODS};
        use kube_api_sim::store::EventType;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut rx = sim.store().subscribe();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let change = match rx.recv().await {
                    Ok(c) => c,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        s.lock().expect("lock").lagged = true;
                        continue;
                    }
                    Err(_) => return,
                };
                let mut g = s.lock().expect("lock");
                g.rv = g.rv.max(change.rv);
                let o = &change.object;
                let name = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if change.res == JOBS && change.kind != EventType::Deleted {
                    let now = o["spec"]["suspend"].as_bool().unwrap_or(false);
                    let h = g.suspend_history.entry(name).or_default();
                    if h.last() != Some(&now) {
                        h.push(now);
                    }
                } else if change.res == PODS {
                    let owner = o["metadata"]["ownerReferences"][0]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let phase = if change.kind == EventType::Deleted {
                        "Deleted".to_string()
                    } else {
                        o["status"]["phase"]
                            .as_str()
                            .unwrap_or("Pending")
                            .to_string()
                    };
                    g.pods.insert(name, (owner, phase));
                    let running = g.pods.values().filter(|(_, ph)| ph == "Running").count();
                    let active = g
                        .pods
                        .values()
                        .filter(|(_, ph)| ph == "Running" || ph == "Pending")
                        .count();
                    g.max_running = g.max_running.max(running);
                    g.max_active = g.max_active.max(active);
                }
            }
        });
        Recorder {
            seen,
            store: sim.store().clone(),
            task,
        }
    }

    /// Waits until every change made so far has been recorded.
    pub async fn sync(&self) {
        let target = self.store.current_rv();
        wait_for("the recorder to catch up", WAIT, || async {
            let g = self.seen.lock().expect("lock");
            assert!(!g.lagged, "the recorder missed changes");
            (g.rv >= target).then_some(())
        })
        .await;
    }

    /// The suspend history of Job `name`.
    pub async fn suspend_history(&self, name: &str) -> Vec<bool> {
        self.sync().await;
        self.seen
            .lock()
            .expect("lock")
            .suspend_history
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Pods seen per Job.
    pub async fn pods_per_job(&self) -> BTreeMap<String, usize> {
        self.sync().await;
        let g = self.seen.lock().expect("lock");
        let mut out = BTreeMap::new();
        for (job, _) in g.pods.values() {
            *out.entry(job.clone()).or_default() += 1;
        }
        out
    }

    /// (most pods Running at once, most pods Pending or Running at once).
    pub async fn max_running(&self) -> (usize, usize) {
        self.sync().await;
        let g = self.seen.lock().expect("lock");
        (g.max_running, g.max_active)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
