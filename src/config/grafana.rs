//! Settings of the Grafana / Alertmanager source, read from `GRAFANA_*`
//! environment variables once at start-up. A bad value is a [`ConfigError`]
//! naming the variable and the expected form; secret values never appear in
//! errors or `Debug` output.
//!
//! Authentication mirrors what Grafana's webhook contact point can send
//! (`tests/fixtures/grafana/NOTES.md`): Basic auth *or* an
//! `Authorization: <scheme> <credentials>` header (Grafana refuses both at
//! once, so do we), and/or an HMAC-SHA256 signature header. With nothing
//! configured, [`GrafanaConfig::auth_configured`] is false and the caller
//! must refuse to serve the route unless an insecure development flag is set.

pub mod matchers;

use super::parse::{parse_bool, parse_bytes};
use super::{ConfigError, Secret};
use matchers::{is_label_name, Matchers};

/// Default HMAC signature header, as Grafana sends it.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Grafana-Alerting-Signature";
/// Default accepted clock skew for signed timestamps, seconds.
pub const DEFAULT_MAX_SKEW_SECONDS: u64 = 300;
/// Default body limit: 5 MiB (Alertmanager groups can carry many alerts).
pub const DEFAULT_MAX_BODY_BYTES: usize = 5 << 20;
/// Default cap on the alerts of one notification: more is refused whole
/// (413), so an alert storm cannot become thousands of Jobs at once.
pub const DEFAULT_MAX_ALERTS_PER_NOTIFICATION: usize = 200;
/// Largest accepted `GRAFANA_MAX_ALERTS_PER_NOTIFICATION`.
pub const MAX_ALERTS_PER_NOTIFICATION_LIMIT: usize = 10_000;
/// Default investigations one alert rule may start per minute (burst of
/// the same size).
pub const DEFAULT_RATE_LIMIT_PER_RULE_PER_MINUTE: u32 = 10;

/// `Authorization: Basic …` credentials (`GRAFANA_BASIC_AUTH=user:password`).
#[derive(Clone, Debug)]
pub struct BasicAuth {
    /// The expected decoded `user:password`.
    pub user_password: Secret,
}

/// `Authorization: <scheme> <credentials>` (`GRAFANA_AUTH_SCHEME`, `GRAFANA_AUTH_CREDENTIALS`).
#[derive(Clone, Debug)]
pub struct AuthorizationHeader {
    /// The scheme, compared case-insensitively (default `Bearer`).
    pub scheme: String,
    /// The expected credentials, compared in constant time.
    pub credentials: Secret,
}

/// HMAC-SHA256 body signature (`GRAFANA_HMAC_SECRET` and friends).
#[derive(Clone, Debug)]
pub struct HmacConfig {
    /// Accepted secrets; several allow rotation.
    pub secrets: Vec<Secret>,
    /// Header carrying the lowercase hex signature.
    pub signature_header: String,
    /// Header carrying the unix-seconds timestamp; when set, the signed data
    /// is `timestamp:body` and the timestamp must be within `max_skew_seconds`.
    pub timestamp_header: Option<String>,
    /// Largest accepted distance between the timestamp and our clock, seconds.
    pub max_skew_seconds: u64,
}

