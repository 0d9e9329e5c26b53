//! Starting the simulator: configuration, shared state, the actix-web app
//! (Kubernetes paths, discovery, OpenAPI, `/_sim/` admin), the kubeconfig it
//! hands to clients, and a ready `kube::Client`.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use super::controller;
use super::faults::{FaultSpec, Faults};
use super::openapi;
use super::resources;
use super::store::{Limits, Store};
use super::watch::error_response;

/// How the simulator behaves; every field but `kueue` has a flag on
/// `orchestrator sim`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Bearer token clients must send; `None` accepts anonymous requests
    /// (unless `grants` lists tokens). Its user may do everything.
    pub token: Option<String>,
    /// More tokens, each with a user and an optional RBAC allow-list
    /// (see [`crate::authz`]).
    pub grants: Vec<crate::authz::TokenGrant>,
    /// How long a pod "runs" unless its Job says otherwise
    /// (annotation `sim.orchestrator.dev/run-seconds`).
    pub default_run_seconds: f64,
    /// How a pod exits unless its Job says otherwise
    /// (annotation `sim.orchestrator.dev/exit-code`).
    pub default_exit_code: i32,
    /// Lines every app container prints just before it exits (e.g. an
    /// agent's final JSON result), before the simulator's own exit line.
    pub final_output: Vec<String>,
    /// While a pod runs, each app container prints a line
    /// (`[sim] working: tick N`) at this interval; `None` (the default)
    /// prints nothing between its start and its exit.
    pub log_every: Option<Duration>,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// How long a deleted pod's simulated containers take to stop after
    /// SIGTERM, unless the pod says otherwise (annotation
    /// `sim.orchestrator.dev/termination-seconds`); they are killed when
    /// the grace period (`terminationGracePeriodSeconds`, or the delete's
    /// `gracePeriodSeconds`) ends first. The pod disappears then.
    pub termination_seconds: f64,
    /// How long a Pending pod waits before it runs (image pull, scheduling).
    pub pending_seconds: f64,
    /// Delay before a failed Job pod is replaced: doubled per failure and
    /// capped at 6 minutes, as the real Job controller (10 s by default;
    /// tests shorten it).
    pub job_backoff_base: Duration,
    /// The kubelet's first delay before it restarts a crashed container
    /// (`restartPolicy: OnFailure`): doubled per restart, capped at 5
    /// minutes (10 s by default, as a real kubelet; tests shorten it).
    pub crash_loop_backoff_base: Duration,
    pub limits: Limits,
    /// Faults active from the start.
    pub faults: FaultSpec,
    /// actix-web worker threads.
    pub workers: usize,
    /// Serve HTTPS with a freshly generated cluster CA (see [`crate::tls`]);
    /// the kubeconfig then carries `certificate-authority-data`.
    pub tls: bool,
    /// Emulate Kueue's admission of queued Jobs and serve its queues
    /// read-only (see [`crate::kueue`]); off by default.
    pub kueue: Option<crate::kueue::KueueConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: None,
            grants: Vec::new(),
            default_run_seconds: 1.0,
            default_exit_code: 0,
            final_output: Vec::new(),
            log_every: None,
            bookmark_interval: Duration::from_secs(10),
            pending_seconds: 0.05,
            termination_seconds: 0.2,
            job_backoff_base: Duration::from_secs(10),
            crash_loop_backoff_base: Duration::from_secs(10),
            limits: Limits::default(),
            faults: FaultSpec::default(),
            workers: 2,
            tls: false,
            kueue: None,
        }
    }
}

/// State shared by the HTTP workers and the controller.
pub struct SimState {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub config: SimConfig,
    pub open_watches: AtomicUsize,
    pub address: String,
    /// The cluster CA (PEM) when serving HTTPS.
    pub ca_pem: Option<String>,
    /// Every write request, bounded (see [`crate::writes`]).
    pub writes: crate::writes::Writes,
}

/// A running simulator. Dropping it stops the server.
pub struct SimServer {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<SimState>,
}

const BANNER: &str = "SIMULATED Kubernetes API server (orchestrator sim): in-memory state, no real cluster, no containers are run";

impl SimServer {
    /// Starts on `127.0.0.1:0`.
    pub fn start_local(config: SimConfig) -> std::io::Result<SimServer> {
        Self::start(config, TcpListener::bind("127.0.0.1:0")?)
    }

