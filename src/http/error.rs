//! Errors of the HTTP routes, each mapped to a status code and a JSON body
//! `{"status":"error","error":CODE,"message":TEXT,"request_id":ID}`.
//!
//! Only the client's own mistakes are 4xx, and only their messages are
//! specific. Server-side problems (Kubernetes unreachable, refusing our
//! request, a bug) answer a fixed message per code; the detail — which may
//! hold API-server text such as an RBAC denial — is logged with the request
//! id, which the answer carries so an operator can find it:
//!
//! | code | status | the sender should |
//! |---|---|---|
//! | `unavailable` | 503 + `Retry-After` | retry: temporary (API server down or throttling, a write conflict, capacity) |
//! | `unavailable` | 503 + `Retry-After: 30` | retry later: Kubernetes denied this service a permission (403 RBAC) or its namespace is missing (`namespace_missing`); an operator fixes the installation and the service recovers without a restart (`/ready` names the check) |
//! | `server_error` | 500 | not retry blindly: Kubernetes refused our request as invalid (400/410/413/422); an operator must act |
//! | `internal` | 500 | report it: a bug |

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use std::time::{Duration, Instant};

use crate::cluster::jobs::JobsError;
use crate::scheduler::error::EnqueueError;
use crate::sources::actor::SubmitError;
use crate::sources::fields::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// A notification with more alerts than the configured cap (413).
    #[error("{0}")]
    TooManyAlerts(String),
    /// The body did not arrive within the read deadline or fell below the
    /// minimum transfer rate (says which).
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Unprocessable(String),
    /// An `Idempotency-Key` already used with a different request (422).
    #[error("{0}")]
    KeyReused(String),
    /// Field-level validation problems (422 listing each field).
    #[error("the document has {} invalid field(s)", .0.len())]
    Fields(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("rate limited per {scope}; retry after {} s", retry_after.as_secs())]
    RateLimited {
        scope: &'static str,
        retry_after: Duration,
    },
    /// Backpressure or an unavailable API server; the sender should retry.
    #[error("{0}")]
    Unavailable(String),
    /// The namespace Jobs go to (named) does not exist: an installation
    /// problem the operator fixes; `/ready` says the same.
    #[error("namespace {0:?} does not exist; the operator must create it (see /ready)")]
    NamespaceMissing(String),
    /// Kubernetes denied this service a permission it needs (RBAC): the
    /// operator fixes the Role, the service recovers without a restart.
    #[error("{0}")]
    PermissionDenied(String),
    /// Kubernetes refused our request for good (an object it calls
    /// invalid): not the client's mistake, not temporary.
    #[error("{0}")]
    Failed(String),
    /// A server-side problem; details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

/// A request's id (the tracing logger's UUID), written out only when an
/// answer or a log line needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestId(pub uuid::Uuid);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

tokio::task_local! {
    /// The id of the request being handled (set by
    /// [`super::request_metrics::Front`]).
    pub static REQUEST_ID: RequestId;
}

/// The current request's id, if called while handling one.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(ToString::to_string).ok()
}

/// A task that was not accepted, as its sender is told.
impl From<SubmitError> for RouteError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::RateLimited(l) => RouteError::RateLimited {
                scope: l.scope,
                retry_after: l.retry_after,
            },
            SubmitError::Enqueue(e) => e.into(),
        }
    }
}

/// A task that could not be persisted, as its sender is told.
impl From<EnqueueError> for RouteError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::Invalid(m) => RouteError::Unprocessable(m),
            EnqueueError::Unavailable(m) => RouteError::Unavailable(m),
            EnqueueError::NamespaceMissing(ns) => RouteError::NamespaceMissing(ns),
            EnqueueError::PermissionDenied(m) => RouteError::PermissionDenied(m),
            EnqueueError::Failed(m) => RouteError::Failed(m),
            EnqueueError::KeyReused(job) => RouteError::KeyReused(format!(
                "this Idempotency-Key was already used with a different request (job {job}); \
                 send a new key for a new request"
            )),
        }
    }
}

/// Maps a failed Jobs call to the answer (`not_found` as given).
pub fn from_jobs(e: JobsError, not_found: &str) -> RouteError {
    match e {
        JobsError::NotFound => RouteError::NotFound(not_found.to_string()),
        JobsError::Unavailable(m) => RouteError::Unavailable(m),
        JobsError::PermissionDenied(m) => RouteError::PermissionDenied(m),
        JobsError::Failed(m) => RouteError::Failed(m),
    }
}

