//! The simulator's API errors, rendered as Kubernetes `Status` objects with the
//! same `reason` and `code` the real API server uses.

use serde_json::{json, Value};

/// One field problem inside an `Invalid` (422) error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`.
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

/// Each cause as `field: message` (how the unit tests compare them).
#[cfg(test)]
pub(crate) fn cause_texts(causes: impl IntoIterator<Item = Cause>) -> Vec<String> {
    causes
        .into_iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

impl Cause {
    pub fn invalid(field: impl Into<String>, value: &str, why: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value:?}: {why}"),
        }
    }
    /// `Invalid value` rendered as Go's field errors render a JSON value:
    /// strings quoted, numbers and `null` bare.
    pub fn invalid_value(field: impl Into<String>, value: &Value, why: &str) -> Self {
        let shown = go_value(value);
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {why}"),
        }
    }
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        }
    }
    pub fn forbidden(field: impl Into<String>, why: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {why}"),
        }
    }
    /// `field.Required` with a detail: `Required value: <why>`.
    pub fn required_because(field: impl Into<String>, why: &str) -> Self {
        let mut c = Self::required(field);
        if !why.is_empty() {
            c.message = format!("Required value: {why}");
        }
        c
    }
    /// `field.Duplicate`: `Duplicate value: "x"`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", go_value(value)),
        }
    }
    /// `field.NotFound`: `Not found: "x"`.
    pub fn not_found(field: impl Into<String>, value: &Value) -> Self {
        Cause {
            reason: "FieldValueNotFound",
            field: field.into(),
            message: format!("Not found: {}", go_value(value)),
        }
    }
    /// `field.TooLong` (1.32 omits the value): `Too long: may not be more
    /// than N bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }
}

/// A JSON value as Go's field errors print a simple value: strings quoted,
/// numbers, booleans and `null` bare.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// An error answer of the simulated API server.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details.name`, `details.group`, `details.kind`.
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    /// Seconds for a `Retry-After` header (429/503/500 fault injection).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.group = Some(group.to_string());
        self.kind = Some(kind.to_string());
        self.name = Some(name.to_string());
        self
    }

    /// 404 `NotFound`: `jobs.batch "x" not found`.
    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", qualified(plural, group)),
        )
        .with_details(group, plural, name)
    }

    /// 404 for a path that names no served resource.
    pub fn not_found_path(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(plural, group)),
        )
        .with_details(group, plural, name)
    }

    /// 409 `Conflict` on a stale resourceVersion or failed precondition.
    pub fn conflict(plural: &str, group: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(plural, group)
            ),
        )
        .with_details(group, plural, name)
    }

    /// 403 `Forbidden` as an admission plugin answers (apimachinery's
    /// `NewForbidden`): `pods "p" is forbidden: <why>`, or without a name
    /// `pods is forbidden: <why>`.
    pub fn forbidden(plural: &str, group: &str, name: &str, why: &str) -> Self {
        let what = qualified(plural, group);
        let message = if name.is_empty() {
            format!("{what} is forbidden: {why}")
        } else {
            format!("{what} {name:?} is forbidden: {why}")
        };
        Self::new(403, "Forbidden", message).with_details(group, plural, name)
    }

    /// The NamespaceLifecycle admission plugin's answer to a create in a
    /// namespace that is being deleted.
    pub fn namespace_terminating(plural: &str, group: &str, name: &str, ns: &str) -> Self {
        let mut e = Self::forbidden(
            plural,
            group,
            name,
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        );
        e.causes = vec![Cause {
            reason: "NamespaceTerminating",
            field: "metadata.namespace".into(),
            message: format!("namespace {ns} is being terminated"),
        }];
        e
    }

    /// 409 `Conflict` of a server-side apply (its causes name the fields).
    pub fn apply_conflict(message: String) -> Self {
        Self::new(409, "Conflict", message)
    }

    /// 422 `Invalid` with field causes. The message lists each distinct
    /// `<field>: <message>` once (apimachinery's `ToAggregate` drops
    /// repeats), bracketed when there are several; `details.causes` keeps
    /// them all.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let mut parts: Vec<String> = Vec::with_capacity(causes.len());
        for c in &causes {
            let part = format!("{}: {}", c.field, c.message);
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        let body = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        // `Job.batch "x" is invalid: …` (the qualified kind, as apimachinery's
        // `NewInvalid` writes it).
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} {name:?} is invalid: {body}", qualified(kind, group)),
        )
        .with_details(group, kind, name);
        e.causes = causes;
        e
    }

    /// 422 for list/watch options that break apimachinery's
    /// `ValidateListOptions` (kind `ListOptions.meta.k8s.io`, no name).
    pub fn invalid_list_options(causes: Vec<Cause>) -> Self {
        Self::invalid("ListOptions", "meta.k8s.io", "", causes)
    }

    /// A malformed resourceVersion: a real API server (1.32) answers 500 with
    /// no reason and the storage layer's parse error
    /// (kubernetes/kubernetes#139485, #101350).
    pub fn invalid_resource_version(value: &str, err: &std::num::ParseIntError) -> Self {
        let why = match err.kind() {
            std::num::IntErrorKind::PosOverflow => "value out of range",
            _ => "invalid syntax",
        };
        Self::new(
            500,
            "",
            format!(
                "resourceVersion: Invalid value: {value:?}: strconv.ParseUint: parsing {value:?}: {why}"
            ),
        )
    }

    /// 504 `Timeout` for a resourceVersion the server has not reached yet
    /// (the api-concepts "Resource versions" page: "Too large resource
    /// version", retry after 1 s).
    pub fn resource_version_too_large(requested: u64, current: u64) -> Self {
        let mut e = Self::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        );
        e.causes = vec![Cause {
            reason: "ResourceVersionTooLarge",
            field: String::new(),
            message: "Too large resource version".into(),
        }];
        e.retry_after = Some(1);
        e
    }

    /// 422 `Invalid` for a JSON patch that cannot be applied.
    pub fn invalid_patch(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"),
        )
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }
    /// 410 `Expired`: the requested resourceVersion is older than the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        );
        e.retry_after = Some(retry_after);
        e
    }
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }
    /// An error with a status chosen by fault injection.
    pub fn injected(code: u16, retry_after: Option<u64>) -> Self {
        let mut e = match code {
            429 => Self::too_many_requests(retry_after.unwrap_or(1)),
            503 => Self::service_unavailable("injected fault: service unavailable"),
            500 => Self::internal("injected fault: internal error"),
            504 => Self::new(504, "Timeout", "injected fault: timeout"),
            other => Self::new(other, "InternalError", format!("injected fault: {other}")),
        };
        if retry_after.is_some() {
            e.retry_after = retry_after;
        }
        e
    }

    /// The `Status` object for the body or for a watch `ERROR` event.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            if let Some(m) = status.as_object_mut() {
                m.remove("reason");
            }
        }
        let mut details = serde_json::Map::new();
        if let Some(n) = self.name.as_ref().filter(|n| !n.is_empty()) {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.group {
            if !g.is_empty() {
                details.insert("group".into(), json!(g));
            }
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| {
                    let mut v = json!({"reason": c.reason, "message": c.message});
                    if !c.field.is_empty() {
                        v["field"] = json!(c.field);
                    }
                    v
                })
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(s) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(s));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}