/// The Grafana / Alertmanager source configuration.
#[derive(Clone, Debug)]
pub struct GrafanaConfig {
    /// `GRAFANA_BASIC_AUTH` — `user:password` expected as Basic auth.
    pub basic_auth: Option<BasicAuth>,
    /// `GRAFANA_AUTH_CREDENTIALS` + `GRAFANA_AUTH_SCHEME` (default `Bearer`).
    pub authorization: Option<AuthorizationHeader>,
    /// `GRAFANA_HMAC_SECRET` (comma-separated) + `GRAFANA_SIGNATURE_HEADER`
    /// (default `X-Grafana-Alerting-Signature`) + `GRAFANA_TIMESTAMP_HEADER`
    /// (optional) + `GRAFANA_MAX_SKEW_SECONDS` (default 300).
    pub hmac: Option<HmacConfig>,
    /// `GRAFANA_ALERT_MATCHERS` — which firing alerts become tasks. Default: all.
    pub matchers: Matchers,
    /// `GRAFANA_PRIORITY_LABEL` — label mapped to the task priority. Default `severity`.
    pub priority_label: String,
    /// `GRAFANA_CANCEL_RUNNING_ON_RESOLVE` — a resolved alert also cancels a
    /// running Job (queued ones are always cancelled). Default false.
    pub cancel_running_on_resolve: bool,
    /// `GRAFANA_REPOSITORY_LABEL` — label (or annotation) naming the
    /// `owner/name` repository an investigation concerns. Default `repository`.
    pub repository_label: String,
    /// `GRAFANA_MAX_BODY_BYTES` — largest accepted body. Default 5 MiB.
    pub max_body_bytes: usize,
    /// `GRAFANA_MAX_ALERTS_PER_NOTIFICATION` — a notification with more
    /// alerts is refused whole (413). Default 200.
    pub max_alerts_per_notification: usize,
    /// `GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE` — investigations one alert
    /// rule (see [`super::rule_key`]) may start per minute; the alerts beyond
    /// it are answered `rate_limited` and not retried. Default 10.
    pub rate_limit_per_rule_per_minute: u32,
    /// `GRAFANA_URL` — the Grafana the alerts come from (`https://host[:port][/path]`).
    /// Only payload links on its origin (scheme, host and port) and under its
    /// path go into prompts and `TASK_URL`; unset, no payload link does.
    pub grafana_url: Option<url::Url>,
}

impl Default for GrafanaConfig {
    /// No authentication, every default.
    fn default() -> Self {
        GrafanaConfig {
            basic_auth: None,
            authorization: None,
            hmac: None,
            matchers: Matchers::default(),
            priority_label: "severity".into(),
            cancel_running_on_resolve: false,
            repository_label: "repository".into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_alerts_per_notification: DEFAULT_MAX_ALERTS_PER_NOTIFICATION,
            rate_limit_per_rule_per_minute: DEFAULT_RATE_LIMIT_PER_RULE_PER_MINUTE,
            grafana_url: None,
        }
    }
}

