//! The web dashboard's settings (`DASHBOARD_PUBLIC`,
//! `DASHBOARD_SESSION_SECRET`); the dashboard itself is `src/http/dashboard/`.

use super::{parse, ConfigError, Secret};

/// Shortest `DASHBOARD_SESSION_SECRET` accepted, bytes.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Clone, Debug, Default)]
pub struct DashboardConfig {
    /// `DASHBOARD_PUBLIC` — `true`: the dashboard's pages need no login
    /// (read-only: no cancel or retry buttons). Default `false`.
    pub public: bool,
    /// `DASHBOARD_SESSION_SECRET` — the HMAC-SHA256 key of the session
    /// cookies, so every replica accepts the others' sessions (at least 32
    /// bytes). Unset: a random key per process (sessions end when it
    /// restarts, and a replica refuses another's).
    pub session_secret: Option<Secret>,
}

impl DashboardConfig {
    /// Reads and checks the variables.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let public = match get("DASHBOARD_PUBLIC") {
            None => false,
            Some(v) => parse::parse_bool(&v).ok_or_else(|| ConfigError {
                var: "DASHBOARD_PUBLIC",
                message: format!("must be true or false (got {:?})", v.trim()),
            })?,
        };
        let session_secret = match get("DASHBOARD_SESSION_SECRET") {
            None => None,
            Some(v) if v.trim().len() < MIN_SECRET_BYTES => {
                return Err(ConfigError {
                    var: "DASHBOARD_SESSION_SECRET",
                    message: format!("must be at least {MIN_SECRET_BYTES} bytes"),
                })
            }
            Some(v) => Some(Secret::new(v.trim())),
        };
        Ok(DashboardConfig {
            public,
            session_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(kv: &[(&str, &str)]) -> Result<DashboardConfig, ConfigError> {
        let get = |k: &str| {
            kv.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        };
        DashboardConfig::from_lookup(&get)
    }

    #[test]
    fn defaults_public_flag_and_secret_length() {
        let d = load(&[]).expect("defaults");
        assert!(!d.public && d.session_secret.is_none());
        assert!(load(&[("DASHBOARD_PUBLIC", "true")]).expect("ok").public);
        assert_eq!(
            load(&[("DASHBOARD_PUBLIC", "maybe")]).unwrap_err().var,
            "DASHBOARD_PUBLIC"
        );
        let short = load(&[("DASHBOARD_SESSION_SECRET", "short")]).unwrap_err();
        assert_eq!(short.var, "DASHBOARD_SESSION_SECRET");
        assert!(!short.message.contains("short"), "no secret in messages");
        let long = "k".repeat(40);
        let d = load(&[("DASHBOARD_SESSION_SECRET", &long)]).expect("ok");
        assert!(d.session_secret.is_some());
        assert!(!format!("{d:?}").contains(&long), "Debug hides the secret");
    }
}
