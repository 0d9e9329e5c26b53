//! Grafana and Prometheus Alertmanager alert webhooks: authentication, then
//! one decision per alert in the notification.
//!
//! ```text
//!  headers + body ──authenticate──▶ 401 on any failure
//!        │
//!  decode (version "1" Grafana | "4" Alertmanager) ──▶ 400 on failure
//!        │
//!  per alert:  not selected by GRAFANA_ALERT_MATCHERS ──▶ Ignored
//!              firing   ──▶ Fire(Task "investigate")
//!              resolved ──▶ Resolve { job_name }   (cancel the task it fired)
//! ```
//!
//! An alert's identity is its fingerprint plus the start of its firing
//! episode (`startsAt`): Grafana repeats a notification every
//! `repeat_interval`, and HA Alertmanager/Grafana replicas each send it, but
//! all of those carry the same pair, so they map to the same dedup key and
//! the same Job name, and are answered as duplicates. [`alert_job_name`] is
//! the one place that name is computed, for firing and resolved alerts
//! alike. A new episode of the same alert (new `startsAt`) is a new task.

mod auth;
mod payload;
mod prompt;

use crate::config::grafana::{link_under, GrafanaConfig};
pub use auth::{authenticate, authenticate_headers, AuthError};
pub use payload::{label_fingerprint, Format};

use crate::task::{git, truncate_with_marker, Task, TaskSource};
use chrono::{DateTime, SecondsFormat, Utc};
use payload::{Alert, BodyError, Notification};
use prompt::{Pair, PromptContext};
use std::collections::BTreeMap;

/// The task kind of every alert task.
pub const KIND: &str = "investigate";

/// Task label holding the alert rule's identity (see [`rule_key`]), the key
/// of the per-rule rate limit (`GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE`).
pub const RULE_LABEL: &str = "alert_rule";

/// What to do about one alert of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertDecision {
    /// A selected firing alert: queue this investigation (boxed: a Task is large).
    Fire(Box<Task>),
    /// A selected resolved alert: cancel the task its firing created — the
    /// queued one always, the running Job if `cancel_running_on_resolve`.
    Resolve {
        /// The alert fingerprint.
        fingerprint: String,
        /// Normalized start of the episode (RFC 3339, UTC).
        starts_at: String,
        /// Name of the Job the firing alert got (see [`alert_job_name`]).
        job_name: String,
        /// Dedup key of that task, for callers that look tasks up by key.
        dedup_key: String,
    },
    /// An alert the matchers do not select.
    Ignored {
        /// The alert fingerprint.
        fingerprint: String,
        /// Short reason, naming the matcher that failed.
        reason: String,
    },
}

/// A body routing cannot use (HTTP 400, 413 for [`DecodeError::TooLarge`],
/// 500 for [`DecodeError::Prompt`]). Messages name the problem and never
/// echo alert contents.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body exceeds `GRAFANA_MAX_BODY_BYTES`.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Body size, bytes.
        size: usize,
        /// The configured limit, bytes.
        limit: usize,
    },
    /// Not JSON, or a field of the wrong type.
    #[error("malformed payload: {0}")]
    Json(String),
    /// No `version` field.
    #[error("payload has no `version`; expected \"1\" (Grafana) or \"4\" (Alertmanager)")]
    MissingVersion,
    /// A version neither Grafana nor Alertmanager sends.
    #[error("unsupported payload version {0}; expected \"1\" (Grafana) or \"4\" (Alertmanager)")]
    UnsupportedVersion(String),
    /// No `alerts` array.
    #[error("payload has no `alerts` array")]
    MissingAlerts,
    /// More alerts than `GRAFANA_MAX_ALERTS_PER_NOTIFICATION` (HTTP 413):
    /// the notification is refused whole, nothing is created.
    #[error(
        "the notification carries {count} alerts, more than GRAFANA_MAX_ALERTS_PER_NOTIFICATION \
         allows ({limit}); nothing was created. Set the contact point's max alerts to {limit} or less"
    )]
    TooManyAlerts {
        /// Alerts in the notification.
        count: usize,
        /// The configured cap.
        limit: usize,
    },
    /// One alert is unusable.
    #[error("alerts[{index}].{field}: {reason}")]
    InvalidAlert {
        /// Position of the alert in `alerts`.
        index: usize,
        /// The field at fault (`startsAt`, `status`, `fingerprint`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The built-in prompt failed to render: our bug, not the client's.
    #[error("rendering the investigation prompt failed: {0}")]
    Prompt(String),
}

