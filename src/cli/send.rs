//! `orchestrator send-webhook`: signs a GitHub payload file with the webhook
//! secret and posts it, printing the answer. For trying the service out and
//! for scripts; the secret comes from GITHUB_WEBHOOK_SECRET or the
//! development secret file `serve --embedded-cluster` writes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The JSON payload file (e.g. tests/fixtures/github/issues/labeled.json).
    #[arg(long)]
    pub file: PathBuf,
    /// The X-GitHub-Event header (e.g. issues, issue_comment, pull_request).
    #[arg(long)]
    pub event: String,
    /// The X-GitHub-Delivery id (default: a new UUID).
    #[arg(long)]
    pub delivery: Option<String>,
    /// Edit the payload before sending: JSON pointer = string value, e.g.
    /// `--set /label/name=agent`. May be repeated.
    #[arg(long = "set", value_name = "POINTER=VALUE")]
    pub set: Vec<String>,
    /// Where the service listens.
    #[arg(
        long,
        env = "ORCHESTRATOR_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
}

/// Why a delivery was not answered.
#[derive(Debug)]
enum SendError {
    /// The service could not be reached (exit code 3, as the client commands).
    Unreachable(String),
    /// Anything else: the file, `--set`, the secret (exit code 1).
    Other(String),
}

impl From<String> for SendError {
    fn from(s: String) -> Self {
        SendError::Other(s)
    }
}

pub fn run(args: SendArgs) -> ExitCode {
    match send(&args) {
        Ok((status, body)) => {
            println!("{status} {body}");
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(SendError::Unreachable(e)) => {
            eprintln!("Error: {e}");
            ExitCode::from(crate::client::exit::UNREACHABLE)
        }
        Err(SendError::Other(e)) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn secret() -> Result<String, String> {
    if let Ok(s) = std::env::var("GITHUB_WEBHOOK_SECRET") {
        if let Some(first) = s.split([',', '\n']).map(str::trim).find(|s| !s.is_empty()) {
            return Ok(first.to_string());
        }
    }
    std::fs::read_to_string(super::serve::DEV_SECRET_FILE)
        .map(|s| s.trim().to_string())
        .map_err(|_| format!("no secret: set GITHUB_WEBHOOK_SECRET, or run from the directory where `serve --embedded-cluster` wrote {}", super::serve::DEV_SECRET_FILE))
}

/// The `X-Hub-Signature-256` value for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn send(args: &SendArgs) -> Result<(u16, String), SendError> {
    let raw = std::fs::read(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let body = if args.set.is_empty() {
        raw
    } else {
        let mut v: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| format!("{} is not JSON: {e}", args.file.display()))?;
        for s in &args.set {
            let (ptr, val) = s
                .split_once('=')
                .ok_or_else(|| format!("--set {s:?}: expected POINTER=VALUE"))?;
            let slot = v
                .pointer_mut(ptr)
                .ok_or_else(|| format!("--set: no field at {ptr:?}"))?;
            *slot = serde_json::Value::String(val.to_string());
        }
        serde_json::to_vec(&v).map_err(|e| e.to_string())?
    };
    let secret = secret()?;
    let delivery = args
        .delivery
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let url = format!("{}/webhook/github", args.url.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", &args.event)
            .header("x-github-delivery", &delivery)
            .header("x-hub-signature-256", signature(secret.as_bytes(), &body))
            .header("user-agent", "GitHub-Hookshot/orchestrator-send-webhook")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let text = format!("cannot reach {url}: {e} (is `orchestrator serve` running? set --url or ORCHESTRATOR_URL)");
                if e.is_connect() || e.is_timeout() {
                    SendError::Unreachable(text)
                } else {
                    SendError::Other(text)
                }
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text))
    })
}
