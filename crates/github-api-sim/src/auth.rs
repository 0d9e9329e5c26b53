//! Credentials: static tokens, installation tokens and RS256 App JWTs.

use base64::Engine;
use serde_json::Value;

/// The login requests made with a static token act as.
pub const PAT_LOGIN: &str = "orchestrator-bot";
/// The user id of [`PAT_LOGIN`].
pub const PAT_USER_ID: u64 = 90_000_001;
/// The user id of the App's bot user (`GithubSimConfig::bot_login`).
pub const BOT_USER_ID: u64 = 90_000_002;

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An App JWT (the App itself).
    App,
    /// An installation token of installation `id`.
    Installation { id: u64 },
    /// A static token from `GithubSimConfig::tokens`.
    Pat { token: String },
    /// No credentials: reads only, as GitHub allows on public repositories.
    Anonymous,
}

impl Identity {
    /// The rate-limit bucket: per installation, per static token, one for the App.
    pub fn bucket(&self) -> String {
        match self {
            Identity::App => "app".into(),
            Identity::Installation { id } => format!("installation:{id}"),
            Identity::Pat { token } => format!("token:{token}"),
            Identity::Anonymous => "anonymous".into(),
        }
    }

    /// GitHub's "API rate limit exceeded for …" message.
    pub fn rate_limit_message(&self, app_id: u64) -> String {
        match self {
            Identity::App => format!("API rate limit exceeded for app ID {app_id}."),
            Identity::Installation { id } => {
                format!("API rate limit exceeded for installation ID {id}.")
            }
            Identity::Pat { .. } => format!("API rate limit exceeded for user ID {PAT_USER_ID}."),
            Identity::Anonymous => "API rate limit exceeded for 127.0.0.1.".into(),
        }
    }
}

/// The token of an `Authorization: token X` / `Bearer X` header.
pub fn credential(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, rest) = h.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        let t = rest.trim();
        (!t.is_empty()).then_some(t)
    } else {
        None
    }
}

/// The DER body of a PKCS#1 `RSA PUBLIC KEY` PEM.
pub fn public_key_der(pem: &str) -> Result<Vec<u8>, String> {
    let pem = pem.trim();
    if pem.contains("BEGIN PUBLIC KEY") {
        return Err("the App public key must be PKCS#1 (BEGIN RSA PUBLIC KEY; `openssl rsa -pubin -RSAPublicKey_out` converts), not SPKI (BEGIN PUBLIC KEY)".into());
    }
    if !pem.contains("-----BEGIN RSA PUBLIC KEY-----") {
        return Err("the App public key is not a PEM `RSA PUBLIC KEY`".into());
    }
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("the App public key's base64 is invalid: {e}"))?;
    if der.len() < 64 {
        return Err("the App public key is too short".into());
    }
    Ok(der)
}

const NOT_DECODED: &str = "A JSON web token could not be decoded";

fn b64url(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| NOT_DECODED.to_string())
}

fn numeric(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Does `token` look like a JWT (three dot-separated parts)?
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Verifies an App JWT as GitHub does: RS256 with the App's key, `iss` the
/// App id (string or number), `exp` in the future and at most 10 minutes
/// after `iat`, `iat` at most 60 s in the future. `now` is unix seconds.
/// The error is GitHub's message for the 401.
pub fn verify_jwt(token: &str, key_der: &[u8], app_id: u64, now: i64) -> Result<(), String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(NOT_DECODED.into());
    }
    let header: Value = serde_json::from_slice(&b64url(parts[0])?)
        .map_err(|_| format!("{NOT_DECODED}: the header is not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(format!("{NOT_DECODED}: the 'alg' header must be RS256"));
    }
    let signature = b64url(parts[2])?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key_der)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| {
            format!("{NOT_DECODED}: the signature does not verify with the App's public key")
        })?;
    let claims: Value = serde_json::from_slice(&b64url(parts[1])?)
        .map_err(|_| format!("{NOT_DECODED}: the claims are not JSON"))?;
    let iss = match claims.get("iss") {
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    match iss {
        None => return Err("'Issuer' claim ('iss') must be an Integer".into()),
        Some(i) if i != app_id => {
            return Err(format!(
                "'Issuer' claim ('iss') is not this App's id: no App {i} (Integration not found)"
            ))
        }
        Some(_) => {}
    }
    let iat = claims.get("iat").and_then(numeric).ok_or_else(|| {
        "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued".to_string()
    })?;
    let exp = claims.get("exp").and_then(numeric).ok_or_else(|| {
        "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".to_string()
    })?;
    if iat > now + 60 {
        return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued (it is more than 60 seconds in the future)".into());
    }
    if exp <= now {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires (it is in the past)".into());
    }
    if exp - iat > 600 {
        return Err(
            "'Expiration time' claim ('exp') is too far in the future (more than 10 minutes after 'iat')"
                .into(),
        );
    }
    Ok(())
}

/// A random token body: `len` characters of [A-Za-z0-9].
pub fn random_token(len: usize) -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = ring::rand::SystemRandom::new();
    let mut bytes = vec![0u8; len];
    if rng.fill(&mut bytes).is_err() {
        // Never expected; fall back to the clock so tokens still differ.
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (n >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_take_both_schemes() {
        assert_eq!(credential(Some("token abc")), Some("abc"));
        assert_eq!(credential(Some("Bearer x.y.z")), Some("x.y.z"));
        assert_eq!(credential(Some("Basic abc")), None);
        assert_eq!(credential(Some("token ")), None);
        assert_eq!(credential(None), None);
    }

    #[test]
    fn spki_keys_are_refused_with_a_hint() {
        let e = public_key_der("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
            .unwrap_err();
        assert!(e.contains("PKCS#1"), "{e}");
    }

    #[test]
    fn random_tokens_differ_and_are_alphanumeric() {
        let a = random_token(36);
        let b = random_token(36);
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
