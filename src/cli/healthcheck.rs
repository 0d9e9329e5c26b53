//! `orchestrator healthcheck`: one GET of the service's health endpoint, for
//! container HEALTHCHECKs in an image without curl. Exit 0 on a 2xx answer;
//! otherwise exit 1 with one line on stderr saying why.
//!
//! With `--wait` it asks again until the answer is 2xx or the time is up,
//! so a script (or a README block) can start a server with `&` and go on
//! once it is ready; `--kubeconfig PATH` waits instead for the file (as
//! `sim --kubeconfig-out` writes it) and for the API server it names.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

/// The service's address when neither `--url` nor `ORCHESTRATOR_URL` says.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Flags of `orchestrator healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The URL to GET (default: ORCHESTRATOR_URL, else http://127.0.0.1:8080,
    /// with /health; with --wait, /ready).
    #[arg(long)]
    pub url: Option<String>,
    /// Check the Kubernetes API server this kubeconfig names instead (e.g.
    /// the one `sim --kubeconfig-out` writes); with --wait, wait for the file too.
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub kubeconfig: Option<PathBuf>,
    /// Ask again until it answers 2xx (exit 0), or exit 1 when
    /// --timeout-seconds have passed.
    #[arg(long)]
    pub wait: bool,
    /// Give up after this many seconds (default 3; with --wait 120).
    #[arg(long)]
    pub timeout_seconds: Option<f64>,
}

/// The URL a check without `--url` asks: the service's `/health`, or with
/// `--wait` its `/ready`.
pub fn default_url(server: Option<&str>, wait: bool) -> String {
    let server = server
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SERVER);
    let path = if wait { "ready" } else { "health" };
    format!("{}/{path}", server.trim_end_matches('/'))
}

/// Why the API server a kubeconfig names did not answer, as one line.
pub async fn check_kubeconfig(path: &Path, timeout: Duration) -> Result<(), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let kc = kube::config::Kubeconfig::from_yaml(&text)
        .map_err(|e| format!("{shown} is not a kubeconfig: {e}"))?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| format!("{shown}: {e}"))?;
    match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{server} (from {shown}): {e}")),
        Err(_) => Err(format!(
            "{server} (from {shown}): no answer within {timeout:?}"
        )),
    }
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

/// Checks once, or with `wait` until it passes or `limit` has passed
/// (every attempt bounded by what is left, at most 3 s); the last reason on
/// failure.
async fn check_until(
    url: &str,
    kubeconfig: Option<&Path>,
    wait: bool,
    limit: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left
            .min(Duration::from_secs(3))
            .max(Duration::from_millis(50));
        let result = match kubeconfig {
            Some(path) => check_kubeconfig(path, attempt).await,
            None => check(url, attempt).await,
        };
        match result {
            Ok(()) => return Ok(start.elapsed()),
            Err(why) if !wait => return Err(why),
            Err(why) if Instant::now() + Duration::from_millis(100) >= deadline => {
                return Err(format!("not ready after {limit:?}: {why}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Runs the check; the exit code says whether the service is healthy.
pub fn run(args: HealthcheckArgs) -> ExitCode {
    let seconds = args
        .timeout_seconds
        .unwrap_or(if args.wait { 120.0 } else { 3.0 });
    if !(seconds.is_finite() && seconds > 0.0) {
        eprintln!("healthcheck: --timeout-seconds must be a positive number");
        return ExitCode::from(2);
    }
    let url = args.url.clone().unwrap_or_else(|| {
        default_url(std::env::var("ORCHESTRATOR_URL").ok().as_deref(), args.wait)
    });
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
    match rt.block_on(check_until(
        &url,
        args.kubeconfig.as_deref(),
        args.wait,
        Duration::from_secs_f64(seconds),
    )) {
        Ok(after) if args.wait => {
            let what = match &args.kubeconfig {
                Some(path) => format!("the API server of {}", path.display()),
                None => url,
            };
            println!(
                "healthcheck: {what} is ready (after {:.1} s)",
                after.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}
