//! Service configuration: every setting comes from one environment variable,
//! is parsed and validated once at start-up, and a bad value fails start-up
//! with a message naming the variable and the expected form.
//!
//! [`Config::from_lookup`] takes the variable lookup as a function so tests
//! never touch the process environment; [`Config::from_env`] is the thin
//! wrapper `main` uses. Secrets are held in [`Secret`], whose `Debug` and
//! `Display` print `[redacted]`.

pub mod callback;
pub mod dashboard;
pub mod github;
pub mod grafana;
pub mod kueue;
mod leader;
pub(crate) mod parse;
mod scheduler;
pub mod vars;

pub use leader::LeaderConfig;
pub use scheduler::SchedulerConfig;
pub use vars::{EnvVar, VARIABLES};

pub use parse::{is_dns1123_label, is_dns1123_subdomain, quantity_value};

use std::fmt;
use std::path::PathBuf;

/// A secret value (webhook secret). `Debug` and `Display` print `[redacted]`,
/// so it cannot leak through logs, errors or `{:?}` of the whole config.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret bytes, for the one place that needs them (HMAC keying).
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Log output format (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A bad configuration value. The message names the variable, the expected
/// form and the offending value (never for secrets).
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What was expected and what was found.
    pub message: String,
}

fn bad(var: &'static str, expected: &str, got: &str) -> ConfigError {
    ConfigError {
        var,
        message: format!("expected {expected}, got {got:?}"),
    }
}

