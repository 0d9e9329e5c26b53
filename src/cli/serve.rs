//! `orchestrator serve`: loads the configuration, connects to the cluster
//! (in-cluster, KUBECONFIG, or the embedded simulator) and runs the service.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::{Config, LogFormat};
use kube_api_sim::{SimConfig, SimServer};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Start the embedded Kubernetes API simulator in-process and use it
    /// instead of a real cluster (development and demos; no containers run).
    #[arg(long)]
    pub embedded_cluster: bool,
    /// With --embedded-cluster: write the simulator's kubeconfig here, for kubectl.
    #[arg(long, default_value = "orchestrator-sim.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// With --embedded-cluster: seconds each simulated agent pod "runs".
    #[arg(long, default_value_t = 5.0)]
    pub sim_run_seconds: f64,
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
/// written where `orchestrator send-webhook` finds it.
pub const DEV_SECRET_FILE: &str = "orchestrator-dev-webhook-secret";

pub fn run(args: ServeArgs) -> ExitCode {
    let mut dev_secret = None;
    let insecure = args.insecure_allow_unsigned_webhooks;
    let env_has_secret = ["GITHUB_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET_FILE"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()));
    if args.embedded_cluster && !env_has_secret && !insecure {
        let secret = uuid::Uuid::new_v4().simple().to_string();
        if let Err(e) = write_private(&PathBuf::from(DEV_SECRET_FILE), &secret) {
            eprintln!(
                "Error: cannot write the development webhook secret to {DEV_SECRET_FILE}: {e}"
            );
            return ExitCode::FAILURE;
        }
        dev_secret = Some(secret);
    }
    let config = Config::from_lookup(|name| match name {
        "GITHUB_WEBHOOK_SECRET" if dev_secret.is_some() => dev_secret.clone(),
        "ALLOW_INSECURE_NO_SIGNATURE" if insecure => Some("true".into()),
        other => std::env::var(other).ok(),
    });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(match config.log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    });
    if config.allow_insecure_no_signature && config.github_webhook_secrets.is_empty() {
        tracing::warn!("INSECURE: GitHub webhooks are accepted WITHOUT signature checks (development only; set GITHUB_WEBHOOK_SECRET in production)");
    }
    if dev_secret.is_some() {
        tracing::warn!(file = DEV_SECRET_FILE, "GITHUB_WEBHOOK_SECRET is not set: using a generated development secret (written to the file; `orchestrator send-webhook` reads it)");
    }
    let bind = format!("{}:{}", config.server_host, config.server_port);
    let listener = match TcpListener::bind(&bind) {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            eprintln!("Error: Address already in use ({bind}).\nHint: another process listens on port {}; set SERVER_PORT to a free port (e.g. SERVER_PORT=8081).", config.server_port);
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!(
                "Error: cannot listen on {bind}: {e}\nHint: check SERVER_HOST and SERVER_PORT."
            );
            return ExitCode::FAILURE;
        }
    };
    let sim = if args.embedded_cluster {
        let cfg = SimConfig {
            default_run_seconds: args.sim_run_seconds.max(0.0),
            ..SimConfig::default()
        };
        match SimServer::start_local(cfg) {
            Ok(s) => {
                tracing::warn!(api = %s.url(), "EMBEDDED CLUSTER: using the in-process Kubernetes API SIMULATOR; no real cluster, no containers run");
                match s.write_kubeconfig(&args.kubeconfig_out) {
                    Ok(()) => {
                        tracing::info!(path = %args.kubeconfig_out.display(), "simulator kubeconfig written: kubectl --kubeconfig {} get jobs", args.kubeconfig_out.display())
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not write the simulator kubeconfig")
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
                Ok(c) => c,
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
        drop(sim);
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

fn write_private(path: &PathBuf, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}
