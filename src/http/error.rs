//! Errors of the HTTP routes, each mapped to a status code and a JSON body
//! `{"status":"error","error":CODE,"message":TEXT}`. Messages never carry
//! secrets or request bodies.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use std::time::Duration;

use crate::sources::fields::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Unprocessable(String),
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
    /// A server-side problem; details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

impl RouteError {
    pub fn code(&self) -> &'static str {
        match self {
            RouteError::BadRequest(_) => "bad_request",
            RouteError::Unauthorized(_) => "unauthorized",
            RouteError::TooLarge(_) => "payload_too_large",
            RouteError::Unprocessable(_) => "unprocessable",
            RouteError::Fields(_) => "invalid",
            RouteError::NotFound(_) => "not_found",
            RouteError::Forbidden(_) => "forbidden",
            RouteError::RateLimited { .. } => "rate_limited",
            RouteError::Unavailable(_) => "unavailable",
            RouteError::NamespaceMissing(_) => "namespace_missing",
            RouteError::Internal(_) => "internal",
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
            RouteError::Unavailable(_) | RouteError::NamespaceMissing(_) => "unavailable",
            RouteError::Internal(_) => "internal",
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
            _ => format!("{}: {self}", self.code()),
        }
    }
}

impl ResponseError for RouteError {
    fn status_code(&self) -> StatusCode {
        match self {
            RouteError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RouteError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RouteError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RouteError::Unprocessable(_) | RouteError::Fields(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RouteError::NotFound(_) => StatusCode::NOT_FOUND,
            RouteError::Forbidden(_) => StatusCode::FORBIDDEN,
            RouteError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            RouteError::Unavailable(_) | RouteError::NamespaceMissing(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RouteError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let RouteError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
        let mut b = HttpResponse::build(self.status_code());
        match self {
            RouteError::RateLimited { retry_after, .. } => {
                b.insert_header(("Retry-After", retry_after.as_secs().max(1).to_string()));
            }
            RouteError::Unavailable(_) => {
                b.insert_header(("Retry-After", "1"));
            }
            RouteError::NamespaceMissing(_) => {
                b.insert_header(("Retry-After", "30"));
            }
            _ => {}
        }
        let mut body =
            json!({"status": "error", "error": self.code(), "message": self.to_string()});
        if let RouteError::Fields(f) = self {
            body["fields"] = json!(f);
        }
        b.json(body)
    }
}
