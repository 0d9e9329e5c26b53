//! `orchestrator serve`: loads the configuration, connects to the cluster
//! (in-cluster, KUBECONFIG, or the embedded simulator) and runs the service.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::dev_files;
use crate::config::{Config, LogFormat};
#[cfg(feature = "embedded-cluster")]
use kube_api_sim::{SimConfig, SimServer};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Start the embedded Kubernetes API simulator in-process and use it
    /// instead of a real cluster (development and demos; no containers run).
    #[arg(long)]
    pub embedded_cluster: bool,
    /// With --embedded-cluster: write the simulator's kubeconfig here, for
    /// kubectl (default: orchestrator-sim-<SERVER_PORT>.kubeconfig). Removed
    /// when the server stops.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig_out: Option<PathBuf>,
    /// With --embedded-cluster: where the simulator listens (default: a free
    /// port on 127.0.0.1). `0.0.0.0:6443` in a container, with the port
    /// published, lets kubectl on the host use the kubeconfig.
    #[arg(long, value_name = "ADDR", requires = "embedded_cluster")]
    pub embedded_cluster_listen: Option<String>,
    /// With --embedded-cluster: seconds each simulated agent pod "runs".
    #[arg(long, default_value_t = 5.0)]
    pub sim_run_seconds: f64,
    /// With --embedded-cluster: start the fake GitHub REST API in-process too
    /// and report to it (status comments, reactions), with a token of its
    /// own. Read what it holds with `curl http://ADDR/repos/OWNER/REPO/issues/N/comments`.
    #[arg(long, requires = "embedded_cluster")]
    pub embedded_github: bool,
    /// With --embedded-github: its address (default: 127.0.0.1 and the
    /// port after SERVER_PORT).
    #[arg(long, value_name = "ADDR", requires = "embedded_github")]
    pub embedded_github_listen: Option<String>,
    /// Development only: accept unsigned GitHub webhooks when no secret is set.
    #[arg(long)]
    pub insecure_allow_unsigned_webhooks: bool,
}

const CLIENT_HINTS: &str = "\
Hints:
  - In a cluster: the pod needs a service account token (automountServiceAccountToken) and RBAC for jobs, pods, pods/log, configmaps, events and leases.
  - Outside a cluster: set KUBECONFIG or create ~/.kube/config, and check `kubectl cluster-info` works.
  - No cluster at hand: run `orchestrator serve --embedded-cluster`.
  See README.md, \"Troubleshooting\".";

/// A development secret for the embedded cluster when none is configured,
/// kept where `orchestrator send-webhook` finds it.
pub use super::dev_files::DEV_SECRET_FILE;

/// What `serve --embedded-cluster` supplies when the environment does not:
/// the development webhook secret, the development `cli` API token, and
/// the loopback address to bind.
#[derive(Debug, Default, Clone)]
struct DevDefaults {
    secret: Option<String>,
    token: Option<String>,
    loopback: bool,
}

/// The configuration, with the development defaults where the environment
/// sets nothing.
fn load_config(dev: &DevDefaults, insecure: bool) -> Result<Config, ExitCode> {
    Config::from_lookup(|name| match name {
        "GITHUB_WEBHOOK_SECRET" if dev.secret.is_some() => dev.secret.clone(),
        "API_TOKENS" if dev.token.is_some() => dev.token.as_ref().map(|t| format!("cli={t}")),
        "SERVER_HOST" if dev.loopback => Some("127.0.0.1".into()),
        "ALLOW_INSECURE_NO_SIGNATURE" if insecure => Some("true".into()),
        other => std::env::var(other).ok(),
    })
    .map_err(|e| {
        eprintln!("Error: invalid configuration: {e}");
        ExitCode::from(2)
    })
}

