//! Bearer-token authentication of the task and operator APIs. The token
//! decides which source a request speaks for and what it may do (its
//! [`TokenKind`]); tokens are compared in constant time and never logged —
//! a short hash identifies the caller. Each token's requests are limited
//! per minute (`API_RATE_LIMIT_PER_TOKEN_PER_MINUTE`, keyed by that hash):
//! beyond it, `429` with `Retry-After`.
//!
//! Scopes: a `cli` token may do everything; a `pm-agent` token creates
//! tasks as `pm-agent` and sees, reads and cancels only `pm-agent` Jobs
//! (another source's Job is answered 404, as if it did not exist, so a
//! token cannot learn which names exist outside its scope); a `viewer`
//! token reads everything and is refused (403) every create and cancel.

use std::future::{ready, Ready};
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::{web, FromRequest, HttpRequest};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::RouteError;
use super::AppState;
pub use crate::config::TokenKind;
use crate::task::TaskSource;

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub kind: TokenKind,
    /// `<kind>-token:<8 hex of sha256(token)>`: recorded on Jobs, safe to log.
    pub identity: String,
}

impl ApiCaller {
    /// The source this caller creates tasks as; 403 for a token that may
    /// not create (`viewer`).
    pub fn creating_source(&self) -> Result<TaskSource, RouteError> {
        self.kind.source().ok_or_else(|| {
            RouteError::Forbidden(format!(
                "a {} token may not create tasks",
                self.kind.as_str()
            ))
        })
    }

    /// 403 unless this caller may cancel Jobs (of its scope).
    pub fn may_cancel(&self) -> Result<(), RouteError> {
        match self.kind {
            TokenKind::Viewer => Err(RouteError::Forbidden(
                "a viewer token may not cancel jobs".into(),
            )),
            TokenKind::PmAgent | TokenKind::Cli => Ok(()),
        }
    }

    /// The only source whose Jobs (and events) this caller sees; `None`:
    /// every source.
    pub fn only_source(&self) -> Option<&'static str> {
        match self.kind {
            TokenKind::PmAgent => Some(TaskSource::PmAgent.as_str()),
            TokenKind::Cli | TokenKind::Viewer => None,
        }
    }

    /// Whether a Job of `source` is within this caller's scope.
    pub fn sees(&self, source: Option<&str>) -> bool {
        self.only_source().is_none_or(|s| source == Some(s))
    }

    /// The name recorded in the events log for what this caller did.
    pub fn label(&self) -> &'static str {
        self.kind.as_str()
    }
}

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// The per-token request limit of the `/api/v1` routes, keyed by the
/// caller's identity (a hash of the token, never the token). Only
/// configured tokens get a bucket, so their number bounds its memory.
pub struct TokenLimits {
    limiter: Option<Keyed>,
    clock: DefaultClock,
}

impl TokenLimits {
    /// `per_minute` requests per token per minute, bursts of the same size;
    /// 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        TokenLimits {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `identity`'s bucket; how long to wait if empty.
    pub fn check(&self, identity: &str) -> Result<(), Duration> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        l.check_key(&identity.to_string()).map_err(|not_until| {
            not_until
                .wait_time_from(self.clock.now())
                .max(Duration::from_secs(1))
        })
    }
}

/// The kind of `token` if it is one of `tokens`: compared in constant
/// time against every configured token, always all of them.
pub fn token_kind(tokens: &[crate::config::ApiToken], token: &str) -> Option<TokenKind> {
    let mut found = None;
    for t in tokens {
        let expected = t.token.expose();
        let equal = expected.len() == token.len() && bool::from(expected.ct_eq(token.as_bytes()));
        if equal && found.is_none() {
            found = Some(t.kind);
        }
    }
    found
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
    let kind = token_kind(&state.config.api_tokens, token)
        .ok_or_else(|| RouteError::Unauthorized("unknown bearer token".into()))?;
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let identity = format!("{}-token:{}", kind.as_str(), &digest[..8]);
    state
        .token_limits
        .check(&identity)
        .map_err(|retry_after| RouteError::RateLimited {
            scope: "token",
            retry_after,
        })?;
    Ok(ApiCaller { kind, identity })
}

impl FromRequest for ApiCaller {
    type Error = RouteError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req))
    }
}
