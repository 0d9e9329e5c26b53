//! The dashboard's session cookie and CSRF tokens.
//!
//! A session is a signed cookie, not server state: `v1.<kind>.<token
//! hash>.<expiry>.<nonce>` (base64url) and its HMAC-SHA256 (base64url),
//! joined by `.`. It names the token's kind and the first 16 hex digits of
//! the token's SHA-256 — never the token — so a session ends when its token
//! is removed from `API_TOKENS` ([`Keys::open`]'s caller checks), and at its
//! expiry ([`SESSION_SECONDS`]). The key is `DASHBOARD_SESSION_SECRET`
//! (replicas agree) or, unset, 32 random bytes drawn at start (sessions end
//! when the process does). The CSRF token of a session is the HMAC of its
//! nonce under a separate label: per session, checked in constant time,
//! nothing stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Secret, TokenKind};

/// How long a session lasts: 12 hours.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// The cookie's name.
pub const COOKIE: &str = "orchestrator_session";

/// A logged-in dashboard session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub kind: TokenKind,
    /// 16 hex digits of the token's SHA-256.
    pub token_hash: String,
    /// Unix seconds after which the session is refused.
    pub expires: i64,
    /// 32 random hex digits: names the session (one log follow each) and
    /// keys its CSRF token.
    pub nonce: String,
}

/// Why a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Forged,
    Expired,
}

/// The first 16 hex digits of a token's SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..8])
}

fn kind_of(s: &str) -> Option<TokenKind> {
    [TokenKind::Cli, TokenKind::PmAgent, TokenKind::Viewer]
        .into_iter()
        .find(|k| k.as_str() == s)
}

/// The signing key of sessions and CSRF tokens.
pub struct Keys {
    key: Vec<u8>,
    /// From `DASHBOARD_SESSION_SECRET` (replicas agree), else random.
    pub shared: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys(shared: {})", self.shared)
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    // The system's generator; a failure leaves time-and-address entropy
    // mixed through SHA-256 rather than a constant.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        let seed = format!(
            "{:?}{:p}",
            std::time::SystemTime::now(),
            &b as *const [u8; N]
        );
        let d = Sha256::digest(seed.as_bytes());
        for (i, x) in b.iter_mut().enumerate() {
            *x = d[i % d.len()];
        }
    }
    b
}

impl Keys {
    /// A random key, for this process only.
    pub fn random() -> Keys {
        Keys {
            key: random_bytes::<32>().to_vec(),
            shared: false,
        }
    }