fn bad(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

impl GrafanaConfig {
    /// Loads the configuration from the process environment.
    pub fn from_env() -> Result<GrafanaConfig, ConfigError> {
        GrafanaConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Loads the configuration from `lookup` (variable name → value). Empty
    /// values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<GrafanaConfig, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let mut cfg = GrafanaConfig::default();

        if let Some(v) = get("GRAFANA_BASIC_AUTH") {
            match v.split_once(':') {
                Some((user, _)) if !user.is_empty() => {
                    cfg.basic_auth = Some(BasicAuth {
                        user_password: Secret::new(v),
                    })
                }
                _ => {
                    return Err(bad(
                        "GRAFANA_BASIC_AUTH",
                        "expected user:password with a non-empty user (value not shown)",
                    ))
                }
            }
        }
        let scheme = get("GRAFANA_AUTH_SCHEME");
        match (get("GRAFANA_AUTH_CREDENTIALS"), scheme) {
            (Some(credentials), scheme) => {
                let scheme = scheme.map_or_else(|| "Bearer".to_string(), |s| s.trim().to_string());
                if !is_token(&scheme) {
                    return Err(bad(
                        "GRAFANA_AUTH_SCHEME",
                        format!("expected an HTTP auth scheme like Bearer, got {scheme:?}"),
                    ));
                }
                if credentials.trim() != credentials || credentials.contains(char::is_control) {
                    return Err(bad(
                        "GRAFANA_AUTH_CREDENTIALS",
                        "expected a credential without surrounding whitespace or control \
                         characters (value not shown)",
                    ));
                }
                cfg.authorization = Some(AuthorizationHeader {
                    scheme,
                    credentials: Secret::new(credentials),
                });
            }
            (None, Some(_)) => {
                return Err(bad(
                    "GRAFANA_AUTH_SCHEME",
                    "only meaningful with GRAFANA_AUTH_CREDENTIALS, which is not set",
                ))
            }
            (None, None) => {}
        }
        if cfg.basic_auth.is_some() && cfg.authorization.is_some() {
            return Err(bad(
                "GRAFANA_AUTH_CREDENTIALS",
                "set either GRAFANA_BASIC_AUTH or GRAFANA_AUTH_CREDENTIALS, not both \
                 (both use the one Authorization header; Grafana refuses this too)",
            ));
        }
        cfg.hmac = hmac_config(&get)?;

        if let Some(v) = get("GRAFANA_ALERT_MATCHERS") {
            cfg.matchers = Matchers::parse(&v).map_err(|e| {
                bad(
                    "GRAFANA_ALERT_MATCHERS",
                    format!("expected label matchers like severity=critical,team!=infra,service=~\"api|web\": {e}"),
                )
            })?;
        }
        let label = |var: &'static str, default: &str| {
            let v = get(var).map_or_else(|| default.to_string(), |v| v.trim().to_string());
            if is_label_name(&v) {
                Ok(v)
            } else {
                Err(bad(var, format!("expected a label name, got {v:?}")))
            }
        };
        cfg.priority_label = label("GRAFANA_PRIORITY_LABEL", "severity")?;
        cfg.repository_label = label("GRAFANA_REPOSITORY_LABEL", "repository")?;
        if let Some(v) = get("GRAFANA_CANCEL_RUNNING_ON_RESOLVE") {
            cfg.cancel_running_on_resolve = parse_bool(&v).ok_or_else(|| {
                bad(
                    "GRAFANA_CANCEL_RUNNING_ON_RESOLVE",
                    format!("expected true or false, got {v:?}"),
                )
            })?;
        }
        if let Some(v) = get("GRAFANA_MAX_BODY_BYTES") {
            cfg.max_body_bytes = match parse_bytes(&v) {
                Some(n) if (1024..=(1 << 30)).contains(&n) => n as usize,
                _ => {
                    return Err(bad(
                        "GRAFANA_MAX_BODY_BYTES",
                        format!("expected a size from 1024 to 1GiB, in bytes or with KiB/MiB/GiB, got {v:?}"),
                    ))
                }
            };
        }
        if let Some(v) = get("GRAFANA_MAX_ALERTS_PER_NOTIFICATION") {
            cfg.max_alerts_per_notification = match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_ALERTS_PER_NOTIFICATION_LIMIT).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "GRAFANA_MAX_ALERTS_PER_NOTIFICATION",
                        format!(
                            "expected an integer from 1 to {MAX_ALERTS_PER_NOTIFICATION_LIMIT}, got {v:?}"
                        ),
                    ))
                }
            };
        }
        if let Some(v) = get("GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE") {
            cfg.rate_limit_per_rule_per_minute = match v.trim().parse::<u32>() {
                Ok(n) if (1..=100_000).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE",
                        format!("expected an integer from 1 to 100000, got {v:?}"),
                    ))
                }
            };
        }
        if let Some(v) = get("GRAFANA_URL") {
            cfg.grafana_url = Some(parse_grafana_url(v.trim()).map_err(|why| {
                bad(
                    "GRAFANA_URL",
                    format!("expected an http(s) URL like https://grafana.example.com/ ({why}), got {v:?}"),
                )
            })?);
        }
        Ok(cfg)
    }

    /// True if at least one authentication mechanism is configured.
    pub fn auth_configured(&self) -> bool {
        self.basic_auth.is_some() || self.authorization.is_some() || self.hmac.is_some()
    }

    /// The header the caller should pass to `authenticate` as `signature`, if HMAC is on.
    pub fn signature_header(&self) -> Option<&str> {
        self.hmac.as_ref().map(|h| h.signature_header.as_str())
    }

    /// The header the caller should pass to `authenticate` as `timestamp`, if configured.
    pub fn timestamp_header(&self) -> Option<&str> {
        self.hmac
            .as_ref()
            .and_then(|h| h.timestamp_header.as_deref())
    }
}

