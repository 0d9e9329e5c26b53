//! How the fake GitHub API behaves.

use std::time::Duration;

/// Caps on what the simulator keeps in memory. When a cap is reached the
/// oldest object of that kind is dropped to make room (the request log is a
/// ring), so a long-running simulator stays bounded.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Issue comments kept (oldest dropped first).
    pub max_comments: usize,
    /// Reactions kept.
    pub max_reactions: usize,
    /// Check runs kept.
    pub max_check_runs: usize,
    /// Hook deliveries kept.
    pub max_deliveries: usize,
    /// Seeded pull requests and per-repository installations kept.
    pub max_seeded: usize,
    /// Installation tokens remembered (expired ones are dropped first).
    pub max_installation_tokens: usize,
    /// Entries of the request log (`requests` in `/_sim/state`), a ring.
    pub max_requests_logged: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_comments: 100_000,
            max_reactions: 100_000,
            max_check_runs: 100_000,
            max_deliveries: 10_000,
            max_seeded: 10_000,
            max_installation_tokens: 10_000,
            max_requests_logged: 10_000,
            max_body_bytes: 4 << 20,
        }
    }
}

/// Configuration of a [`crate::GithubSimServer`]; every field has a default.
#[derive(Debug, Clone)]
pub struct GithubSimConfig {
    /// The GitHub App's id: the `iss` an App JWT must carry. Without it (or
    /// without `app_public_key_pem`) every App JWT is refused with 401.
    pub app_id: Option<u64>,
    /// The App's public key, PKCS#1 PEM (`-----BEGIN RSA PUBLIC KEY-----`,
    /// `openssl rsa -RSAPublicKey_out`); App JWTs must be RS256-signed with
    /// the matching private key.
    pub app_public_key_pem: Option<String>,
    /// Static personal-access-style tokens, accepted everywhere except the
    /// `/app…` routes and `GET /repos/{o}/{r}/installation` (which take an App
    /// JWT only). Requests with them act as the user `orchestrator-bot`.
    pub tokens: Vec<String>,
    /// Lifetime of issued installation tokens (`expires_at`); a token past
    /// it is refused with 401. GitHub's is one hour.
    pub installation_token_ttl: Duration,
    /// Login of the App's bot user, the author of what installation tokens
    /// create. The App's slug is this without `[bot]`.
    pub bot_login: String,
    /// Requests per hour per rate-limit bucket (each installation, each
    /// static token, the App's JWTs).
    pub rate_limit_per_hour: u32,
    /// Installation ids for which `POST /app/installations/{id}/access_tokens`
    /// issues tokens; empty = any id (ids set with `/_sim/installations` are
    /// always accepted).
    pub installation_ids: Vec<u64>,
    pub limits: Limits,
    /// actix-web worker threads.
    pub workers: usize,
}

impl Default for GithubSimConfig {
    fn default() -> Self {
        GithubSimConfig {
            app_id: None,
            app_public_key_pem: None,
            tokens: Vec::new(),
            installation_token_ttl: Duration::from_secs(3600),
            bot_login: "orchestrator[bot]".into(),
            rate_limit_per_hour: 5000,
            installation_ids: Vec::new(),
            limits: Limits::default(),
            workers: 1,
        }
    }
}