impl DecodeError {
    /// True if the client sent something wrong (4xx); false for our bugs (500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, DecodeError::Prompt(_))
    }
}

impl From<BodyError> for DecodeError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Json(m) => DecodeError::Json(m),
            BodyError::NoVersion => DecodeError::MissingVersion,
            BodyError::UnknownVersion(v) => DecodeError::UnsupportedVersion(v),
            BodyError::NoAlerts => DecodeError::MissingAlerts,
        }
    }
}

/// The dedup key of an alert episode: `grafana:<fingerprint>:<startsAt>`.
pub fn alert_dedup_key(fingerprint: &str, starts_at: &str) -> String {
    format!("grafana:{fingerprint}:{starts_at}")
}

/// The Job name of the task for an alert episode. Firing and resolved
/// alerts both get it from here, so a resolve always names the Job its
/// firing created. `starts_at` is the normalized value carried by
/// [`AlertDecision::Resolve`] and the Task's `starts_at` label.
pub fn alert_job_name(fingerprint: &str, starts_at: &str, repository: Option<&str>) -> String {
    identity_task(
        alert_dedup_key(fingerprint, starts_at),
        repository,
        DateTime::UNIX_EPOCH,
    )
    .job_name()
}

/// The fields of an alert Task that determine its Job name; the firing
/// path fills in the rest.
fn identity_task(dedup_key: String, repository: Option<&str>, now: DateTime<Utc>) -> Task {
    Task {
        source: TaskSource::Grafana,
        kind: KIND.to_string(),
        priority: 0,
        repository: repository.map(str::to_string),
        issue_number: None,
        pr_number: None,
        checkout: None,
        title: String::new(),
        prompt: String::new(),
        url: None,
        delivery_id: None,
        dedup_key,
        requested_by: None,
        labels: BTreeMap::new(),
        created_at: now,
    }
}

/// The identity of the alert rule an alert comes from, the key of the
/// per-rule rate limit: the receiver (contact point) and the rule — Grafana's
/// `__alert_rule_uid__` label when the payload keeps it, else the rule's
/// `alertname` and `grafana_folder` (Grafana titles are unique per folder;
/// Prometheus alerts have only `alertname`). Bounded; not shown to anyone.
pub fn rule_key(receiver: Option<&str>, labels: &BTreeMap<String, String>) -> String {
    let get = |k: &str| labels.get(k).map_or("", |v| v.trim());
    let receiver = receiver.unwrap_or("").trim();
    // A JSON array: unambiguous whatever the parts contain.
    let key = match get("__alert_rule_uid__") {
        "" => serde_json::json!([receiver, get("alertname"), get("grafana_folder")]),
        uid => serde_json::json!([receiver, "uid", uid]),
    };
    truncate_with_marker(&key.to_string(), 1024)
}

/// Maps a priority label value to a priority: `critical` 100, `high` and
/// `error` 50, `warning` 10, `info` 0 (case-insensitive), or an integer.
/// Anything else is 0.
pub fn priority_from_label(value: &str) -> i32 {
    let v = value.trim();
    match v.to_ascii_lowercase().as_str() {
        "critical" => 100,
        "high" | "error" => 50,
        "warning" => 10,
        "info" => 0,
        _ => v.parse().unwrap_or(0),
    }
}