/// The whole service configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `SERVER_HOST` — address the HTTP server binds. Default `0.0.0.0`.
    pub server_host: String,
    /// `SERVER_PORT` — TCP port of the HTTP server (1–65535). Default `8080`.
    pub server_port: u16,
    /// `KUBERNETES_NAMESPACE` — namespace Jobs are created in (DNS-1123 label). Default `default`.
    pub namespace: String,
    /// `JOB_IMAGE` — image of the agent container. Default `anthropic/claude-code:latest`.
    pub job_image: String,
    /// `JOB_TTL_SECONDS` — `ttlSecondsAfterFinished` of each Job. Default `1800`.
    pub job_ttl_seconds: i32,
    /// `JOB_MEMORY_REQUEST` — memory request (Kubernetes quantity). Default `2Gi`.
    pub job_memory_request: String,
    /// `JOB_MEMORY_LIMIT` — memory limit (quantity, ≥ the request). Default `4Gi`.
    pub job_memory_limit: String,
    /// `JOB_CPU_REQUEST` — CPU request (quantity). Default `1`.
    pub job_cpu_request: String,
    /// `JOB_CPU_LIMIT` — CPU limit (quantity, ≥ the request). Default `2`.
    pub job_cpu_limit: String,
    /// `GITHUB_WEBHOOK_SECRET` or `GITHUB_WEBHOOK_SECRET_FILE` (not both) —
    /// webhook secrets; several (comma- or newline-separated) are all accepted,
    /// for rotation. File contents are trimmed. No default: start-up fails
    /// without one unless `ALLOW_INSECURE_NO_SIGNATURE` is set.
    pub github_webhook_secrets: Vec<Secret>,
    /// `MAX_CONCURRENT_JOBS` — Jobs admitted (unsuspended) at once. Default `10`.
    pub max_concurrent_jobs: u32,
    /// `JOB_TIMEOUT_SECONDS` — `activeDeadlineSeconds` of each Job. Default `3600`.
    pub job_timeout_seconds: i64,
    /// `JOB_BACKOFF_LIMIT` — retries of a failed agent pod. Default `0`: a
    /// coding agent that failed half-way has usually pushed, commented or
    /// spent its budget; re-running it blindly repeats side effects and cost,
    /// so a failure is reported instead and a human (or a new event) retries.
    pub job_backoff_limit: i32,
    /// `JOB_SECRET_NAME` — optional Secret whose keys all become the agent's
    /// env (e.g. `ANTHROPIC_API_KEY`, `GITHUB_TOKEN`), referenced, never copied.
    /// Unset: no secret references at all (public-repository clone).
    pub job_secret_name: Option<String>,
    /// `JOB_GIT_IMAGE` — image of the init containers that clone the repository.
    /// Default `alpine/git:v2.47.2`.
    pub job_git_image: String,
    /// `JOB_GIT_TOKEN_KEY` — key in `JOB_SECRET_NAME` holding the token git uses
    /// to clone. Default `GITHUB_TOKEN`.
    pub job_git_token_key: String,
    /// `GITHUB_HOST` — the GitHub host (`host[:port]`, lower-cased) the
    /// clone credential is for. Default `github.com`. The git credential
    /// helper of a Job is scoped to `https://<GITHUB_HOST>`; a clone URL on
    /// another host is cloned without credentials (public repositories
    /// still clone; the token never goes elsewhere).
    pub github_host: String,
    /// `JOB_COMMAND` — JSON array: the agent container's command. `$(PROMPT)` and
    /// other `$(VAR)` references are expanded by Kubernetes from the container
    /// env, never by a shell. Default: Claude Code non-interactively, see
    /// [`DEFAULT_JOB_COMMAND`].
    pub job_command: Vec<String>,
    /// `JOB_SERVICE_ACCOUNT` — optional ServiceAccount of the Job's pod (its
    /// token is still not mounted).
    pub job_service_account: Option<String>,
    /// `LOG_FORMAT` — `text` or `json`. Default `text`.
    pub log_format: LogFormat,
    /// `SHUTDOWN_TIMEOUT_SECONDS` — grace period on SIGTERM. Default `30`.
    pub shutdown_timeout_seconds: u64,
    /// `SHUTDOWN_DRAIN_SECONDS` — on SIGTERM, keep serving this long with
    /// `/ready` at 503 before the listener closes, so Kubernetes removes the
    /// pod from its Service first (GitHub does not retry refused
    /// deliveries). Counted within `SHUTDOWN_TIMEOUT_SECONDS`. Default `0`;
    /// about `5` behind a Service.
    pub shutdown_drain_seconds: u64,
    /// `ORCHESTRATOR_RULES` — optional path to a YAML routing-rules file.
    pub rules_path: Option<PathBuf>,
    /// `GITHUB_TRUSTED_USERS` — comma-separated GitHub logins trusted regardless
    /// of author association. Default empty.
    pub github_trusted_users: Vec<String>,
    /// `RATE_LIMIT_PER_REPO_PER_MINUTE` — accepted tasks per repository per minute. Default `60`.
    pub rate_limit_per_repo_per_minute: u32,
    /// `RATE_LIMIT_PER_SENDER_PER_MINUTE` — accepted tasks per sender per minute. Default `30`.
    pub rate_limit_per_sender_per_minute: u32,
    /// `DEDUP_CACHE_TTL_SECONDS` — lifetime of the in-memory dedup cache entries. Default `3600`.
    pub dedup_cache_ttl_seconds: u64,
    /// `DEDUP_RETENTION_SECONDS` — how long the dedup record in the API
    /// server keeps accepted dedup keys (a redelivery of a task whose Job
    /// is deleted is still a duplicate). Default `259200` (72 h).
    pub dedup_retention_seconds: u64,
    /// `GITHUB_MAX_BODY_BYTES` — webhook body limit, bytes (`26214400` or `25MiB`).
    /// Default 25 MiB, GitHub's own payload cap.
    pub github_max_body_bytes: usize,
    /// `ALLOW_INSECURE_NO_SIGNATURE` — development only: accept unsigned webhooks
    /// when no secret is configured. Default `false`.
    pub allow_insecure_no_signature: bool,
    /// `API_TOKENS` or `API_TOKENS_FILE` (not both) — bearer tokens of the task
    /// APIs as `kind=token` pairs (comma- or newline-separated), where kind
    /// is `pm-agent`, `cli` or `viewer`; the token decides which source a
    /// request is from and what it may do ([`TokenKind`]). Unset: the task
    /// APIs answer 401 to everyone.
    pub api_tokens: Vec<ApiToken>,
    /// `API_RATE_LIMIT_PER_TOKEN_PER_MINUTE` — requests each API token may
    /// make to the `/api/v1` routes per minute, with bursts of the same
    /// size; `0` turns the limit off. Default `600`.
    pub api_rate_limit_per_token_per_minute: u32,
    /// The Grafana / Alertmanager webhook source (`GRAFANA_*` variables).
    pub grafana: grafana::GrafanaConfig,
    /// `SERVER_WORKERS` — HTTP worker threads. Default: the number of CPU cores.
    pub server_workers: usize,
    /// `SERVER_MAX_CONNECTIONS` — open connections each HTTP worker serves at
    /// once (more wait in the listen backlog). Default `1024`.
    pub server_max_connections: usize,
    /// `TRUSTED_PROXIES` — proxies (addresses or CIDRs) whose
    /// `X-Forwarded-For` names the client; from anyone else it is ignored.
    /// Default: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `KUBE_API_QPS` — sustained Kubernetes API requests per second of the
    /// Kube actor. Default `50` (client-go's 5 is too low for a busy receiver).
    pub kube_api_qps: u32,
    /// `KUBE_API_BURST` — requests allowed above `KUBE_API_QPS` in a burst. Default `100`.
    pub kube_api_burst: u32,
    /// `SOURCE_MAILBOX_CAPACITY` — Tasks each source (GitHub, Grafana, PM
    /// Agent, CLI) keeps in flight; beyond it the HTTP edge answers 503 with
    /// `Retry-After`. Default `1024`.
    pub source_mailbox_capacity: usize,
    /// Leader election timing (`LEADER_LEASE_SECONDS`,
    /// `LEADER_RENEW_DEADLINE_SECONDS`, `LEADER_RETRY_SECONDS`).
    pub leader: LeaderConfig,
    /// The scheduler's periods (`SCHEDULER_RESYNC_SECONDS`,
    /// `CANCELLED_JOB_SWEEP_SECONDS`).
    pub scheduler: SchedulerConfig,
    /// `PREFLIGHT_INTERVAL_SECONDS` — how often the preflight checks (API
    /// server, namespace, permissions) run; decimals allowed, 0.05 to 3600.
    /// Default `30`.
    pub preflight_interval: std::time::Duration,
    /// `JOB_WATCH_FAILING_SECONDS` — how long the Job watch may keep failing
    /// (it retries with backoff) before `/ready` answers 503 naming it.
    /// Default `30`.
    pub job_watch_failing: std::time::Duration,
    /// Reporting back to GitHub (`GITHUB_API_URL`, `GITHUB_TOKEN[_FILE]`,
    /// `GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY[_FILE]`, `PUBLIC_URL`,
    /// `REPORT_GIVE_UP_SECONDS`).
    pub github_api: github::GithubApiConfig,
    /// Callbacks of task state changes (`CALLBACK_SECRET[_FILE]`,
    /// `CALLBACK_ALLOWED_HOSTS`).
    pub callbacks: callback::CallbackConfig,
    /// The web dashboard (`DASHBOARD_PUBLIC`, `DASHBOARD_SESSION_SECRET`).
    pub dashboard: dashboard::DashboardConfig,
}

