//! `orchestrator github-sim`: the fake GitHub REST API (github-api-sim),
//! standalone, for trying the service out without github.com.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use github_api_sim::{GithubSimConfig, GithubSimServer};

/// Flags of `orchestrator github-sim`.
#[derive(Debug, Clone, Args)]
pub struct GithubSimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// The GitHub App's id: the `iss` App JWTs must carry.
    #[arg(long, requires = "app_public_key")]
    pub app_id: Option<u64>,
    /// The App's public key (PKCS#1 PEM, `BEGIN RSA PUBLIC KEY`); App JWTs
    /// must be RS256-signed with its private key.
    #[arg(long, requires = "app_id", value_name = "FILE")]
    pub app_public_key: Option<PathBuf>,
    /// A static token accepted outside the /app routes (repeatable).
    #[arg(long = "token", value_name = "T")]
    pub tokens: Vec<String>,
    /// Requests per hour per token/installation before 403s.
    #[arg(long, default_value_t = 5000)]
    pub rate_limit_per_hour: u32,
    /// Lifetime of issued installation tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub installation_token_ttl_seconds: u64,
}

impl GithubSimArgs {
    pub fn to_config(&self) -> Result<GithubSimConfig, String> {
        let app_public_key_pem = match &self.app_public_key {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--app-public-key {}: {e}", path.display()))?,
            ),
            None => None,
        };
        if self.installation_token_ttl_seconds == 0 {
            return Err("--installation-token-ttl-seconds must be positive".into());
        }
        Ok(GithubSimConfig {
            app_id: self.app_id,
            app_public_key_pem,
            tokens: self
                .tokens
                .iter()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect(),
            rate_limit_per_hour: self.rate_limit_per_hour,
            installation_token_ttl: std::time::Duration::from_secs(
                self.installation_token_ttl_seconds,
            ),
            ..GithubSimConfig::default()
        })
    }
}

pub fn run_github_sim(args: GithubSimArgs) -> ExitCode {
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
    let server = match GithubSimServer::start(config, listener) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: the fake GitHub API failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Simulated GitHub REST API listening on {} (set GITHUB_API_URL to it; test control under /_sim/)",
        server.url()
    );
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
    tracing::info!("signal received, stopping the fake GitHub API");
    server.stop();
    ExitCode::SUCCESS
}