    /// Starts on `listener`, in a thread of its own with its own runtime.
    pub fn start(config: SimConfig, listener: TcpListener) -> std::io::Result<SimServer> {
        let addr = listener.local_addr()?;
        let store = Store::new(config.limits.clone());
        let faults = Faults::default();
        if let Err(e) = config.faults.validate() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e));
        }
        if faults.set(config.faults.clone()) {
            store.compact();
        }
        if let Some(k) = &config.kueue {
            k.validate()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            seed_kueue(&store, k)?;
        }
        let workers = config.workers.max(1);
        let tls = if config.tls {
            Some(super::tls::generate(addr)?)
        } else {
            None
        };
        let state = Arc::new(SimState {
            ca_pem: tls.as_ref().map(|t| t.ca_pem.clone()),
            store,
            faults,
            config,
            open_watches: AtomicUsize::new(0),
            address: addr.to_string(),
            writes: Default::default(),
        });
        tracing::warn!(address = %addr, "{BANNER}");
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("k8s-sim".into())
            .spawn(move || {
                let sys = actix_rt::System::new();
                sys.block_on(async move {
                    let controller = controller::spawn(thread_state.clone());
                    let data = web::Data::from(thread_state);
                    let server = HttpServer::new(move || app(data.clone()))
                        .workers(workers)
                        .disable_signals()
                        .h1_allow_half_closed(false)
                        .shutdown_timeout(1);
                    let server = match tls {
                        Some(t) => server.listen_rustls_0_23(listener, (*t.server_config).clone()),
                        None => server.listen(listener),
                    };
                    let server = match server {
                        Ok(s) => s.run(),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(server.handle()));
                    if let Err(e) = server.await {
                        tracing::error!(error = %e, "simulator server failed");
                    }
                    controller.abort();
                });
            })?;
        let handle = rx
            .recv()
            .map_err(|_| std::io::Error::other("simulator thread died on start"))??;
        Ok(SimServer {
            addr,
            handle,
            thread: Some(thread),
            state,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, or `https://ADDR` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.state.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        // A simulator listening on every interface is reached on loopback
        // from this machine (and through a published port from the host).
        let addr = match self.addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, self.addr.port()))
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, self.addr.port()))
            }
            _ => self.addr,
        };
        format!("{scheme}://{addr}")
    }

    /// The cluster CA certificate (PEM) when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.state.ca_pem.as_deref()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.state.store
    }

    /// The write requests it received, oldest first (see [`crate::writes`]).
    pub fn writes(&self) -> Vec<crate::writes::Write> {
        self.state.writes.all()
    }

    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Asks the Kueue emulation to evict the Job `namespace/name` (as
    /// Kueue does on preemption or deactivation): it sets the annotation
    /// [`crate::kueue::EVICT_ANNOTATION`]; the emulation then suspends the
    /// Job with `kueue.x-k8s.io/stopping`, lets its pods go, clears
    /// `status.startTime`, restores the pod template and queues the Job
    /// again. Asynchronous: watch the Job for the outcome. `404` if there
    /// is no such Job, `400` if Kueue does not manage it (no queue-name
    /// label) or the emulation is off.
    pub fn kueue_evict(&self, namespace: &str, name: &str) -> Result<(), super::error::ApiError> {
        use super::error::ApiError;
        use super::kueue::{EVICT_ANNOTATION, QUEUE_NAME_LABEL};
        if self.state.config.kueue.is_none() {
            return Err(ApiError::bad_request(
                "the Kueue emulation is off (SimConfig::kueue is None)",
            ));
        }
        self.state
            .store
            .modify(resources::JOBS, namespace, name, false, false, |cur| {
                if cur["metadata"]["labels"][QUEUE_NAME_LABEL].as_str().is_none() {
                    return Err(ApiError::bad_request(format!(
                        "job {namespace}/{name} has no {QUEUE_NAME_LABEL} label: Kueue does not manage it"
                    )));
                }
                let mut job = cur.clone();
                if !job["metadata"]["annotations"].is_object() {
                    job["metadata"]["annotations"] = json!({});
                }
                job["metadata"]["annotations"][EVICT_ANNOTATION] = json!("true");
                Ok(job)
            })
            .map(|_| ())
    }

    /// A kubeconfig (JSON, which is valid YAML) for kubectl and kube-rs.
    /// It authenticates with `SimConfig::token`, else the first grant's token.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_for_token(self.default_token())
    }

    fn default_token(&self) -> Option<&str> {
        let c = &self.state.config;
        c.token
            .as_deref()
            .or_else(|| c.grants.first().map(|g| g.token.as_str()))
    }

    /// A kubeconfig that authenticates with `token` (e.g. one of
    /// `SimConfig::grants`), or anonymously with `None`.
    pub fn kubeconfig_for_token(&self, token: Option<&str>) -> String {
        let user = match token {
            Some(t) => json!({"token": t}),
            None => json!({}),
        };
        let mut cluster = json!({"server": self.url()});
        if let Some(ca) = self.ca_pem() {
            use base64::Engine;
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(ca));
        }
        let kc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "orchestrator-sim", "cluster": cluster}],
            "users": [{"name": "orchestrator-sim", "user": user}],
            "contexts": [{"name": "orchestrator-sim", "context": {"cluster": "orchestrator-sim", "user": "orchestrator-sim", "namespace": "default"}}],
            "current-context": "orchestrator-sim",
            "preferences": {},
        });
        serde_json::to_string_pretty(&kc).unwrap_or_default()
    }

    /// A `kube::Client` that authenticates with `token`.
    pub async fn client_for_token(&self, token: Option<&str>) -> anyhow::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_for_token(token))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(cfg)?)
    }

    /// Writes the kubeconfig to `path` (mode 0600: it may hold the token).
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        opts.open(path)?.write_all(self.kubeconfig().as_bytes())
    }

    /// A `kube::Client` for this simulator.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        self.client_for_token(self.state.config.token.as_deref())
            .await
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let handle = self.handle.clone();
        if let Some(t) = self.thread.take() {
            // Stopping needs a runtime to poll the future; use a tiny one.
            let stopped = std::thread::spawn(move || {
                futures::executor::block_on(handle.stop(false));
            });
            let _ = stopped.join();
            let _ = t.join();
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Stores the Kueue objects of the configuration (and the namespaces of
/// its LocalQueues).
fn seed_kueue(store: &Store, k: &crate::kueue::KueueConfig) -> std::io::Result<()> {
    for (res, ns, obj) in crate::kueue::objects(k) {
        if !ns.is_empty() && store.get(resources::NAMESPACES, "", &ns).is_err() {
            let _ = store.create(
                resources::NAMESPACES,
                "",
                json!({"metadata": {"name": ns}}),
                false,
            );
        }
        store
            .create(res, &ns, obj, false)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.message))?;
    }
    Ok(())
}