/// Default agent command: Claude Code in print (non-interactive) mode on the
/// prompt, streaming JSON events to the pod log. Permission prompts are
/// skipped because nobody can answer them in a Job; the pod is the sandbox
/// (non-root, no capabilities, no service-account token).
pub const DEFAULT_JOB_COMMAND: &[&str] = &[
    "claude",
    "-p",
    "$(PROMPT)",
    "--output-format",
    "stream-json",
    "--verbose",
    "--dangerously-skip-permissions",
];

impl Config {
    /// Loads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Loads the configuration from `lookup` (variable name → value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let or = |var: &str, default: &str| get(var).unwrap_or_else(|| default.to_string());

        let namespace = or("KUBERNETES_NAMESPACE", "default");
        if !is_dns1123_label(&namespace) {
            return Err(bad(
                "KUBERNETES_NAMESPACE",
                "a DNS-1123 label (lowercase letters, digits, '-', at most 63)",
                &namespace,
            ));
        }
        let image = |var: &'static str, default: &str| {
            let v = or(var, default);
            if parse::is_image_ref(&v) {
                Ok(v)
            } else {
                Err(bad(
                    var,
                    "a container image reference like repo/name:tag",
                    &v,
                ))
            }
        };
        let quantity = |var: &'static str, default: &str| {
            let v = or(var, default);
            match quantity_value(&v) {
                Some(q) if q > 0.0 => Ok((v, q)),
                _ => Err(bad(var, "a Kubernetes quantity like 4Gi or 500m", &v)),
            }
        };
        let positive = |var: &'static str, default: u64, max: u64| {
            let v = or(var, &default.to_string());
            match v.trim().parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(var, &format!("an integer from 1 to {max}"), &v)),
            }
        };
        let optional_name = |var: &'static str| match get(var) {
            Some(v) if !is_dns1123_subdomain(&v) => Err(bad(
                var,
                "a Kubernetes object name (lowercase DNS-1123 subdomain)",
                &v,
            )),
            other => Ok(other),
        };

        let (mem_req, mem_req_v) = quantity("JOB_MEMORY_REQUEST", "2Gi")?;
        let (mem_lim, mem_lim_v) = quantity("JOB_MEMORY_LIMIT", "4Gi")?;
        let (cpu_req, cpu_req_v) = quantity("JOB_CPU_REQUEST", "1")?;
        let (cpu_lim, cpu_lim_v) = quantity("JOB_CPU_LIMIT", "2")?;
        if mem_lim_v < mem_req_v {
            return Err(bad(
                "JOB_MEMORY_LIMIT",
                "a quantity ≥ JOB_MEMORY_REQUEST",
                &mem_lim,
            ));
        }
        if cpu_lim_v < cpu_req_v {
            return Err(bad(
                "JOB_CPU_LIMIT",
                "a quantity ≥ JOB_CPU_REQUEST",
                &cpu_lim,
            ));
        }

        let server_port = {
            let v = or("SERVER_PORT", "8080");
            match v.trim().parse::<u16>() {
                Ok(p) if p >= 1 => p,
                _ => return Err(bad("SERVER_PORT", "a TCP port from 1 to 65535", &v)),
            }
        };
        let job_backoff_limit = {
            let v = or("JOB_BACKOFF_LIMIT", "0");
            match v.trim().parse::<i32>() {
                Ok(n) if (0..=100).contains(&n) => n,
                _ => return Err(bad("JOB_BACKOFF_LIMIT", "an integer from 0 to 100", &v)),
            }
        };
        let job_git_token_key = or("JOB_GIT_TOKEN_KEY", "GITHUB_TOKEN");
        if !parse::is_secret_key(&job_git_token_key) {
            return Err(bad(
                "JOB_GIT_TOKEN_KEY",
                "a Secret key ([-._a-zA-Z0-9]+)",
                &job_git_token_key,
            ));
        }
        let github_host = or("GITHUB_HOST", "github.com").trim().to_ascii_lowercase();
        if !parse::is_host_port(&github_host) {
            return Err(bad(
                "GITHUB_HOST",
                "a host name with an optional port, like github.com or ghe.example.com:8443",
                &github_host,
            ));
        }
        let job_command = match get("JOB_COMMAND") {
            None => DEFAULT_JOB_COMMAND.iter().map(|s| s.to_string()).collect(),
            Some(v) => match serde_json::from_str::<Vec<String>>(&v) {
                Ok(cmd) if !cmd.is_empty() && !cmd[0].trim().is_empty() => cmd,
                _ => {
                    return Err(bad(
                        "JOB_COMMAND",
                        r#"a non-empty JSON array of strings like ["claude","-p","$(PROMPT)"]"#,
                        &v,
                    ))
                }
            },
        };
        let log_format = match or("LOG_FORMAT", "text")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(bad("LOG_FORMAT", "text or json", &or("LOG_FORMAT", ""))),
        };
        let github_max_body_bytes = {
            let v = or("GITHUB_MAX_BODY_BYTES", "26214400");
            match parse::parse_bytes(&v) {
                Some(n) if (1024..=(1 << 30)).contains(&n) => n as usize,
                _ => {
                    return Err(bad(
                        "GITHUB_MAX_BODY_BYTES",
                        "a size from 1024 to 1GiB, in bytes or with KiB/MiB/GiB",
                        &v,
                    ))
                }
            }
        };
        let allow_insecure_no_signature = {
            let v = or("ALLOW_INSECURE_NO_SIGNATURE", "false");
            parse::parse_bool(&v)
                .ok_or_else(|| bad("ALLOW_INSECURE_NO_SIGNATURE", "true or false", &v))?
        };
        let github_webhook_secrets = load_secrets(&get)?;
        let api_tokens = load_api_tokens(&get)?;
        if github_webhook_secrets.is_empty() && !allow_insecure_no_signature {
            return Err(ConfigError {
                var: "GITHUB_WEBHOOK_SECRET",
                message: "required: set GITHUB_WEBHOOK_SECRET or GITHUB_WEBHOOK_SECRET_FILE \
                          (or ALLOW_INSECURE_NO_SIGNATURE=true for local development only)"
                    .into(),
            });
        }

        Ok(Config {
            server_host: or("SERVER_HOST", "0.0.0.0"),
            server_port,
            namespace,
            job_image: image("JOB_IMAGE", "anthropic/claude-code:latest")?,
            job_ttl_seconds: positive("JOB_TTL_SECONDS", 1800, i32::MAX as u64)? as i32,
            job_memory_request: mem_req,
            job_memory_limit: mem_lim,
            job_cpu_request: cpu_req,
            job_cpu_limit: cpu_lim,
            github_webhook_secrets,
            max_concurrent_jobs: positive("MAX_CONCURRENT_JOBS", 10, 100_000)? as u32,
            job_timeout_seconds: positive("JOB_TIMEOUT_SECONDS", 3600, i32::MAX as u64)? as i64,
            job_backoff_limit,
            job_secret_name: optional_name("JOB_SECRET_NAME")?,
            job_git_image: image("JOB_GIT_IMAGE", "alpine/git:v2.47.2")?,
            job_git_token_key,
            github_host,
            job_command,
            job_service_account: optional_name("JOB_SERVICE_ACCOUNT")?,
            log_format,
            shutdown_timeout_seconds: positive("SHUTDOWN_TIMEOUT_SECONDS", 30, 3600)?,
            shutdown_drain_seconds: match get("SHUTDOWN_DRAIN_SECONDS") {
                None => 0,
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n <= 3600 => n,
                    _ => {
                        return Err(bad(
                            "SHUTDOWN_DRAIN_SECONDS",
                            "an integer from 0 to 3600",
                            &v,
                        ))
                    }
                },
            },
            rules_path: get("ORCHESTRATOR_RULES").map(PathBuf::from),
            github_trusted_users: get("GITHUB_TRUSTED_USERS")
                .map(|v| split_list(&v, &[',']))
                .unwrap_or_default(),
            rate_limit_per_repo_per_minute: positive(
                "RATE_LIMIT_PER_REPO_PER_MINUTE",
                60,
                1_000_000,
            )? as u32,
            rate_limit_per_sender_per_minute: positive(
                "RATE_LIMIT_PER_SENDER_PER_MINUTE",
                30,
                1_000_000,
            )? as u32,
            dedup_cache_ttl_seconds: positive("DEDUP_CACHE_TTL_SECONDS", 3600, 7 * 24 * 3600)?,
            dedup_retention_seconds: positive("DEDUP_RETENTION_SECONDS", 259_200, 30 * 24 * 3600)?,
            github_max_body_bytes,
            allow_insecure_no_signature,
            api_tokens,
            api_rate_limit_per_token_per_minute: match get("API_RATE_LIMIT_PER_TOKEN_PER_MINUTE") {
                None => 600,
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n <= 1_000_000 => n,
                    _ => {
                        return Err(bad(
                            "API_RATE_LIMIT_PER_TOKEN_PER_MINUTE",
                            "an integer from 0 (no limit) to 1000000",
                            &v,
                        ))
                    }
                },
            },
            grafana: grafana::GrafanaConfig::from_lookup(&lookup)?,
            server_workers: positive(
                "SERVER_WORKERS",
                std::thread::available_parallelism().map_or(2, |n| n.get() as u64),
                1024,
            )? as usize,
            server_max_connections: positive("SERVER_MAX_CONNECTIONS", 1024, 1_000_000)? as usize,
            trusted_proxies: trusted_proxies(&or("TRUSTED_PROXIES", ""))?,
            kube_api_qps: positive("KUBE_API_QPS", 50, 100_000)? as u32,
            kube_api_burst: positive("KUBE_API_BURST", 100, 100_000)? as u32,
            source_mailbox_capacity: positive("SOURCE_MAILBOX_CAPACITY", 1024, 1_000_000)? as usize,
            leader: LeaderConfig::from_lookup(&get)?,
            scheduler: SchedulerConfig::from_lookup(&get)?,
            github_api: github::GithubApiConfig::from_lookup(&get)?,
            callbacks: callback::CallbackConfig::from_lookup(&get)?,
            dashboard: dashboard::DashboardConfig::from_lookup(&get)?,
            job_watch_failing: std::time::Duration::from_secs(positive(
                "JOB_WATCH_FAILING_SECONDS",
                30,
                3600,
            )?),
            preflight_interval: {
                let v = or("PREFLIGHT_INTERVAL_SECONDS", "30");
                match v.trim().parse::<f64>() {
                    Ok(s) if (0.05..=3600.0).contains(&s) => std::time::Duration::from_secs_f64(s),
                    _ => {
                        return Err(bad(
                            "PREFLIGHT_INTERVAL_SECONDS",
                            "a number of seconds from 0.05 to 3600",
                            &v,
                        ))
                    }
                }
            },
        })
    }
}

