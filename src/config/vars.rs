//! The one table of the environment variables `orchestrator serve` reads:
//! name, default and a one-line meaning. `serve --help` is generated from it
//! ([`help_text`]), and tests hold it to the code and to the README: every
//! variable the configuration reads is listed, every listed default is what
//! the code uses when the variable is unset, and the README's configuration
//! table names each one with the same default.

/// What a variable is when it is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// This value, exactly as it could be written (tests set the variable to
    /// it and expect the same configuration as when it is unset).
    Value(&'static str),
    /// Described in words (computed, absent, or required).
    Words(&'static str),
}

/// One environment variable of the service.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// Its default.
    pub default: DefaultValue,
    /// What it sets, in one line.
    pub help: &'static str,
}

const fn var(name: &'static str, default: &'static str, help: &'static str) -> EnvVar {
    EnvVar {
        name,
        default: DefaultValue::Value(default),
        help,
    }
}

const fn words(name: &'static str, default: &'static str, help: &'static str) -> EnvVar {
    EnvVar {
        name,
        default: DefaultValue::Words(default),
        help,
    }
}

/// Every environment variable `orchestrator serve` reads, in the README's
/// order.
pub const VARIABLES: &[EnvVar] = &[
    var(
        "SERVER_HOST",
        "0.0.0.0",
        "address to bind (`serve --embedded-cluster`: 127.0.0.1 unless set)",
    ),
    var("SERVER_PORT", "8080", "port to bind"),
    words("SERVER_WORKERS", "CPU cores", "HTTP worker threads"),
    var(
        "SERVER_MAX_CONNECTIONS",
        "1024",
        "open connections each HTTP worker serves at once; more wait in the listen backlog",
    ),
    words(
        "TRUSTED_PROXIES",
        "unset",
        "comma-separated addresses or CIDRs of proxies whose X-Forwarded-For names the client",
    ),
    var(
        "JOB_WATCH_FAILING_SECONDS",
        "30",
        "how long the Job watch may keep failing before /ready answers 503",
    ),
    var(
        "KUBERNETES_NAMESPACE",
        "default",
        "namespace of the scheduler Lease, the dedup record and the Jobs (a rule's namespace: runs its Jobs there)",
    ),
    var("JOB_IMAGE", "anthropic/claude-code:latest", "agent image"),
    words(
        "JOB_COMMAND",
        "Claude Code in print mode on $(PROMPT)",
        "agent command, a JSON array; $(VAR) expanded by Kubernetes, never by a shell",
    ),
    var(
        "JOB_TTL_SECONDS",
        "1800",
        "ttlSecondsAfterFinished of each Job",
    ),
    var(
        "JOB_TIMEOUT_SECONDS",
        "3600",
        "activeDeadlineSeconds of each Job",
    ),
    var("JOB_BACKOFF_LIMIT", "0", "pod retries of a failed agent"),
    var("JOB_MEMORY_REQUEST", "2Gi", "agent memory request"),
    var("JOB_MEMORY_LIMIT", "4Gi", "agent memory limit"),
    var("JOB_CPU_REQUEST", "1", "agent CPU request"),
    var("JOB_CPU_LIMIT", "2", "agent CPU limit"),
    words(
        "JOB_SECRET_NAME",
        "unset",
        "Secret whose keys become the agent's env (by reference)",
    ),
    var(
        "JOB_GIT_IMAGE",
        "alpine/git:v2.47.2",
        "image of the init containers that clone",
    ),
    var(
        "JOB_GIT_TOKEN_KEY",
        "GITHUB_TOKEN",
        "key of JOB_SECRET_NAME git clones with",
    ),
    var(
        "GITHUB_HOST",
        "github.com",
        "host[:port] the clone credential is for (other hosts clone without it)",
    ),
    words(
        "JOB_SERVICE_ACCOUNT",
        "unset",
        "service account of the agent pod",
    ),
    var("MAX_CONCURRENT_JOBS", "10", "Jobs running at once"),
    var(
        "MAX_CONCURRENT_JOBS_PER_REPOSITORY",
        "0",
        "Jobs running at once per repository (0: no cap)",
    ),
    words(
        "MAX_CONCURRENT_JOBS_PER_SOURCE",
        "unset",
        "Jobs running at once per source, as source=cap pairs (github=5,grafana=2)",
    ),
    var(
        "BUDGET_MINUTES_PER_REPOSITORY_PER_DAY",
        "0",
        "agent-minutes per repository per UTC day (0: none)",
    ),
    words(
        "BUDGET_MINUTES_PER_SOURCE_PER_DAY",
        "unset",
        "agent-minutes per source per UTC day, as source=minutes pairs",
    ),
    var(
        "BUDGET_USD_PER_REPOSITORY_PER_DAY",
        "0",
        "reported agent cost per repository per UTC day, USD (0: none)",
    ),
    var(
        "SCHEDULER",
        "builtin",
        "who admits queued Jobs: builtin (this service) or kueue (Kueue, kueue.x-k8s.io)",
    ),
    var(
        "KUEUE_QUEUE_NAME",
        "agents",
        "SCHEDULER=kueue: the LocalQueue of every Job KUEUE_QUEUES does not place",
    ),
    words(
        "KUEUE_QUEUES",
        "unset",
        "SCHEDULER=kueue: LocalQueue per rule, repository or source (rule:NAME=q,repo:OWNER/NAME=q,source:NAME=q)",
    ),
    words(
        "KUEUE_PRIORITY_CLASSES",
        "unset",
        "SCHEDULER=kueue: WorkloadPriorityClass per task priority, as priority=class pairs (50=agents-high,0=agents-normal)",
    ),
    words(
        "GITHUB_WEBHOOK_SECRET",
        "required",
        "GitHub webhook secret(s), comma/newline separated",
    ),
    words(
        "GITHUB_WEBHOOK_SECRET_FILE",
        "unset",
        "file holding the webhook secret(s)",
    ),
    var(
        "ALLOW_INSECURE_NO_SIGNATURE",
        "false",
        "development only: accept unsigned webhooks when no secret is set",
    ),
    words(
        "API_TOKENS",
        "unset",
        "bearer tokens of /api/v1 as kind=token pairs (pm-agent, cli, viewer)",
    ),
    words("API_TOKENS_FILE", "unset", "file holding API_TOKENS"),
    var(
        "API_RATE_LIMIT_PER_TOKEN_PER_MINUTE",
        "600",
        "/api/v1 requests per token per minute (0: no limit)",
    ),
    words(
        "CALLBACK_SECRET",
        "unset",
        "HMAC-SHA256 key of task callbacks (unset: no callbacks)",
    ),
    words(
        "CALLBACK_SECRET_FILE",
        "unset",
        "file holding CALLBACK_SECRET",
    ),
    words(
        "CALLBACK_ALLOWED_HOSTS",
        "unset",
        "host names (*.example.com for subdomains), addresses or CIDRs a callback_url may name",
    ),
    words(
        "GRAFANA_BASIC_AUTH",
        "unset",
        "user:password Grafana sends as Basic auth",
    ),
    words(
        "GRAFANA_AUTH_CREDENTIALS",
        "unset",
        "credentials of the Authorization header Grafana sends",
    ),
    var(
        "GRAFANA_AUTH_SCHEME",
        "Bearer",
        "scheme of that header (only with GRAFANA_AUTH_CREDENTIALS)",
    ),
    words(
        "GRAFANA_HMAC_SECRET",
        "unset",
        "HMAC-SHA256 secret(s) of Grafana's signature",
    ),
    var(
        "GRAFANA_SIGNATURE_HEADER",
        "X-Grafana-Alerting-Signature",
        "header carrying that signature (only with GRAFANA_HMAC_SECRET)",
    ),
    words(
        "GRAFANA_TIMESTAMP_HEADER",
        "unset",
        "header of the signed timestamp",
    ),
    var(
        "GRAFANA_MAX_SKEW_SECONDS",
        "300",
        "oldest accepted timestamp (only with GRAFANA_TIMESTAMP_HEADER)",
    ),
    words(
        "GRAFANA_ALERT_MATCHERS",
        "all alerts",
        "label matchers selecting alerts",
    ),
    var(
        "GRAFANA_PRIORITY_LABEL",
        "severity",
        "alert label mapped to priority",
    ),
    var(
        "GRAFANA_REPOSITORY_LABEL",
        "repository",
        "alert label naming the owner/name repository",
    ),
    var(
        "GRAFANA_CANCEL_RUNNING_ON_RESOLVE",
        "false",
        "a resolved alert also stops its running Job",
    ),
    var("GRAFANA_MAX_BODY_BYTES", "5MiB", "Grafana body limit"),
    var(
        "GRAFANA_MAX_ALERTS_PER_NOTIFICATION",
        "200",
        "a notification with more alerts is refused whole (413)",
    ),
    var(
        "GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE",
        "10",
        "investigations one alert rule may start per minute",
    ),
    words(
        "GRAFANA_URL",
        "unset",
        "the Grafana whose links may go into prompts (unset: none)",
    ),
    words(
        "GITHUB_TRUSTED_USERS",
        "empty",
        "GitHub logins trusted besides members",
    ),
    var(
        "GITHUB_MAX_BODY_BYTES",
        "25MiB",
        "GitHub webhook body limit",
    ),
    var(
        "GITHUB_API_URL",
        "https://api.github.com",
        "GitHub's REST API (Enterprise Server: https://HOST/api/v3)",
    ),
    words(
        "GITHUB_TOKEN",
        "unset",
        "token that reports back to GitHub (comments, reactions)",
    ),
    words("GITHUB_TOKEN_FILE", "unset", "file holding GITHUB_TOKEN"),
    words(
        "GITHUB_APP_ID",
        "unset",
        "GitHub App id: report as the App (installation tokens, check runs)",
    ),
    words(
        "GITHUB_APP_PRIVATE_KEY",
        "unset",
        "the App's PEM private key",
    ),
    words(
        "GITHUB_APP_PRIVATE_KEY_FILE",
        "unset",
        "file holding the App's private key",
    ),
    words(
        "PUBLIC_URL",
        "unset",
        "where people reach this service; reports link to a Job's logs under it",
    ),
    var(
        "DASHBOARD_PUBLIC",
        "false",
        "`true`: the dashboard's pages need no login (read-only)",
    ),
    words(
        "DASHBOARD_SESSION_SECRET",
        "random per process",
        "HMAC key (32+ bytes) of dashboard session cookies, shared so replicas agree",
    ),
    var(
        "REPORT_GIVE_UP_SECONDS",
        "900",
        "how long a failing report (GitHub, callback) is retried",
    ),
    var(
        "DELIVERY_RECOVERY_INTERVAL_SECONDS",
        "300",
        "how often the leader asks GitHub to redeliver missed webhook deliveries (App only; 0: never)",
    ),
    var(
        "DELIVERY_RECOVERY_WINDOW_SECONDS",
        "259200",
        "how far back missed deliveries are looked for",
    ),
    var(
        "DELIVERY_RECOVERY_MAX_PER_CYCLE",
        "50",
        "most redeliveries asked for per cycle",
    ),
    words("ORCHESTRATOR_RULES", "unset", "YAML routing-rules file"),
    var(
        "RATE_LIMIT_PER_REPO_PER_MINUTE",
        "60",
        "accepted tasks per repository per minute",
    ),
    var(
        "RATE_LIMIT_PER_SENDER_PER_MINUTE",
        "30",
        "accepted tasks per sender per minute",
    ),
    var(
        "DEDUP_CACHE_TTL_SECONDS",
        "3600",
        "lifetime of in-memory dedup entries",
    ),
    var(
        "DEDUP_RETENTION_SECONDS",
        "259200",
        "how long the dedup record in the API server keeps accepted dedup keys",
    ),
    var("KUBE_API_QPS", "50", "Kubernetes requests per second"),
    var(
        "KUBE_API_BURST",
        "100",
        "Kubernetes requests above KUBE_API_QPS in a burst",
    ),
    var(
        "SOURCE_MAILBOX_CAPACITY",
        "1024",
        "tasks each source keeps in flight",
    ),
    var("LEADER_LEASE_SECONDS", "15", "scheduler Lease duration"),
    var(
        "LEADER_RENEW_DEADLINE_SECONDS",
        "10",
        "a leader not renewed within this stops admitting",
    ),
    var(
        "LEADER_RETRY_SECONDS",
        "2",
        "how often the Lease is renewed or tried",
    ),
    var(
        "SCHEDULER_RESYNC_SECONDS",
        "5",
        "scheduler re-read and admission retry period",
    ),
    var(
        "CANCELLED_JOB_SWEEP_SECONDS",
        "30",
        "how often old cancelled Jobs are deleted",
    ),
    var(
        "PREFLIGHT_INTERVAL_SECONDS",
        "30",
        "how often the preflight checks run",
    ),
    var(
        "SHUTDOWN_TIMEOUT_SECONDS",
        "30",
        "grace period on SIGTERM/SIGINT",
    ),
    var(
        "SHUTDOWN_DRAIN_SECONDS",
        "0",
        "serve with /ready at 503 this long before closing",
    ),
    var("LOG_FORMAT", "text", "text or json"),
    var("RUST_LOG", "info,actix_server::worker=warn", "log filter"),
    words("POD_NAME", "host name", "identity in the scheduler Lease"),
    words(
        "KUBECONFIG",
        "~/.kube/config",
        "kubeconfig outside a cluster",
    ),
];

/// Variables read outside [`super::Config::from_lookup`] (logging, the
/// Lease identity, the cluster connection).
pub const READ_ELSEWHERE: &[&str] = &["RUST_LOG", "POD_NAME", "KUBECONFIG"];

/// The default as shown: the value, or the words.
pub fn default_text(v: &EnvVar) -> &'static str {
    match v.default {
        DefaultValue::Value(s) | DefaultValue::Words(s) => s,
    }
}

/// The list `orchestrator serve --help` ends with.
pub fn help_text() -> String {
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from(
        "Environment variables (a bad value stops start-up with a message naming it):\n",
    );
    for v in VARIABLES {
        out.push_str(&format!(
            "  {:width$}  {} [default: {}]\n",
            v.name,
            v.help,
            default_text(v)
        ));
    }
    out
}