fn app(
    data: web::Data<SimState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(data)
        .wrap_fn(|req, srv| {
            use actix_web::dev::Service;
            use actix_web::HttpMessage;
            let who = match req.app_data::<web::Data<SimState>>() {
                Some(s) => super::authz::authenticate(&s.config, req.headers()),
                None => Err(super::error::ApiError::unauthorized()),
            };
            let fut = match who {
                Ok(who) => {
                    req.extensions_mut().insert(who);
                    Ok(srv.call(req))
                }
                Err(e) => Err(e),
            };
            async move {
                match fut {
                    Ok(f) => f.await,
                    Err(e) => Err(actix_web::error::InternalError::from_response(
                        "unauthorized",
                        error_response(&e),
                    )
                    .into()),
                }
            }
        })
        // Discovery answers with or without a trailing slash, as the real
        // server's go-restful routes do.
        .route("/version", web::get().to(version))
        .route("/version/", web::get().to(version))
        .route("/healthz", web::get().to(ok))
        .route("/livez", web::get().to(ok))
        .route("/readyz", web::get().to(ok))
        .route("/api", web::get().to(api))
        .route("/api/", web::get().to(api))
        .route("/api/{version}", web::get().to(api_version))
        .route("/api/{version}/", web::get().to(api_version))
        .route("/apis", web::get().to(apis))
        .route("/apis/", web::get().to(apis))
        .route("/apis/{group}", web::get().to(api_group))
        .route("/apis/{group}/", web::get().to(api_group))
        .route("/apis/{group}/{version}", web::get().to(api_group_version))
        .route("/apis/{group}/{version}/", web::get().to(api_group_version))
        .route("/openapi/v2", web::get().to(openapi_v2))
        .route("/openapi/v3", web::get().to(openapi_index))
        .route("/openapi/v3/", web::get().to(openapi_index))
        .route("/openapi/v3/{gv:.*}", web::get().to(openapi_doc))
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            web::post().to(super::reviews::ssar),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            web::post().to(super::reviews::ssrr),
        )
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            web::post().to(super::reviews::ssr),
        )
        .route("/_sim/faults", web::get().to(faults_get))
        .route("/_sim/faults", web::put().to(faults_put))
        .route("/_sim/faults", web::delete().to(faults_delete))
        .route("/_sim/compact", web::post().to(compact))
        .route("/_sim/stats", web::get().to(stats))
        .route("/_sim/writes", web::get().to(writes))
        .default_service(web::to(super::http::resource))
}

/// Discovery answers pass through the "API server down" fault too.
fn discovery(state: &SimState, body: Option<Value>, what: &str) -> HttpResponse {
    let (_, fault) = state.faults.decide("get", "discovery");
    let resp = match (fault, body) {
        (Some(e), _) => error_response(&e),
        (None, Some(v)) => HttpResponse::Ok().json(v),
        (None, None) => error_response(&super::error::ApiError::not_found_path(what)),
    };
    state
        .faults
        .record("get", "discovery", resp.status().as_u16());
    resp
}

