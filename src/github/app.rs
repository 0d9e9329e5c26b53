//! GitHub App authentication: a JWT (RS256, `iss` = the App id, issued 60 s
//! in the past against clock drift, valid 9 minutes) buys an installation
//! token (`POST /app/installations/{id}/access_tokens`), kept until one
//! minute before it expires and bought again after a 401. One token per
//! installation is bought at a time: concurrent reports wait for the same
//! purchase.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};

use crate::config::github::RsaKey;

/// Installation tokens are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// A signer of App JWTs and a cache of installation tokens.
pub struct AppAuth {
    app_id: u64,
    key: ring::signature::RsaKeyPair,
    rng: ring::rand::SystemRandom,
    /// installation id → its token (one lock each, so one purchase at a time).
    tokens: std::sync::Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
    /// `owner/name` → installation id (from `GET /repos/{o}/{r}/installation`).
    installations: std::sync::Mutex<HashMap<String, u64>>,
}

/// A bought installation token.
#[derive(Clone)]
pub struct Cached {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl AppAuth {
    pub fn new(app_id: u64, key: &RsaKey) -> Result<AppAuth, String> {
        Ok(AppAuth {
            app_id,
            key: key.key_pair()?,
            rng: ring::rand::SystemRandom::new(),
            tokens: Default::default(),
            installations: Default::default(),
        })
    }

    /// A JWT for the App's own routes (`/app/...`), valid from 60 s ago for
    /// 9 minutes (GitHub allows at most 10).
    pub fn jwt(&self) -> Result<String, String> {
        let now = Utc::now().timestamp();
        let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64(
            serde_json::json!({"iat": now - 60, "exp": now + 9 * 60, "iss": self.app_id.to_string()})
                .to_string()
                .as_bytes(),
        );
        let signing_input = format!("{header}.{claims}");
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "could not sign the App JWT".to_string())?;
        Ok(format!("{signing_input}.{}", b64(&sig)))
    }

    /// The lock over one installation's token.
    pub fn slot(&self, installation: u64) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(installation)
            .or_default()
            .clone()
    }

    /// A cached token still good for a while.
    pub fn fresh(cached: &Option<Cached>) -> Option<String> {
        let c = cached.as_ref()?;
        let left = (c.expires_at - Utc::now()).to_std().ok()?;
        (left > RENEW_BEFORE).then(|| c.token.clone())
    }

    /// The installation a repository was last seen under.
    pub fn installation_of(&self, repo: &str) -> Option<u64> {
        self.installations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(repo)
            .copied()
    }

    /// Remembers a repository's installation (bounded: forgotten wholesale
    /// past 10,000 repositories).
    pub fn remember_installation(&self, repo: &str, id: u64) {
        let mut m = self
            .installations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= 10_000 {
            m.clear();
        }
        m.insert(repo.to_string(), id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwt_verifies_with_the_public_key_and_names_the_app() {
        let key = RsaKey::from_pem(include_str!(
            "../../tests/fixtures/keys/github-app-test.pem"
        ))
        .unwrap();
        let auth = AppAuth::new(42, &key).unwrap();
        let jwt = auth.jwt().unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let public = auth.key.public().as_ref().to_vec();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            public,
        )
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the signature verifies");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], "42");
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert!(
            exp - iat <= 600,
            "GitHub refuses JWTs valid over 10 minutes"
        );
        assert!(iat < Utc::now().timestamp());
    }
}