/// `TRUSTED_PROXIES`: addresses (`10.0.0.7`, `::1`) or CIDRs (`10.0.0.0/8`).
fn trusted_proxies(v: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    split_list(v, &[',', ' ', '\n'])
        .iter()
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    bad(
                        "TRUSTED_PROXIES",
                        "comma-separated IP addresses or CIDRs (10.0.0.0/8, fd00::/8, 192.0.2.7)",
                        item,
                    )
                })
        })
        .collect()
}

fn split_list(v: &str, seps: &[char]) -> Vec<String> {
    v.split(seps)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// What an API token may do (see the README's token scopes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// The PM Agent: creates tasks as `pm-agent`, sees and cancels only
    /// `pm-agent` Jobs.
    PmAgent,
    /// The operators' CLI: creates tasks as `cli`, sees and cancels every Job.
    Cli,
    /// Read-only: lists and reads every Job, creates and cancels nothing.
    Viewer,
}

impl TokenKind {
    /// The name in `API_TOKENS` (`pm-agent`, `cli`, `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::PmAgent => "pm-agent",
            TokenKind::Cli => "cli",
            TokenKind::Viewer => "viewer",
        }
    }

    /// The source of the tasks this kind creates (`None`: it creates none).
    pub fn source(self) -> Option<crate::task::TaskSource> {
        match self {
            TokenKind::PmAgent => Some(crate::task::TaskSource::PmAgent),
            TokenKind::Cli => Some(crate::task::TaskSource::Cli),
            TokenKind::Viewer => None,
        }
    }
}

