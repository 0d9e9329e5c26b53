//! Typed decode of the two webhook bodies this source accepts, and their
//! reduction to one [`Notification`] view routing works on.
//!
//! * Grafana's webhook contact point, `version: "1"` (grafana/alerting
//!   `receivers/webhook/v1`): Alertmanager's template data plus `orgId`,
//!   `state`, `title`, `message`, and per alert `values`, `silenceURL`,
//!   `dashboardURL`, `panelURL`, `imageURL`.
//! * Prometheus Alertmanager's webhook, `version: "4"`. Older Alertmanagers
//!   send alerts without `fingerprint` and even without `status` (see the
//!   prometheus-msteams fixture); both are recovered in `route`.
//!
//! Unknown fields are ignored, so newer senders keep working.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Which sender produced a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Grafana Alerting webhook contact point (`version: "1"`).
    Grafana,
    /// Prometheus Alertmanager webhook (`version: "4"`).
    Alertmanager,
}

impl Format {
    /// `grafana` or `alertmanager`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Grafana => "grafana",
            Format::Alertmanager => "alertmanager",
        }
    }
}

/// Only the version, read first to pick the body type.
#[derive(Deserialize)]
struct Peek {
    version: Option<serde_json::Value>,
}

/// One alert, as both senders encode it. Grafana-only fields are `None` in
/// Alertmanager bodies.
#[derive(Clone, Debug, Deserialize)]
pub struct Alert {
    /// `firing` or `resolved` (absent in some old Alertmanager bodies).
    pub status: Option<String>,
    /// Identifying labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations (`summary`, `description`, `runbook_url`, …).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start of this firing episode.
    #[serde(rename = "startsAt")]
    pub starts_at: Option<String>,
    /// RFC 3339 end; `0001-01-01T00:00:00Z` while unresolved.
    #[serde(rename = "endsAt")]
    pub ends_at: Option<String>,
    /// Link to the rule or query that generated the alert.
    #[serde(rename = "generatorURL")]
    pub generator_url: Option<String>,
    /// Hash of the labels (absent in old Alertmanager versions).
    pub fingerprint: Option<String>,
    /// Grafana: link that silences this alert.
    #[serde(rename = "silenceURL")]
    pub silence_url: Option<String>,
    /// Grafana: the alert rule's dashboard.
    #[serde(rename = "dashboardURL")]
    pub dashboard_url: Option<String>,
    /// Grafana: the alert rule's panel.
    #[serde(rename = "panelURL")]
    pub panel_url: Option<String>,
    /// Grafana: values of the rule's queries and expressions (`B`, `C`, …).
    pub values: Option<BTreeMap<String, Option<f64>>>,
    /// Grafana: the same values as one human-readable string.
    #[serde(rename = "valueString")]
    pub value_string: Option<String>,
}

/// Grafana's `version: "1"` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrafanaBody {
    receiver: Option<String>,
    status: Option<String>,
    org_id: Option<i64>,
    group_key: Option<String>,
    #[serde(rename = "externalURL")]
    external_url: Option<String>,
    alerts: Option<Vec<Alert>>,
}

/// Alertmanager's `version: "4"` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertmanagerBody {
    receiver: Option<String>,
    status: Option<String>,
    group_key: Option<String>,
    #[serde(rename = "externalURL")]
    external_url: Option<String>,
    alerts: Option<Vec<Alert>>,
}

/// A decoded notification, whichever sender it came from.
#[derive(Debug)]
pub struct Notification {
    /// The sender's format.
    pub format: Format,
    /// The receiver / contact point name.
    pub receiver: Option<String>,
    /// Group status, `firing` or `resolved`.
    pub status: Option<String>,
    /// The alert group's key.
    pub group_key: Option<String>,
    /// Grafana organisation id.
    pub org_id: Option<i64>,
    /// Link to the sending Grafana / Alertmanager.
    pub external_url: Option<String>,
    /// The alerts, in body order.
    pub alerts: Vec<Alert>,
}

/// Why a body could not be decoded (the `String`s are safe to return to the client).
#[derive(Debug)]
pub enum BodyError {
    /// Not JSON, or a field of the wrong type.
    Json(String),
    /// No `version` field.
    NoVersion,
    /// A `version` neither format uses.
    UnknownVersion(String),
    /// No `alerts` array.
    NoAlerts,
}

/// Decodes a Grafana (`"1"`) or Alertmanager (`"4"`) webhook body.
pub fn decode(body: &[u8]) -> Result<Notification, BodyError> {
    let json = |e: serde_json::Error| BodyError::Json(e.to_string());
    let peek: Peek = serde_json::from_slice(body).map_err(json)?;
    let version = match peek.version {
        None | Some(serde_json::Value::Null) => return Err(BodyError::NoVersion),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => return Err(BodyError::UnknownVersion(other.to_string())),
    };
    let n = match version.as_str() {
        "1" => {
            let b: GrafanaBody = serde_json::from_slice(body).map_err(json)?;
            Notification {
                format: Format::Grafana,
                receiver: b.receiver,
                status: b.status,
                group_key: b.group_key,
                org_id: b.org_id,
                external_url: b.external_url,
                alerts: b.alerts.ok_or(BodyError::NoAlerts)?,
            }
        }
        "4" => {
            let b: AlertmanagerBody = serde_json::from_slice(body).map_err(json)?;
            Notification {
                format: Format::Alertmanager,
                receiver: b.receiver,
                status: b.status,
                group_key: b.group_key,
                org_id: None,
                external_url: b.external_url,
                alerts: b.alerts.ok_or(BodyError::NoAlerts)?,
            }
        }
        _ => return Err(BodyError::UnknownVersion(format!("{version:?}"))),
    };
    Ok(n)
}

/// Prometheus' label-set fingerprint (`model.LabelSet.Fingerprint`):
/// FNV-1a 64 over the labels sorted by name, each name and value followed
/// by the byte `0xff`, printed as 16 lowercase hex digits. Used when an old
/// Alertmanager sends no `fingerprint`, so the derived value equals the one
/// a newer Alertmanager would send for the same alert.
pub fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    const SEPARATOR: u8 = 0xff;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    // BTreeMap iterates by byte-wise name order, as Go's sort of strings.
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[SEPARATOR]);
        add(value.as_bytes());
        add(&[SEPARATOR]);
    }
    format!("{h:016x}")
}
