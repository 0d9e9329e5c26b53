//! Bearer-token authentication of the task and operator APIs. The token
//! decides which source a request speaks for; tokens are compared in
//! constant time and never logged — a short hash identifies the caller.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::RouteError;
use super::AppState;
use crate::task::TaskSource;

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub source: TaskSource,
    /// `<source>-token:<8 hex of sha256(token)>`: recorded on Jobs, safe to log.
    pub identity: String,
}

fn authenticate(req: &HttpRequest) -> Result<ApiCaller, RouteError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(RouteError::Internal("application state missing".into()));
    };
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            RouteError::Unauthorized("missing bearer token (Authorization: Bearer TOKEN)".into())
        })?;
    // The scheme is case-insensitive (RFC 9110 §11.1); one or more spaces
    // separate it from the token.
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            RouteError::Unauthorized("the Authorization header must be `Bearer TOKEN`".into())
        })?;
    // Compare against every configured token, always all of them.
    let mut found = None;
    for t in &state.config.api_tokens {
        let expected = t.token.expose();
        let equal = expected.len() == token.len() && bool::from(expected.ct_eq(token.as_bytes()));
        if equal && found.is_none() {
            found = Some(t.source);
        }
    }
    let source = found.ok_or_else(|| RouteError::Unauthorized("unknown bearer token".into()))?;
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    Ok(ApiCaller {
        source,
        identity: format!("{}-token:{}", source.as_str(), &digest[..8]),
    })
}

impl FromRequest for ApiCaller {
    type Error = RouteError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req))
    }
}