/// Decodes a verified notification and decides about each alert, stamping
/// Tasks with `now` (which also decides whether an alert without `status`
/// has ended).
pub fn route(
    body: &[u8],
    cfg: &GrafanaConfig,
    now: DateTime<Utc>,
) -> Result<Vec<AlertDecision>, DecodeError> {
    if body.len() > cfg.max_body_bytes {
        return Err(DecodeError::TooLarge {
            size: body.len(),
            limit: cfg.max_body_bytes,
        });
    }
    let n = payload::decode(body)?;
    if n.alerts.len() > cfg.max_alerts_per_notification {
        return Err(DecodeError::TooManyAlerts {
            count: n.alerts.len(),
            limit: cfg.max_alerts_per_notification,
        });
    }
    n.alerts
        .iter()
        .enumerate()
        .map(|(index, alert)| decide(&n, index, alert, cfg, now))
        .collect()
}

fn decide(
    n: &Notification,
    index: usize,
    alert: &Alert,
    cfg: &GrafanaConfig,
    now: DateTime<Utc>,
) -> Result<AlertDecision, DecodeError> {
    let invalid = |field: &'static str, reason: String| DecodeError::InvalidAlert {
        index,
        field,
        reason,
    };
    let raw_start = alert
        .starts_at
        .as_deref()
        .ok_or_else(|| invalid("startsAt", "missing".into()))?;
    let starts_at = parse_time(raw_start)
        .ok_or_else(|| invalid("startsAt", "expected an RFC 3339 time".into()))?
        .to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let fingerprint = match alert.fingerprint.as_deref().map(str::trim) {
        None | Some("") => label_fingerprint(&alert.labels),
        Some(f) if (1..=64).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            f.to_string()
        }
        Some(_) => {
            return Err(invalid(
                "fingerprint",
                "expected 1-64 letters or digits".into(),
            ))
        }
    };
    let resolved = is_resolved(n, alert, now).map_err(|s| {
        invalid(
            "status",
            format!("expected \"firing\" or \"resolved\", got {s:?}"),
        )
    })?;
    if let Some(m) = cfg.matchers.first_failing(&alert.labels) {
        return Ok(AlertDecision::Ignored {
            fingerprint,
            reason: format!("not selected by GRAFANA_ALERT_MATCHERS: {m} does not match"),
        });
    }
    let repository = repository_of(alert, cfg);
    let dedup_key = alert_dedup_key(&fingerprint, &starts_at);
    if resolved {
        return Ok(AlertDecision::Resolve {
            job_name: alert_job_name(&fingerprint, &starts_at, repository),
            fingerprint,
            starts_at,
            dedup_key,
        });
    }
    let task = build_task(
        n,
        alert,
        cfg,
        repository,
        dedup_key,
        &fingerprint,
        &starts_at,
        now,
    )?;
    Ok(AlertDecision::Fire(Box::new(task)))
}

/// `Err(status)` for a status we do not know. Without a status (old
/// Alertmanagers), a resolved group or an `endsAt` in the past means resolved.
fn is_resolved(n: &Notification, alert: &Alert, now: DateTime<Utc>) -> Result<bool, String> {
    match alert.status.as_deref().map(str::trim) {
        Some(s) if s.eq_ignore_ascii_case("firing") => Ok(false),
        Some(s) if s.eq_ignore_ascii_case("resolved") => Ok(true),
        Some(s) => Err(truncate_with_marker(s, 64)),
        None => Ok(n.status.as_deref() == Some("resolved")
            || alert
                .ends_at
                .as_deref()
                .and_then(parse_time)
                .is_some_and(|end| end.timestamp() > 0 && end <= now)),
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The configured label, else annotation, if it is a valid `owner/name`.
/// Labels come first: they are part of the fingerprint, so they cannot
/// differ between the firing and the resolved notification of an alert.
fn repository_of<'a>(alert: &'a Alert, cfg: &GrafanaConfig) -> Option<&'a str> {
    let key = &cfg.repository_label;
    alert
        .labels
        .get(key)
        .or_else(|| alert.annotations.get(key))
        .map(|r| r.trim())
        .filter(|r| git::is_valid_repository(r))
}

