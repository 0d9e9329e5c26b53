//! Authentication of one Grafana / Alertmanager delivery, before its body is
//! parsed. Every configured mechanism must pass (Basic or scheme credential,
//! *and* HMAC if a secret is set); any failure is answered 401 by the caller.
//!
//! Comparisons are constant-time: credentials are compared as SHA-256
//! digests (so neither content nor length leaks through timing) and HMACs
//! with `Mac::verify_slice`.

use crate::config::grafana::{GrafanaConfig, HmacConfig};
use crate::config::Secret;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a delivery was refused (all answered 401; the message is safe to
/// return to the client and to log — it never contains a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No mechanism is configured; the caller decides whether its insecure
    /// development mode lets the delivery through.
    #[error("no Grafana webhook authentication is configured")]
    NotConfigured,
    /// Basic or scheme credentials are configured but no `Authorization` header came.
    #[error("missing Authorization header")]
    MissingAuthorization,
    /// The `Authorization` header uses another scheme than the configured one.
    #[error("Authorization header must use the {expected} scheme")]
    WrongScheme {
        /// The configured scheme (`Basic`, `Bearer`, …).
        expected: String,
    },
    /// The `Authorization` credentials are wrong or malformed.
    #[error("Authorization credentials are not valid")]
    BadCredentials,
    /// HMAC is configured but the signature header is absent.
    #[error("missing {header} header")]
    MissingSignature {
        /// The configured signature header.
        header: String,
    },
    /// The signature is not 64 hex digits.
    #[error("malformed {header} header: expected 64 hex digits of HMAC-SHA256")]
    MalformedSignature {
        /// The configured signature header.
        header: String,
    },
    /// No configured secret produces this signature.
    #[error("{header} does not match the payload")]
    SignatureMismatch {
        /// The configured signature header.
        header: String,
    },
    /// A timestamp header is configured but absent.
    #[error("missing {header} header")]
    MissingTimestamp {
        /// The configured timestamp header.
        header: String,
    },
    /// The timestamp is not an integer number of unix seconds.
    #[error("malformed {header} header: expected unix time in seconds")]
    MalformedTimestamp {
        /// The configured timestamp header.
        header: String,
    },
    /// The signed timestamp is too far from our clock: a replay, or clocks
    /// that disagree.
    #[error(
        "{header} is {} s in the {}; at most {max_skew_seconds} s of clock skew is accepted \
         (a replayed delivery, or the clocks of the sender and this service disagree)",
        age_seconds.unsigned_abs(),
        if *age_seconds >= 0 { "past" } else { "future" }
    )]
    StaleTimestamp {
        /// The configured timestamp header.
        header: String,
        /// `now - timestamp`, seconds (negative: from the future).
        age_seconds: i64,
        /// The configured limit.
        max_skew_seconds: u64,
    },
}

/// Authenticates one delivery. `authorization`, `signature` and `timestamp`
/// are the raw values of the `Authorization` header and of the configured
/// signature and timestamp headers ([`GrafanaConfig::signature_header`],
/// [`GrafanaConfig::timestamp_header`]); `now_unix` is the current unix time
/// in seconds.
pub fn authenticate(
    cfg: &GrafanaConfig,
    authorization: Option<&[u8]>,
    signature: Option<&[u8]>,
    timestamp: Option<&[u8]>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), AuthError> {
    authenticate_headers(cfg, authorization)?;
    if let Some(hmac) = &cfg.hmac {
        verify_hmac(hmac, signature, timestamp, body, now_unix)?;
    }
    Ok(())
}

/// The part of [`authenticate`] the request's headers decide (whether
/// anything is configured, Basic or `Authorization` credentials), checked
/// before the body is read; the HMAC, if configured, needs the body.
pub fn authenticate_headers(
    cfg: &GrafanaConfig,
    authorization: Option<&[u8]>,
) -> Result<(), AuthError> {
    if !cfg.auth_configured() {
        return Err(AuthError::NotConfigured);
    }
    if let Some(basic) = &cfg.basic_auth {
        let encoded = credentials(authorization, "Basic")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim_ascii())
            .map_err(|_| AuthError::BadCredentials)?;
        check_secret(&basic.user_password, &decoded)?;
    }
    if let Some(header) = &cfg.authorization {
        let given = credentials(authorization, &header.scheme)?;
        check_secret(&header.credentials, given.trim_ascii())?;
    }
    Ok(())
}

/// The credentials part of `Authorization: <scheme> <credentials>`, if the
/// header is present and uses `scheme` (case-insensitive, RFC 9110 §11.1).
fn credentials<'h>(authorization: Option<&'h [u8]>, scheme: &str) -> Result<&'h [u8], AuthError> {
    let value = authorization
        .ok_or(AuthError::MissingAuthorization)?
        .trim_ascii();
    let wrong = || AuthError::WrongScheme {
        expected: scheme.to_string(),
    };
    let space = value.iter().position(|&b| b == b' ').ok_or_else(wrong)?;
    if !value[..space].eq_ignore_ascii_case(scheme.as_bytes()) {
        return Err(wrong());
    }
    Ok(&value[space + 1..])
}

fn check_secret(expected: &Secret, given: &[u8]) -> Result<(), AuthError> {
    let a = Sha256::digest(expected.expose());
    let b = Sha256::digest(given);
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(AuthError::BadCredentials)
    }
}

fn verify_hmac(
    cfg: &HmacConfig,
    signature: Option<&[u8]>,
    timestamp: Option<&[u8]>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), AuthError> {
    let header = || cfg.signature_header.clone();
    let signature = signature
        .ok_or_else(|| AuthError::MissingSignature { header: header() })?
        .trim_ascii();
    let mut expected = [0u8; 32];
    hex::decode_to_slice(signature, &mut expected)
        .map_err(|_| AuthError::MalformedSignature { header: header() })?;
    let signed_timestamp = match &cfg.timestamp_header {
        None => None,
        Some(ts_header) => {
            let raw = timestamp
                .ok_or_else(|| AuthError::MissingTimestamp {
                    header: ts_header.clone(),
                })?
                .trim_ascii();
            let unix = parse_unix_seconds(raw).ok_or_else(|| AuthError::MalformedTimestamp {
                header: ts_header.clone(),
            })?;
            Some((ts_header, raw, unix))
        }
    };
    let matches = cfg.secrets.iter().any(|secret| {
        // HMAC accepts keys of any length; this cannot fail.
        Hmac::<Sha256>::new_from_slice(secret.expose()).is_ok_and(|mut mac| {
            if let Some((_, raw, _)) = signed_timestamp {
                mac.update(raw);
                mac.update(b":");
            }
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        })
    });
    if !matches {
        return Err(AuthError::SignatureMismatch { header: header() });
    }
    // Checked after the signature, so only a genuine (replayed or delayed)
    // delivery learns about our clock.
    if let Some((ts_header, _, unix)) = signed_timestamp {
        let age_seconds = now_unix.saturating_sub(unix);
        if age_seconds.unsigned_abs() > cfg.max_skew_seconds {
            return Err(AuthError::StaleTimestamp {
                header: ts_header.clone(),
                age_seconds,
                max_skew_seconds: cfg.max_skew_seconds,
            });
        }
    }
    Ok(())
}

/// 1–19 ASCII digits (Grafana sends `strconv.FormatInt(now.Unix(), 10)`).
fn parse_unix_seconds(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > 19 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