impl RouteError {
    pub fn code(&self) -> &'static str {
        match self {
            RouteError::BadRequest(_) => "bad_request",
            RouteError::Unauthorized(_) => "unauthorized",
            RouteError::TooLarge(_) => "payload_too_large",
            RouteError::TooManyAlerts(_) => "too_many_alerts",
            RouteError::Timeout(_) => "request_timeout",
            RouteError::Unprocessable(_) => "unprocessable",
            RouteError::KeyReused(_) => "idempotency_key_reused",
            RouteError::Fields(_) => "invalid",
            RouteError::NotFound(_) => "not_found",
            RouteError::Forbidden(_) => "forbidden",
            RouteError::RateLimited { .. } => "rate_limited",
            RouteError::Unavailable(_) | RouteError::PermissionDenied(_) => "unavailable",
            RouteError::NamespaceMissing(_) => "namespace_missing",
            RouteError::Failed(_) => "server_error",
            RouteError::Internal(_) => "internal",
        }
    }

    /// What the client is told: the message of a client error, a fixed
    /// text for server-side ones.
    pub fn public_message(&self) -> String {
        match self {
            RouteError::Unavailable(_) => {
                "temporarily unavailable (Kubernetes or this service's capacity); retry later".into()
            }
            RouteError::PermissionDenied(_) => "temporarily unavailable: Kubernetes denied this service a permission it needs; an operator must fix its Role (see request_id and /ready); retry later".into(),
            RouteError::Failed(_) => "Kubernetes refused this service's request; an operator must look at the service's log (see request_id)".into(),
            RouteError::Internal(_) => "internal error; see the service's log (request_id)".into(),
            other => other.to_string(),
        }
    }
}

impl RouteError {
    /// The decision the events log records: `rejected` for a request the
    /// client got wrong (4xx), else `rate_limited`, `unavailable` or
    /// `internal`.
    pub fn event_decision(&self) -> &'static str {
        match self {
            RouteError::RateLimited { .. } => "rate_limited",
            RouteError::Unavailable(_)
            | RouteError::NamespaceMissing(_)
            | RouteError::PermissionDenied(_) => "unavailable",
            RouteError::Failed(_) | RouteError::Internal(_) => "internal",
            _ => "rejected",
        }
    }

    /// Why, for the events log: the error code and message, and for field
    /// errors each field with its problem.
    pub fn event_reason(&self) -> String {
        match self {
            RouteError::Fields(fields) => {
                let list: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect();
                format!("{}: {}", self.code(), list.join("; "))
            }
            _ => format!("{}: {}", self.code(), self.public_message()),
        }
    }
}

impl ResponseError for RouteError {
    fn status_code(&self) -> StatusCode {
        match self {
            RouteError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RouteError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RouteError::TooLarge(_) | RouteError::TooManyAlerts(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RouteError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            RouteError::Unprocessable(_) | RouteError::Fields(_) | RouteError::KeyReused(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RouteError::NotFound(_) => StatusCode::NOT_FOUND,
            RouteError::Forbidden(_) => StatusCode::FORBIDDEN,
            RouteError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            RouteError::Unavailable(_)
            | RouteError::NamespaceMissing(_)
            | RouteError::PermissionDenied(_) => StatusCode::SERVICE_UNAVAILABLE,
            RouteError::Failed(_) | RouteError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            RouteError::Internal(detail) | RouteError::Failed(detail) => {
                tracing::error!(error = %detail, code = self.code(), "request failed");
            }
            // A flood of requests repeats these: one line per cause and
            // period, saying how many were held back.
            RouteError::PermissionDenied(detail) => {
                if let Some(held_back) = crate::telemetry::repeated(detail, Instant::now()) {
                    tracing::warn!(error = %detail, held_back, "answering 503: Kubernetes denied a permission");
                }
            }
            RouteError::Unavailable(detail) => {
                if let Some(held_back) = crate::telemetry::repeated(detail, Instant::now()) {
                    tracing::warn!(error = %detail, held_back, "answering 503");
                }
            }
            _ => {}
        }
        let mut b = HttpResponse::build(self.status_code());
        match self {
            RouteError::RateLimited { retry_after, .. } => {
                b.insert_header(("Retry-After", retry_after.as_secs().max(1).to_string()));
            }
            RouteError::Unavailable(_) => {
                b.insert_header(("Retry-After", "1"));
            }
            RouteError::NamespaceMissing(_) | RouteError::PermissionDenied(_) => {
                b.insert_header(("Retry-After", "30"));
            }
            _ => {}
        }
        let mut body =
            json!({"status": "error", "error": self.code(), "message": self.public_message()});
        if let Some(id) = request_id() {
            body["request_id"] = json!(id);
        }
        if let RouteError::Fields(f) = self {
            body["fields"] = json!(f);
        }
        b.json(body)
    }
}
