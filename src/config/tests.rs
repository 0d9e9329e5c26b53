use super::*;
use std::collections::HashMap;

fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(move |k| map.get(k).cloned())
}

fn with_secret(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut vars = vec![("GITHUB_WEBHOOK_SECRET", "s3cret")];
    vars.extend_from_slice(extra);
    load(&vars)
}

#[test]
fn defaults_match_the_documented_values() {
    let c = with_secret(&[]).expect("defaults are valid");
    assert_eq!(c.server_host, "0.0.0.0");
    assert_eq!(c.server_port, 8080);
    assert_eq!(c.namespace, "default");
    assert_eq!(c.job_image, "anthropic/claude-code:latest");
    assert_eq!(c.job_ttl_seconds, 1800);
    assert_eq!(c.job_memory_request, "2Gi");
    assert_eq!(c.job_memory_limit, "4Gi");
    assert_eq!(c.job_cpu_request, "1");
    assert_eq!(c.job_cpu_limit, "2");
    assert_eq!(c.max_concurrent_jobs, 10);
    assert_eq!(c.job_timeout_seconds, 3600);
    assert_eq!(c.job_backoff_limit, 0);
    assert_eq!(c.job_secret_name, None);
    assert_eq!(c.job_git_token_key, "GITHUB_TOKEN");
    assert_eq!(c.job_command[0], "claude");
    assert!(c.job_command.iter().any(|a| a == "$(PROMPT)"));
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.shutdown_timeout_seconds, 30);
    assert_eq!(c.rules_path, None);
    assert!(c.github_trusted_users.is_empty());
    assert_eq!(c.rate_limit_per_repo_per_minute, 60);
    assert_eq!(c.rate_limit_per_sender_per_minute, 30);
    assert_eq!(c.dedup_cache_ttl_seconds, 3600);
    assert_eq!(c.github_max_body_bytes, 25 * 1024 * 1024);
    assert!(!c.allow_insecure_no_signature);
    assert_eq!(c.scheduler.resync, std::time::Duration::from_secs(5));
    assert_eq!(
        c.scheduler.cancelled_sweep,
        std::time::Duration::from_secs(30)
    );
}

#[test]
fn a_bad_quantity_names_the_variable_and_the_expected_form() {
    let err = with_secret(&[("JOB_MEMORY_LIMIT", "lots")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"JOB_MEMORY_LIMIT: expected a Kubernetes quantity like 4Gi or 500m, got "lots""#
    );
}

#[test]
fn bad_values_are_rejected_naming_their_variable() {
    let cases = [
        ("SERVER_PORT", "0"),
        ("SERVER_PORT", "70000"),
        ("SERVER_PORT", "http"),
        ("KUBERNETES_NAMESPACE", "My_Namespace"),
        ("JOB_IMAGE", "has space:latest"),
        ("JOB_TTL_SECONDS", "-5"),
        ("JOB_CPU_REQUEST", "one"),
        ("JOB_CPU_LIMIT", "500m"),
        ("MAX_CONCURRENT_JOBS", "0"),
        ("JOB_TIMEOUT_SECONDS", "1h"),
        ("JOB_BACKOFF_LIMIT", "-1"),
        ("JOB_SECRET_NAME", "Agent Secrets"),
        ("JOB_GIT_TOKEN_KEY", "a/b"),
        ("JOB_COMMAND", "claude -p"),
        ("JOB_COMMAND", "[]"),
        ("LOG_FORMAT", "xml"),
        ("RATE_LIMIT_PER_REPO_PER_MINUTE", "0"),
        ("GITHUB_MAX_BODY_BYTES", "25MB"),
        ("ALLOW_INSECURE_NO_SIGNATURE", "maybe"),
        ("SCHEDULER_RESYNC_SECONDS", "0"),
        ("CANCELLED_JOB_SWEEP_SECONDS", "half a minute"),
    ];
    for (var, value) in cases {
        let err = with_secret(&[(var, value)]).expect_err(var);
        assert_eq!(err.var, var, "{value:?} -> {err}");
        assert!(err.to_string().starts_with(var), "{err}");
    }
}

#[test]
fn memory_limit_below_request_is_rejected() {
    let err = with_secret(&[("JOB_MEMORY_REQUEST", "8Gi")]).unwrap_err();
    assert_eq!(err.var, "JOB_MEMORY_LIMIT");
}

#[test]
fn several_secrets_are_accepted_for_rotation() {
    let c = with_secret(&[]).unwrap();
    assert_eq!(c.github_webhook_secrets.len(), 1);
    let c = load(&[("GITHUB_WEBHOOK_SECRET", "old, new")]).unwrap();
    assert_eq!(
        c.github_webhook_secrets,
        vec![Secret::new("old"), Secret::new("new")]
    );
}

#[test]
fn secret_file_contents_are_trimmed_and_split_by_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "first\nsecond\n\n").unwrap();
    let p = path.to_string_lossy().to_string();
    let c = load(&[("GITHUB_WEBHOOK_SECRET_FILE", &p)]).unwrap();
    assert_eq!(
        c.github_webhook_secrets,
        vec![Secret::new("first"), Secret::new("second")]
    );
}

