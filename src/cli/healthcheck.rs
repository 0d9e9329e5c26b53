//! `orchestrator healthcheck`: one GET of the service's health endpoint, for
//! container HEALTHCHECKs in an image without curl. Exit 0 on a 2xx answer;
//! otherwise exit 1 with one line on stderr saying why.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Flags of `orchestrator healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The URL to GET.
    #[arg(long, default_value = "http://127.0.0.1:8080/health")]
    pub url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3.0)]
    pub timeout_seconds: f64,
}

/// Why a health check failed, as one line.
pub async fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid --url {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "invalid --url {url:?}: the scheme must be http or https"
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    match client.get(parsed).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url} answered {}", r.status())),
        Err(e) if e.is_timeout() => Err(format!("{url}: no answer within {timeout:?}")),
        Err(e) if e.is_connect() => Err(format!(
            "{url}: cannot connect (is the service running?): {}",
            root_cause(&e)
        )),
        Err(e) => Err(format!("{url}: {}", root_cause(&e))),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Runs the check; the exit code says whether the service is healthy.
pub fn run(args: HealthcheckArgs) -> ExitCode {
    if !(args.timeout_seconds.is_finite() && args.timeout_seconds > 0.0) {
        eprintln!("healthcheck: --timeout-seconds must be a positive number");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(check(
        &args.url,
        Duration::from_secs_f64(args.timeout_seconds),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}