fn hmac_config(get: &impl Fn(&str) -> Option<String>) -> Result<Option<HmacConfig>, ConfigError> {
    let header = |var: &'static str| match get(var) {
        Some(v) if !is_token(v.trim()) => Err(bad(
            var,
            format!("expected an HTTP header name like X-Grafana-Alerting-Signature, got {v:?}"),
        )),
        other => Ok(other.map(|v| v.trim().to_string())),
    };
    let signature_header = header("GRAFANA_SIGNATURE_HEADER")?;
    let timestamp_header = header("GRAFANA_TIMESTAMP_HEADER")?;
    let skew = get("GRAFANA_MAX_SKEW_SECONDS");
    let Some(secrets) = get("GRAFANA_HMAC_SECRET") else {
        // Settings that only make sense with a secret are mistakes without one.
        for (var, set) in [
            ("GRAFANA_SIGNATURE_HEADER", signature_header.is_some()),
            ("GRAFANA_TIMESTAMP_HEADER", timestamp_header.is_some()),
            ("GRAFANA_MAX_SKEW_SECONDS", skew.is_some()),
        ] {
            if set {
                return Err(bad(
                    var,
                    "only meaningful with GRAFANA_HMAC_SECRET, which is not set",
                ));
            }
        }
        return Ok(None);
    };
    let secrets: Vec<Secret> = secrets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(bad(
            "GRAFANA_HMAC_SECRET",
            "expected one or more comma-separated non-empty secrets (value not shown)",
        ));
    }
    let max_skew_seconds = match skew {
        None => DEFAULT_MAX_SKEW_SECONDS,
        Some(v) if timestamp_header.is_none() => {
            return Err(bad(
                "GRAFANA_MAX_SKEW_SECONDS",
                format!(
                    "only meaningful with GRAFANA_TIMESTAMP_HEADER, which is not set (got {v:?})"
                ),
            ))
        }
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if (1..=86_400).contains(&n) => n,
            _ => {
                return Err(bad(
                    "GRAFANA_MAX_SKEW_SECONDS",
                    format!("expected an integer from 1 to 86400 (seconds), got {v:?}"),
                ))
            }
        },
    };
    Ok(Some(HmacConfig {
        secrets,
        signature_header: signature_header.unwrap_or_else(|| DEFAULT_SIGNATURE_HEADER.into()),
        timestamp_header,
        max_skew_seconds,
    }))
}

/// `GRAFANA_URL`: an absolute `http`/`https` URL with a host, without
/// credentials, query or fragment. The path is kept with a trailing `/`, so
/// "under it" means under a whole path segment.
fn parse_grafana_url(v: &str) -> Result<url::Url, &'static str> {
    let mut u = url::Url::parse(v).map_err(|_| "not a URL")?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("the scheme must be http or https");
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("no host");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("credentials are not allowed");
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("a query or fragment is not allowed");
    }
    if !u.path().ends_with('/') {
        let path = format!("{}/", u.path());
        u.set_path(&path);
    }
    Ok(u)
}

/// True if `link` is on `base`'s origin (scheme, host and port, compared
/// as parsed URLs, default ports included) and its path is under `base`'s.
pub fn link_under(base: &url::Url, link: &str) -> bool {
    let Ok(u) = url::Url::parse(link) else {
        return false;
    };
    u.origin() == base.origin()
        && u.username().is_empty()
        && u.password().is_none()
        && (u.path() == base.path().trim_end_matches('/') || u.path().starts_with(base.path()))
}

/// An RFC 9110 `token` (header names and auth schemes).
fn is_token(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests;