/// One API bearer token and what it may do.
#[derive(Clone, Debug)]
pub struct ApiToken {
    pub kind: TokenKind,
    pub token: Secret,
}

fn load_api_tokens(get: &impl Fn(&str) -> Option<String>) -> Result<Vec<ApiToken>, ConfigError> {
    let (var, text) = match (get("API_TOKENS"), get("API_TOKENS_FILE")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError {
                var: "API_TOKENS_FILE",
                message: "set either API_TOKENS or API_TOKENS_FILE, not both".into(),
            })
        }
        (Some(v), None) => ("API_TOKENS", v),
        (None, Some(path)) => (
            "API_TOKENS_FILE",
            std::fs::read_to_string(&path).map_err(|e| ConfigError {
                var: "API_TOKENS_FILE",
                message: format!("expected a readable file, could not read {path:?}: {e}"),
            })?,
        ),
        (None, None) => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for (i, pair) in split_list(&text, &[',', '\n', '\r'])
        .into_iter()
        .enumerate()
    {
        let expected = "kind=token pairs like pm-agent=TOKEN,cli=TOKEN,viewer=TOKEN (kind: pm-agent, cli or viewer; token at least 16 characters)";
        let bad = |what: &str| ConfigError {
            var,
            message: format!("expected {expected}; entry {} {what}", i + 1),
        };
        let (kind, token) = pair.split_once('=').ok_or_else(|| bad("has no '='"))?;
        let kind = match kind.trim() {
            "pm-agent" => TokenKind::PmAgent,
            "cli" => TokenKind::Cli,
            "viewer" => TokenKind::Viewer,
            _ => return Err(bad("names an unknown kind")),
        };
        let token = token.trim();
        if token.len() < 16 {
            return Err(bad("has a token shorter than 16 characters"));
        }
        out.push(ApiToken {
            kind,
            token: Secret::new(token),
        });
    }
    Ok(out)
}

fn load_secrets(get: &impl Fn(&str) -> Option<String>) -> Result<Vec<Secret>, ConfigError> {
    let inline = get("GITHUB_WEBHOOK_SECRET");
    let file = get("GITHUB_WEBHOOK_SECRET_FILE");
    let text = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError {
                var: "GITHUB_WEBHOOK_SECRET_FILE",
                message: "set either GITHUB_WEBHOOK_SECRET or GITHUB_WEBHOOK_SECRET_FILE, not both"
                    .into(),
            })
        }
        (Some(v), None) => v,
        (None, Some(path)) => std::fs::read_to_string(&path).map_err(|e| ConfigError {
            var: "GITHUB_WEBHOOK_SECRET_FILE",
            message: format!("expected a readable file, could not read {path:?}: {e}"),
        })?,
        (None, None) => return Ok(Vec::new()),
    };
    let secrets: Vec<Secret> = split_list(&text, &[',', '\n', '\r'])
        .into_iter()
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError {
            var: "GITHUB_WEBHOOK_SECRET",
            message: "expected at least one non-empty secret".into(),
        });
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests;