fn env_set(names: &[&str]) -> bool {
    names
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// The file's development value (reused) or a fresh proposal, read before
/// anything is written.
fn dev_value(path: &Path, what: &str) -> Result<String, ExitCode> {
    match dev_files::read_dev_secret(path) {
        Ok(existing) => Ok(existing.unwrap_or_else(dev_files::new_dev_secret)),
        Err(e) => {
            eprintln!(
                "Error: cannot read the development {what} {}: {e}",
                path.display()
            );
            Err(ExitCode::FAILURE)
        }
    }
}

/// Stands in for the simulator in a build without it: never made.
#[cfg(not(feature = "embedded-cluster"))]
enum SimServer {}

#[cfg(not(feature = "embedded-cluster"))]
impl SimServer {
    fn kubeconfig(&self) -> String {
        match *self {}
    }
}

/// Starts the fake GitHub API for `--embedded-github` and points the
/// reporting configuration at it, with a token of its own.
#[cfg(feature = "embedded-cluster")]
fn start_embedded_github(
    args: &ServeArgs,
    port: u16,
    config: &mut Config,
) -> Result<github_api_sim::GithubSimServer, ExitCode> {
    let listen = args
        .embedded_github_listen
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{}", port.saturating_add(1)));
    let listener = TcpListener::bind(&listen).map_err(|e| {
        eprintln!("Error: the embedded GitHub API cannot listen on {listen}: {e}\nHint: pass --embedded-github-listen 127.0.0.1:PORT with a free port.");
        ExitCode::FAILURE
    })?;
    let token = dev_files::new_dev_secret();
    let sim_config = github_api_sim::GithubSimConfig {
        tokens: vec![token.clone()],
        ..Default::default()
    };
    let server = github_api_sim::GithubSimServer::start(sim_config, listener).map_err(|e| {
        eprintln!("Error: the embedded GitHub API failed to start: {e}");
        ExitCode::FAILURE
    })?;
    let url = server.url();
    config.github_api.api_url = url::Url::parse(&url).map_err(|e| {
        eprintln!("Error: the embedded GitHub API's address {url}: {e}");
        ExitCode::FAILURE
    })?;
    config.github_api.credential = Some(crate::config::github::GithubCredential::Token(
        crate::config::Secret::new(token),
    ));
    tracing::warn!(api = %url, "EMBEDDED GITHUB: reporting to the in-process FAKE GitHub API; nothing reaches github.com. Status comments: curl {url}/repos/OWNER/REPO/issues/N/comments");
    Ok(server)
}

pub fn run(args: ServeArgs) -> ExitCode {
    #[cfg(not(feature = "embedded-cluster"))]
    if args.embedded_cluster {
        eprintln!("Error: this binary was built without the embedded cluster (cargo feature `embedded-cluster`; the container image leaves it out).\nHint: point it at a cluster (KUBECONFIG or in-cluster), or run a default build: cargo run --release -- serve --embedded-cluster");
        return ExitCode::from(2);
    }
    let insecure = args.insecure_allow_unsigned_webhooks;
    let secret_path = PathBuf::from(DEV_SECRET_FILE);
    let token_path = PathBuf::from(dev_files::DEV_TOKEN_FILE);
    // Nothing is written before the listener is bound: until then each
    // development value is the file's (reused) or a proposal.
    let mut dev = DevDefaults::default();
    if args.embedded_cluster {
        // A development server listens on this machine only, unless told.
        dev.loopback = std::env::var_os("SERVER_HOST").is_none();
        if !insecure && !env_set(&["GITHUB_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET_FILE"]) {
            match dev_value(&secret_path, "webhook secret") {
                Ok(v) => dev.secret = Some(v),
                Err(code) => return code,
            }
        }
        if !env_set(&["API_TOKENS", "API_TOKENS_FILE"]) {
            match dev_value(&token_path, "API token") {
                Ok(v) => dev.token = Some(v),
                Err(code) => return code,
            }
        }
    }
    let mut config = match load_config(&dev, insecure) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::telemetry::init(match config.log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    });
    let bind = format!("{}:{}", config.server_host, config.server_port);
    let listener = match TcpListener::bind(&bind) {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            eprintln!("Error: Address already in use ({bind}).\nHint: another process listens on port {}; set SERVER_PORT to a free port (e.g. SERVER_PORT=8081, and ORCHESTRATOR_URL=http://127.0.0.1:8081 for the client commands).", config.server_port);
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!(
                "Error: cannot listen on {bind}: {e}\nHint: check SERVER_HOST and SERVER_PORT."
            );
            return ExitCode::FAILURE;
        }
    };
    #[cfg_attr(not(feature = "embedded-cluster"), allow(unused_variables))]
    let port = listener
        .local_addr()
        .map_or(config.server_port, |a| a.port());
    // Whoever created a file first (another server from this directory)
    // decides its value; this server then uses it.
    let mut kept = dev.clone();
    for (value, path, what) in [
        (&mut kept.secret, &secret_path, "webhook secret"),
        (&mut kept.token, &token_path, "API token"),
    ] {
        if let Some(proposed) = value.as_mut() {
            match dev_files::persist_dev_secret(path, proposed) {
                Ok(v) => *proposed = v,
                Err(e) => {
                    eprintln!(
                        "Error: cannot write the development {what} to {}: {e}",
                        path.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if kept.secret != dev.secret || kept.token != dev.token {
        match load_config(&kept, insecure) {
            Ok(c) => config = c,
            Err(code) => return code,
        }
    }
    if kept.secret.is_some() {
        tracing::warn!(file = DEV_SECRET_FILE, "GITHUB_WEBHOOK_SECRET is not set: using the development secret in the file (`orchestrator send-webhook` reads it)");
    }
    if kept.token.is_some() {
        tracing::warn!(file = dev_files::DEV_TOKEN_FILE, "API_TOKENS is not set: the API accepts the development cli token in the file (the client commands read it from the current directory)");
    }
    if dev.loopback {
        tracing::info!(
            "listening on http://127.0.0.1:{port} (this machine only; set SERVER_HOST=0.0.0.0 to accept connections from other machines)"
        );
    } else {
        tracing::info!("listening on http://{}:{port}", config.server_host);
        let loopback = config
            .server_host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if args.embedded_cluster && !loopback && (kept.secret.is_some() || kept.token.is_some()) {
            tracing::warn!(
                host = %config.server_host,
                "SERVER_HOST opens this development server to other machines, with the development secret and token of this directory; set GITHUB_WEBHOOK_SECRET and API_TOKENS for anything shared"
            );
        }
    }
    if config.allow_insecure_no_signature && config.github_webhook_secrets.is_empty() {
        tracing::warn!("INSECURE: GitHub webhooks are accepted WITHOUT signature checks (development only; set GITHUB_WEBHOOK_SECRET in production)");
    }
    #[cfg_attr(not(feature = "embedded-cluster"), allow(unused_mut))]
    let mut kubeconfig_file: Option<dev_files::KubeconfigFile> = None;
    #[cfg(feature = "embedded-cluster")]
    let github_sim = if args.embedded_github {
        match start_embedded_github(&args, port, &mut config) {
            Ok(s) => Some(s),
            Err(code) => return code,
        }
    } else {
        None
    };
    if args.embedded_cluster
        && !args.embedded_github
        && !env_set(&["GITHUB_API_URL"])
        && config.github_api.credential.is_some()
    {
        tracing::warn!("not reporting to GitHub: with --embedded-cluster a GitHub token or App is used only with GITHUB_API_URL set (simulated tasks name real repositories); or try --embedded-github");
        config.github_api.credential = None;
    }
    #[cfg(not(feature = "embedded-cluster"))]
    let sim: Option<SimServer> = None;
    #[cfg(feature = "embedded-cluster")]
    let sim = if args.embedded_cluster {
        let cfg = SimConfig {
            default_run_seconds: args.sim_run_seconds.max(0.0),
            // What a status comment shows at the end: a result line like
            // Claude Code's (no agent runs here).
            final_output: if args.embedded_github {
                vec![
                    serde_json::json!({"type": "result", "subtype": "success", "is_error": false,
                    "num_turns": 1, "duration_ms": 1000, "total_cost_usd": 0.0,
                    "result": "Simulated run: the embedded cluster runs no agent."})
                    .to_string(),
                ]
            } else {
                Vec::new()
            },
            ..SimConfig::default()
        };
        let started = match &args.embedded_cluster_listen {
            None => SimServer::start_local(cfg),
            Some(addr) => {
                TcpListener::bind(addr).and_then(|listener| SimServer::start(cfg, listener))
            }
        };
        match started {
            Ok(s) => {
                tracing::warn!(api = %s.url(), "EMBEDDED CLUSTER: using the in-process Kubernetes API SIMULATOR; no real cluster, no containers run");
                let path = args
                    .kubeconfig_out
                    .clone()
                    .unwrap_or_else(|| dev_files::kubeconfig_path(port));
                match dev_files::KubeconfigFile::write(path.clone(), s.kubeconfig()) {
                    Ok(file) => {
                        tracing::info!(path = %path.display(), "simulator kubeconfig written (removed on exit): kubectl --kubeconfig {} get jobs", path.display());
                        kubeconfig_file = Some(file);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "could not write the simulator kubeconfig")
                    }
                }
                Some(s)
            }
            Err(e) => {
                eprintln!("Error: the embedded cluster failed to start: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let kube_config = match &sim {
            Some(s) => {
                let kc = kube::config::Kubeconfig::from_yaml(&s.kubeconfig())?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
            }
            None => match kube::Config::infer().await {
                Ok(c) => {
                    let source = crate::cluster::connect::config_source();
                    if let Err(why) = crate::cluster::connect::check(&c, &source).await {
                        eprintln!("Error: {why}");
                        return Ok::<bool, anyhow::Error>(false);
                    }
                    c
                }
                Err(e) => {
                    eprintln!("Error: Failed to initialize Kubernetes client: {e}\n{CLIENT_HINTS}");
                    return Ok::<bool, anyhow::Error>(false);
                }
            },
        };
        crate::app::run(
            config,
            listener,
            kube_config,
            crate::telemetry::shutdown_signal(),
        )
        .await?;
        drop(kubeconfig_file);
        // The simulators serve until the service has stopped.
        #[cfg_attr(not(feature = "embedded-cluster"), allow(clippy::drop_non_drop))]
        drop(sim);
        #[cfg(feature = "embedded-cluster")]
        drop(github_sim);
        Ok(true)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
