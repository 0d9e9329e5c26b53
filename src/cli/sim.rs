//! `orchestrator sim`: the embedded Kubernetes API server simulator, standalone.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use kube_api_sim::faults::{ErrorRule, FaultSpec};
use kube_api_sim::store::Limits;
use kube_api_sim::{SimConfig, SimServer};

/// Flags of `orchestrator sim` (and of the embedded cluster).
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    /// Write a kubeconfig for kubectl and kube clients to this path.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// Bearer token clients must present (default: anonymous access).
    #[arg(long, env = "SIM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds a pod runs unless its Job's `sim.orchestrator.dev/run-seconds` annotation says otherwise.
    #[arg(long, default_value_t = 1.0)]
    pub default_run_seconds: f64,
    /// Exit code of a pod unless its Job's `sim.orchestrator.dev/exit-code` annotation says otherwise.
    #[arg(long, default_value_t = 0)]
    pub default_exit_code: i32,
    /// Seconds between the progress lines a running pod's containers print
    /// (`[sim] working: tick N`); 0, the default, prints none.
    #[arg(long, default_value_t = 0.0)]
    pub log_every_seconds: f64,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, default_value_t = 10.0)]
    pub bookmark_interval_seconds: f64,
    /// Changes kept for watches to resume from; older resourceVersions get 410 Expired.
    #[arg(long, default_value_t = 20_000)]
    pub history: usize,
    /// Maximum number of stored objects.
    #[arg(long, default_value_t = 200_000)]
    pub max_objects: usize,
    /// Fault: added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fault: random extra latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Fault: fraction of requests (0..1) that fail with --error-status.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fault: status of injected errors (429 carries Retry-After).
    #[arg(long, default_value_t = 503)]
    pub error_status: u16,
    /// Fault: close every watch stream this many seconds after it opens.
    #[arg(long)]
    pub watch_close_after_seconds: Option<f64>,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Serve HTTPS with a freshly generated cluster CA; the kubeconfig carries
    /// it as certificate-authority-data (kubectl sends tokens only over TLS).
    #[arg(long)]
    pub tls: bool,
    /// Limit --token to the rules of the Roles in this YAML file (e.g.
    /// k8s/role.yaml); calls outside them are answered 403 Forbidden. A
    /// Role with a metadata.namespace grants its rules in that namespace
    /// only, as a RoleBinding there would.
    #[arg(long, requires = "token", value_name = "FILE")]
    pub token_rules: Option<PathBuf>,
}

impl SimArgs {
    pub fn to_config(&self) -> Result<SimConfig, String> {
        if !(self.bookmark_interval_seconds.is_finite() && self.bookmark_interval_seconds > 0.0) {
            return Err("--bookmark-interval-seconds must be a positive number".into());
        }
        if !(self.default_run_seconds.is_finite() && self.default_run_seconds >= 0.0) {
            return Err("--default-run-seconds must be a non-negative number".into());
        }
        if !(self.log_every_seconds.is_finite() && self.log_every_seconds >= 0.0) {
            return Err("--log-every-seconds must be a non-negative number".into());
        }
        let mut faults = FaultSpec {
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            watch_close_after_seconds: self.watch_close_after_seconds,
            ..Default::default()
        };
        if self.error_rate > 0.0 {
            faults.errors.push(ErrorRule {
                verb: None,
                resource: None,
                rate: self.error_rate,
                status: self.error_status,
                retry_after: None,
            });
        }
        faults.validate()?;
        let mut token = self.token.clone().filter(|t| !t.is_empty());
        let mut grants = Vec::new();
        if let Some(path) = &self.token_rules {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--token-rules {}: {e}", path.display()))?;
            let t = token
                .take()
                .ok_or("--token-rules needs a non-empty --token")?;
            // A Role with a namespace grants its rules there only (e.g.
            // `kubectl kustomize k8s` plus the k8s/tenant/ Roles).
            grants.push(
                kube_api_sim::authz::TokenGrant::from_manifests(
                    &t,
                    "system:serviceaccount:orchestrator:orchestrator",
                    &text,
                )
                .map_err(|e| format!("--token-rules {}: {e}", path.display()))?,
            );
        }
        Ok(SimConfig {
            token,
            grants,
            tls: self.tls,
            default_run_seconds: self.default_run_seconds,
            default_exit_code: self.default_exit_code,
            log_every: (self.log_every_seconds > 0.0)
                .then(|| Duration::from_secs_f64(self.log_every_seconds)),
            bookmark_interval: Duration::from_secs_f64(self.bookmark_interval_seconds),
            limits: Limits {
                history: self.history.max(1),
                max_objects: self.max_objects,
                ..Limits::default()
            },
            faults,
            workers: self.workers.max(1),
            ..SimConfig::default()
        })
    }
}

pub fn run_sim(args: SimArgs) -> ExitCode {
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match std::net::TcpListener::bind(&args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let server = match SimServer::start(config, listener) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: simulator failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Simulated Kubernetes API server listening on {}",
        server.url()
    );
    // Written whole once the simulator listens; removed when it stops
    // (SIGTERM/SIGINT), as `serve --embedded-cluster` removes its own.
    let kubeconfig_file = match &args.kubeconfig_out {
        Some(path) => {
            match super::dev_files::KubeconfigFile::write(path.clone(), server.kubeconfig()) {
                Ok(file) => {
                    println!(
                        "kubeconfig written to {} (removed when the simulator stops)",
                        path.display()
                    );
                    Some(file)
                }
                Err(e) => {
                    eprintln!("Error: cannot write kubeconfig to {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(crate::telemetry::shutdown_signal());
    tracing::info!("signal received, stopping the simulator");
    drop(kubeconfig_file);
    server.stop();
    ExitCode::SUCCESS
}