/// A link we are willing to hand on: plain `http(s)://`, no whitespace, and
/// under `GRAFANA_URL` (same scheme, host and port, under its path). Without
/// `GRAFANA_URL` no payload link is handed on: a link is text from the
/// payload, and one to `http://169.254.169.254/` or an internal service
/// must not reach the agent as something to open.
fn link<'a>(cfg: &GrafanaConfig, u: Option<&'a str>) -> Option<&'a str> {
    let base = cfg.grafana_url.as_ref()?;
    u.map(str::trim).filter(|u| {
        (u.starts_with("https://") || u.starts_with("http://"))
            && u.len() <= 4096
            && !u.chars().any(|c| c.is_whitespace() || c.is_control())
            && link_under(base, u)
    })
}

#[allow(clippy::too_many_arguments)]
fn build_task(
    n: &Notification,
    alert: &Alert,
    cfg: &GrafanaConfig,
    repository: Option<&str>,
    dedup_key: String,
    fingerprint: &str,
    starts_at: &str,
    now: DateTime<Utc>,
) -> Result<Task, DecodeError> {
    let alertname = alert.labels.get("alertname").map(|s| s.trim());
    let summary = alert.annotations.get("summary").map(|s| s.trim());
    let title = match (alertname, summary) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => format!("{a}: {s}"),
        (Some(a), _) if !a.is_empty() => a.to_string(),
        (_, Some(s)) if !s.is_empty() => s.to_string(),
        _ => format!("alert {fingerprint}"),
    };
    let sender = match n.format {
        Format::Grafana => "Grafana",
        Format::Alertmanager => "Alertmanager",
    };
    let links: Vec<Pair> = [
        ("Source", alert.generator_url.as_deref()),
        ("Dashboard", alert.dashboard_url.as_deref()),
        ("Panel", alert.panel_url.as_deref()),
        ("Silence", alert.silence_url.as_deref()),
        (sender, n.external_url.as_deref()),
    ]
    .into_iter()
    .filter_map(|(name, u)| link(cfg, u).map(|u| Pair::new(name, u)))
    .collect();
    let pairs = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| Pair::new(k, v)).collect();
    let mut values: Vec<Pair> = alert
        .values
        .iter()
        .flatten()
        .map(|(k, v)| Pair::new(k, &v.map_or_else(|| "null".to_string(), |v| v.to_string())))
        .collect();
    if values.is_empty() {
        if let Some(s) = alert
            .value_string
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            values.push(Pair::new("value", s));
        }
    }
    let ctx = PromptContext {
        status: "firing",
        sender,
        repository: repository.unwrap_or(""),
        alertname: alertname
            .filter(|a| !a.is_empty())
            .unwrap_or("(no alertname)"),
        starts_at,
        fingerprint,
        links,
        labels: pairs(&alert.labels),
        annotations: pairs(&alert.annotations),
        values,
    };
    let prompt = prompt::render(&ctx).map_err(|e| DecodeError::Prompt(format!("{e:#}")))?;

    let mut labels = BTreeMap::from([
        ("fingerprint".to_string(), fingerprint.to_string()),
        ("starts_at".to_string(), starts_at.to_string()),
        ("sender".to_string(), n.format.as_str().to_string()),
    ]);
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            labels.insert(k.to_string(), truncate_with_marker(v, 256));
        }
    };
    put("alertname", alertname);
    put("receiver", n.receiver.as_deref());
    put("group_key", n.group_key.as_deref());
    put(
        &cfg.priority_label,
        alert.labels.get(&cfg.priority_label).map(String::as_str),
    );
    if let Some(org) = n.org_id {
        labels.insert("org_id".to_string(), org.to_string());
    }
    labels.insert(
        RULE_LABEL.to_string(),
        rule_key(n.receiver.as_deref(), &alert.labels),
    );

    let mut task = identity_task(dedup_key, repository, now);
    task.priority = alert
        .labels
        .get(&cfg.priority_label)
        .map_or(0, |v| priority_from_label(v));
    task.title = truncate_with_marker(&title, 1024);
    task.prompt = prompt;
    task.url = link(cfg, alert.generator_url.as_deref())
        .or_else(|| link(cfg, alert.dashboard_url.as_deref()))
        .or_else(|| link(cfg, alert.panel_url.as_deref()))
        .map(str::to_string);
    task.requested_by = Some(n.format.as_str().to_string());
    task.labels = labels;
    Ok(task)
}

#[cfg(test)]
mod tests;