async fn ok() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn version(s: web::Data<SimState>) -> HttpResponse {
    discovery(
        &s,
        Some(json!({
            "major": "1", "minor": "32", "gitVersion": "v1.32.0-orchestrator-sim",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "n/a (simulator)",
            "compiler": "rustc", "platform": "linux/amd64",
        })),
        "/version",
    )
}

async fn api(s: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    match aggregated(&s, &req, true) {
        Some(r) => r,
        None => discovery(&s, Some(resources::api_versions(&s.address)), "/api"),
    }
}

async fn api_version(s: web::Data<SimState>, p: web::Path<String>) -> HttpResponse {
    discovery(
        &s,
        resources::api_resource_list("", &p, s.config.kueue.is_some()),
        "/api/{version}",
    )
}

async fn apis(s: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    match aggregated(&s, &req, false) {
        Some(r) => r,
        None => discovery(
            &s,
            Some(resources::api_group_list(s.config.kueue.is_some())),
            "/apis",
        ),
    }
}

/// Aggregated discovery when the client asks for it (kubectl does).
fn aggregated(s: &SimState, req: &HttpRequest, core: bool) -> Option<HttpResponse> {
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !resources::wants_aggregated(accept) {
        return None;
    }
    let mut resp = discovery(
        s,
        Some(resources::aggregated(core, s.config.kueue.is_some())),
        "/api",
    );
    if resp.status().is_success() {
        resp.headers_mut().insert(
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderValue::from_static(resources::AGGREGATED_DISCOVERY),
        );
    }
    Some(resp)
}

async fn api_group(s: web::Data<SimState>, p: web::Path<String>) -> HttpResponse {
    let doc = resources::api_group(&p, s.config.kueue.is_some())
        .or_else(|| super::reviews::api_group(&p));
    discovery(&s, doc, "/apis/{group}")
}

async fn api_group_version(s: web::Data<SimState>, p: web::Path<(String, String)>) -> HttpResponse {
    let doc = resources::api_resource_list(&p.0, &p.1, s.config.kueue.is_some())
        .or_else(|| super::reviews::api_resource_list(&p.0, &p.1));
    discovery(&s, doc, "/apis/{group}/{version}")
}

async fn openapi_index(s: web::Data<SimState>) -> HttpResponse {
    discovery(&s, Some(openapi::index()), "/openapi/v3")
}

async fn openapi_doc(s: web::Data<SimState>, p: web::Path<String>) -> HttpResponse {
    discovery(
        &s,
        openapi::document(p.trim_end_matches('/')),
        "/openapi/v3/...",
    )
}

/// `GET /openapi/v2` as JSON; a client that accepts only the protobuf form
/// gets 406 (the simulator does not encode OpenAPI as protobuf).
async fn openapi_v2(s: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json_ok = accept.trim().is_empty()
        || accept.split(',').any(|r| {
            let m = r.split(';').next().unwrap_or("").trim();
            matches!(m, "application/json" | "application/*" | "*/*")
        });
    if !json_ok {
        return error_response(&super::error::ApiError::not_acceptable(format!(
            "only application/json is served for /openapi/v2 by the simulator (asked for {accept:?})"
        )));
    }
    discovery(&s, Some(openapi::swagger().clone()), "/openapi/v2")
}

fn admin_error(msg: String) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": msg}))
}

async fn faults_get(s: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(s.faults.show())
}

async fn faults_put(s: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return admin_error(format!("invalid fault spec: {e}")),
    };
    if let Err(e) = spec.validate() {
        return admin_error(e);
    }
    tracing::warn!(faults = ?spec, "simulator faults changed");
    if s.faults.set(spec) {
        s.store.compact();
    }
    HttpResponse::Ok().json(s.faults.show())
}

async fn faults_delete(s: web::Data<SimState>) -> HttpResponse {
    s.faults.set(FaultSpec::default());
    HttpResponse::Ok().json(s.faults.show())
}

async fn compact(s: web::Data<SimState>) -> HttpResponse {
    s.store.compact();
    HttpResponse::Ok()
        .json(json!({"compacted_at_resource_version": s.store.current_rv().to_string()}))
}

/// `GET /_sim/writes`: the write requests kept, oldest first.
async fn writes(s: web::Data<SimState>, _req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "writes": s.writes.all() }))
}

async fn stats(s: web::Data<SimState>, _req: HttpRequest) -> HttpResponse {
    let (objects, history) = s.store.sizes();
    let (requests, in_flight) = s.faults.counts_and_in_flight();
    HttpResponse::Ok().json(json!({
        "simulated": true,
        "requests": requests,
        "in_flight": in_flight,
        "stream_errors": s.faults.stream_errors(),
        "open_watches": s.open_watches.load(Ordering::Relaxed),
        "objects": objects,
        "history": history,
        "resource_version": s.store.current_rv().to_string(),
    }))
}