    /// The key of `DASHBOARD_SESSION_SECRET`.
    pub fn from_secret(secret: &Secret) -> Keys {
        Keys {
            key: secret.expose().to_vec(),
            shared: true,
        }
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> Hmac<Sha256> {
        // Any key length is valid for HMAC.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(label);
        m.update(b"\0");
        m.update(data);
        m
    }

    /// A new session for a token of `kind`, valid from `now` (unix seconds).
    pub fn start(&self, kind: TokenKind, token: &str, now: i64) -> Session {
        Session {
            kind,
            token_hash: token_hash(token),
            expires: now + SESSION_SECONDS,
            nonce: hex::encode(random_bytes::<16>()),
        }
    }

    /// The cookie value of `s`.
    pub fn seal(&self, s: &Session) -> String {
        let payload = format!(
            "v1.{}.{}.{}.{}",
            s.kind.as_str(),
            s.token_hash,
            s.expires,
            s.nonce
        );
        let sig = self.mac(b"session", payload.as_bytes()).finalize();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig.into_bytes())
        )
    }

    /// The session of a cookie value, if it is signed with this key and
    /// not expired at `now`.
    pub fn open(&self, cookie: &str, now: i64) -> Result<Session, Refusal> {
        let (payload, sig) = cookie.split_once('.').ok_or(Refusal::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Refusal::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| Refusal::Malformed)?;
        self.mac(b"session", &payload)
            .verify_slice(&sig)
            .map_err(|_| Refusal::Forged)?;
        let text = std::str::from_utf8(&payload).map_err(|_| Refusal::Malformed)?;
        let parts: Vec<&str> = text.split('.').collect();
        let [version, kind, hash, expires, nonce] = parts[..] else {
            return Err(Refusal::Malformed);
        };
        let kind = kind_of(kind).filter(|_| version == "v1");
        let expires: Option<i64> = expires.parse().ok();
        let (Some(kind), Some(expires)) = (kind, expires) else {
            return Err(Refusal::Malformed);
        };
        if now >= expires {
            return Err(Refusal::Expired);
        }
        Ok(Session {
            kind,
            token_hash: hash.to_string(),
            expires,
            nonce: nonce.to_string(),
        })
    }

    /// The CSRF token of a session (its forms' hidden field).
    pub fn csrf(&self, s: &Session) -> String {
        let mac = self.mac(b"csrf", s.nonce.as_bytes()).finalize();
        URL_SAFE_NO_PAD.encode(mac.into_bytes())
    }

    /// Whether `given` is the CSRF token of `s` (constant time).
    pub fn csrf_ok(&self, s: &Session, given: &str) -> bool {
        let want = self.csrf(s);
        want.len() == given.len() && bool::from(want.as_bytes().ct_eq(given.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let keys = Keys::random();
        let s = keys.start(TokenKind::Viewer, "the-token", NOW);
        let cookie = keys.seal(&s);
        assert!(
            !cookie.contains("the-token"),
            "the token is not in the cookie"
        );
        assert_eq!(keys.open(&cookie, NOW), Ok(s.clone()));
        assert_eq!(keys.open(&cookie, NOW + SESSION_SECONDS - 1), Ok(s));
        assert_eq!(
            keys.open(&cookie, NOW + SESSION_SECONDS),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn forged_and_foreign_cookies_are_refused() {
        let keys = Keys::random();
        let s = keys.start(TokenKind::Viewer, "t", NOW);
        let cookie = keys.seal(&s);
        // Another process's key (no shared secret): refused.
        assert_eq!(Keys::random().open(&cookie, NOW), Err(Refusal::Forged));
        // A viewer session rewritten as cli, keeping the signature.
        let (payload, sig) = cookie.split_once('.').expect("two parts");
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("utf8");
        let forged = URL_SAFE_NO_PAD.encode(text.replace(".viewer.", ".cli."));
        assert_eq!(
            keys.open(&format!("{forged}.{sig}"), NOW),
            Err(Refusal::Forged)
        );
        // An extended expiry, likewise.
        let later = text.replace(&s.expires.to_string(), &(s.expires + 999_999).to_string());
        let later = URL_SAFE_NO_PAD.encode(later);
        assert_eq!(
            keys.open(&format!("{later}.{sig}"), NOW + SESSION_SECONDS),
            Err(Refusal::Forged)
        );
        for junk in ["", ".", "abc", "a.b", "!!.!!", &format!("{payload}.")] {
            assert!(keys.open(junk, NOW).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_shared_secret_lets_replicas_agree() {
        let secret = Secret::new("s".repeat(32));
        let (a, b) = (Keys::from_secret(&secret), Keys::from_secret(&secret));
        let s = a.start(TokenKind::Cli, "t", NOW);
        assert_eq!(b.open(&a.seal(&s), NOW), Ok(s.clone()));
        assert!(b.csrf_ok(&s, &a.csrf(&s)));
    }

    #[test]
    fn the_csrf_token_is_per_session_and_checked() {
        let keys = Keys::random();
        let s1 = keys.start(TokenKind::Cli, "t", NOW);
        let s2 = keys.start(TokenKind::Cli, "t", NOW);
        let t1 = keys.csrf(&s1);
        assert!(keys.csrf_ok(&s1, &t1));
        assert!(!keys.csrf_ok(&s2, &t1), "another session's token");
        assert!(!keys.csrf_ok(&s1, ""));
        assert!(!keys.csrf_ok(&s1, &t1[1..]));
        assert!(!Keys::random().csrf_ok(&s1, &t1), "another key");
    }
}