#[test]
fn a_missing_secret_file_is_an_error_naming_the_variable() {
    let err = load(&[("GITHUB_WEBHOOK_SECRET_FILE", "/nonexistent/secret")]).unwrap_err();
    assert_eq!(err.var, "GITHUB_WEBHOOK_SECRET_FILE");
}

#[test]
fn no_secret_is_refused_unless_insecure_mode_is_explicit() {
    assert_eq!(load(&[]).unwrap_err().var, "GITHUB_WEBHOOK_SECRET");
    let c = load(&[("ALLOW_INSECURE_NO_SIGNATURE", "true")]).unwrap();
    assert!(c.github_webhook_secrets.is_empty());
}

#[test]
fn secrets_never_show_in_debug_output() {
    let c = load(&[("GITHUB_WEBHOOK_SECRET", "hunter2")]).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"));
    assert!(debug.contains("[redacted]"));
    assert_eq!(Secret::new("hunter2").to_string(), "[redacted]");
}

#[test]
fn lists_and_commands_parse() {
    let c = with_secret(&[
        ("GITHUB_TRUSTED_USERS", "alice, bob,,"),
        ("JOB_COMMAND", r#"["my-agent","--task","$(PROMPT)"]"#),
        ("GITHUB_MAX_BODY_BYTES", "1MiB"),
        ("LOG_FORMAT", "JSON"),
    ])
    .unwrap();
    assert_eq!(c.github_trusted_users, vec!["alice", "bob"]);
    assert_eq!(c.job_command, vec!["my-agent", "--task", "$(PROMPT)"]);
    assert_eq!(c.github_max_body_bytes, 1 << 20);
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn api_tokens_name_their_kind_and_the_per_token_limit_is_validated() {
    let c = with_secret(&[(
        "API_TOKENS",
        "pm-agent=pm-token-0123456789ab,cli=cli-token-0123456789ab,viewer=viewer-token-0123456789",
    )])
    .expect("three kinds");
    let kinds: Vec<TokenKind> = c.api_tokens.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [TokenKind::PmAgent, TokenKind::Cli, TokenKind::Viewer]
    );
    assert_eq!(TokenKind::Viewer.source(), None, "a viewer creates nothing");
    assert_eq!(c.api_rate_limit_per_token_per_minute, 600);
    let e = with_secret(&[("API_TOKENS", "admin=admin-token-0123456789")]).unwrap_err();
    assert_eq!(e.var, "API_TOKENS");
    assert!(e.message.contains("viewer"), "{}", e.message);
    assert!(
        !e.message.contains("admin-token"),
        "no token in the message"
    );
    let off = with_secret(&[("API_RATE_LIMIT_PER_TOKEN_PER_MINUTE", "0")]).expect("0 is off");
    assert_eq!(off.api_rate_limit_per_token_per_minute, 0);
    for bad in ["-1", "lots", "1000001"] {
        let e = with_secret(&[("API_RATE_LIMIT_PER_TOKEN_PER_MINUTE", bad)]).unwrap_err();
        assert_eq!(e.var, "API_RATE_LIMIT_PER_TOKEN_PER_MINUTE", "{bad}");
    }
}

#[test]
fn github_host_is_a_host_with_an_optional_port_lower_cased() {
    assert_eq!(with_secret(&[]).unwrap().github_host, "github.com");
    assert_eq!(
        with_secret(&[("GITHUB_HOST", "GHE.Example.com:8443")])
            .unwrap()
            .github_host,
        "ghe.example.com:8443"
    );
    for bad in [
        "https://github.com",
        "github.com/",
        "user@github.com",
        "github.com:0",
        "github.com:99999",
        "-github.com",
        "git hub.com",
        "github.com:",
    ] {
        let e = with_secret(&[("GITHUB_HOST", bad)]).unwrap_err();
        assert_eq!(e.var, "GITHUB_HOST", "{bad}");
    }
    let e = with_secret(&[("GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE", "0")]).unwrap_err();
    assert_eq!(e.var, "GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE");
}
