//! Starting the fake GitHub API: shared state, the actix-web app and the
//! request pipeline (control API, faults, then the GitHub routes).

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

use crate::config::GithubSimConfig;
use crate::faults::Faults;
use crate::store::Store;

/// State shared by the HTTP workers and the in-process API.
pub struct SimState {
    pub config: GithubSimConfig,
    /// The App public key's DER (PKCS#1), when configured.
    pub key_der: Option<Vec<u8>>,
    /// `http://ADDR`: the prefix of the `url` fields and `Link` headers.
    pub base_url: String,
    pub store: Mutex<Store>,
    pub faults: Mutex<Faults>,
    /// Sends redelivery attempts.
    pub http: reqwest::Client,
}

/// A running fake GitHub API. Dropping it stops the server.
pub struct GithubSimServer {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<SimState>,
}

impl GithubSimServer {
    /// Starts on `127.0.0.1:0`.
    pub fn start_local(config: GithubSimConfig) -> std::io::Result<GithubSimServer> {
        Self::start(config, TcpListener::bind("127.0.0.1:0")?)
    }

    /// Starts on `listener`, in a thread of its own with its own runtime.
    /// Fails (InvalidInput) on an unreadable `app_public_key_pem`, or a key
    /// without `app_id`.
    pub fn start(
        config: GithubSimConfig,
        listener: TcpListener,
    ) -> std::io::Result<GithubSimServer> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let key_der = match &config.app_public_key_pem {
            Some(pem) => Some(crate::auth::public_key_der(pem).map_err(invalid)?),
            None => None,
        };
        if key_der.is_some() && config.app_id.is_none() {
            return Err(invalid("app_public_key_pem needs app_id".into()));
        }
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let workers = config.workers.max(1);
        let max_body = config.limits.max_body_bytes;
        let state = Arc::new(SimState {
            store: Mutex::new(Store::new(config.limits.clone())),
            faults: Mutex::new(Faults::default()),
            key_der,
            base_url: format!("http://{}", reachable(addr)),
            config,
            http,
        });
        tracing::debug!(address = %addr, "fake GitHub API (github-api-sim) listening");
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("github-sim".into())
            .spawn(move || {
                let sys = actix_rt::System::new();
                sys.block_on(async move {
                    let data = web::Data::from(thread_state);
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(max_body))
                            .default_service(web::to(dispatch))
                    })
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .listen(listener);
                    let server = match server {
                        Ok(s) => s.run(),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(server.handle()));
                    if let Err(e) = server.await {
                        tracing::error!(error = %e, "github-api-sim server failed");
                    }
                });
            })?;
        let handle = rx
            .recv()
            .map_err(|_| std::io::Error::other("github-api-sim thread died on start"))??;
        Ok(GithubSimServer {
            addr,
            handle,
            thread: Some(thread),
            state,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: the value for `GITHUB_API_URL`.
    pub fn url(&self) -> String {
        self.state.base_url.clone()
    }

    pub fn config(&self) -> &GithubSimConfig {
        &self.state.config
    }

    /// The state as `GET /_sim/state` returns it.
    pub fn snapshot(&self) -> Value {
        crate::control::snapshot(&self.state)
    }

    /// Replaces the fault rules (`PUT /_sim/faults`); see [`crate::faults`].
    pub fn set_faults(&self, spec: Value) -> Result<(), String> {
        crate::control::set_faults(&self.state, spec).map(|_| ())
    }

    /// Removes every fault rule (`DELETE /_sim/faults`).
    pub fn clear_faults(&self) {
        crate::control::clear_faults(&self.state)
    }

    /// Seeds a pull request (`POST /_sim/pulls`): `{repo, number, head_sha,
    /// head_ref, base_ref?, state?, title?}`; returns its REST JSON.
    pub fn seed_pull(&self, pull: Value) -> Result<Value, String> {
        crate::control::seed_pull(&self.state, &pull)
    }

    /// Sets the installation id of `repo` ("owner/name"), as
    /// `POST /_sim/installations` does; the id is then also accepted by
    /// `POST /app/installations/{id}/access_tokens`.
    pub fn set_installation(&self, repo: &str, id: u64) -> Result<(), String> {
        crate::control::set_installation(&self.state, &serde_json::json!({"repo": repo, "id": id}))
            .map(|_| ())
    }

    /// Records a hook delivery (`POST /_sim/deliveries`); returns it in the
    /// `GET /app/hook/deliveries/{id}` form (with its `id`).
    pub fn seed_delivery(&self, delivery: Value) -> Result<Value, String> {
        crate::control::seed_delivery(&self.state, &delivery)
    }

    /// Where redelivery attempts are POSTed and the webhook secret that signs
    /// them (`PUT /_sim/deliveries/target`); `None` stops sending.
    pub fn set_delivery_target(&self, url: Option<&str>, secret: &str) -> Result<(), String> {
        crate::control::set_delivery_target(
            &self.state,
            url.map(|u| (u.to_string(), secret.to_string())),
        )
    }

    /// Issues an installation token without a JWT (what
    /// `POST /app/installations/{id}/access_tokens` answers, counted the
    /// same); returns `(token, expires_at)`.
    pub fn issue_installation_token(&self, installation_id: u64) -> (String, String) {
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::from_std(self.state.config.installation_token_ttl)
            .unwrap_or(chrono::Duration::hours(1));
        let token = format!("ghs_{}", crate::auth::random_token(36));
        let mut st = self.state.store.lock().unwrap_or_else(|e| e.into_inner());
        st.remember_token(
            token.clone(),
            crate::store::IssuedToken {
                installation_id,
                expires_at: now + ttl,
            },
            now,
        );
        st.counts.installation_tokens += 1;
        (token, crate::store::ts(now + ttl))
    }

    /// Forgets everything (`POST /_sim/reset`); the configuration stays.
    pub fn reset(&self) {
        crate::control::reset(&self.state)
    }

    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let handle = self.handle.clone();
        if let Some(t) = self.thread.take() {
            let stopped = std::thread::spawn(move || {
                futures::executor::block_on(handle.stop(false));
            });
            let _ = stopped.join();
            let _ = t.join();
        }
    }
}

impl Drop for GithubSimServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn fault_response(a: &crate::faults::FaultAnswer) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(a.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponse::build(status);
    for (k, v) in &a.headers {
        b.insert_header((k.as_str(), v.as_str()));
    }
    match &a.body {
        Value::String(text) => b
            .content_type("text/plain; charset=utf-8")
            .body(text.clone()),
        v => b
            .content_type("application/json; charset=utf-8")
            .body(serde_json::to_vec(v).unwrap_or_default()),
    }
}

async fn dispatch(req: HttpRequest, body: web::Bytes, s: web::Data<SimState>) -> HttpResponse {
    let path = req.path().to_string();
    if path == "/_sim" || path.starts_with("/_sim/") {
        return crate::control::handle(&s, &req, &body).await;
    }
    let method = req.method().as_str().to_ascii_uppercase();
    let fault = s
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(&method, &path);
    if let Some(f) = fault {
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
        if let Some(answer) = &f.answer {
            let resp = fault_response(answer);
            s.store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .log(&method, &path, answer.status);
            return resp;
        }
    }
    let resp = crate::api::handle(&s, &req, &method, &path, &body).await;
    s.store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .log(&method, &path, resp.status().as_u16());
    resp
}

/// The address clients on this machine reach a listener on: a listener on
/// every interface (`0.0.0.0`, `::`) is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}
