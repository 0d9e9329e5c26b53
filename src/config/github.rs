//! Reporting back to GitHub (`GITHUB_API_URL`, `GITHUB_TOKEN`,
//! `GITHUB_APP_*`, `PUBLIC_URL`, `REPORT_GIVE_UP_SECONDS`): where the API
//! is, which credential speaks to it, and how long a report may keep
//! failing before it is given up; and the recovery of missed deliveries
//! (`DELIVERY_RECOVERY_*`).

use std::sync::Arc;
use std::time::Duration;

use super::{ConfigError, Secret};

/// How the service authenticates to GitHub's API.
#[derive(Clone, Debug)]
pub enum GithubCredential {
    /// A token (`GITHUB_TOKEN` / `GITHUB_TOKEN_FILE`): a personal access
    /// token or an App's installation token made elsewhere.
    Token(Secret),
    /// A GitHub App (`GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY[_FILE]`):
    /// JWTs signed with the key buy installation tokens.
    App {
        app_id: u64,
        /// The RSA private key, DER (PKCS#1 or PKCS#8 as given).
        key: Arc<RsaKey>,
    },
}

/// An RSA private key as read from PEM (never printed).
pub struct RsaKey {
    /// The key's DER bytes.
    pub der: Vec<u8>,
    /// `true`: PKCS#8 (`BEGIN PRIVATE KEY`); `false`: PKCS#1 (`BEGIN RSA
    /// PRIVATE KEY`, what GitHub hands out).
    pub pkcs8: bool,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl RsaKey {
    /// Reads a PEM RSA private key and checks that it signs. The error
    /// never repeats the key.
    pub fn from_pem(text: &str) -> Result<RsaKey, String> {
        let text = text.trim();
        let (pkcs8, begin, end) = if text.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            (
                false,
                "-----BEGIN RSA PRIVATE KEY-----",
                "-----END RSA PRIVATE KEY-----",
            )
        } else if text.starts_with("-----BEGIN PRIVATE KEY-----") {
            (
                true,
                "-----BEGIN PRIVATE KEY-----",
                "-----END PRIVATE KEY-----",
            )
        } else {
            return Err(
                "expected a PEM RSA private key (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)"
                    .into(),
            );
        };
        let body = text
            .strip_prefix(begin)
            .and_then(|t| t.trim_end().strip_suffix(end))
            .ok_or("the PEM key has no matching END line")?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "the PEM key's body is not base64".to_string())?;
        let key = RsaKey { der, pkcs8 };
        key.key_pair()?;
        Ok(key)
    }

    /// The key as `ring` signs with it.
    pub fn key_pair(&self) -> Result<ring::signature::RsaKeyPair, String> {
        let parsed = if self.pkcs8 {
            ring::signature::RsaKeyPair::from_pkcs8(&self.der)
        } else {
            ring::signature::RsaKeyPair::from_der(&self.der)
        };
        parsed.map_err(|e| format!("not a usable RSA private key ({e})"))
    }
}

/// Reporting to GitHub.
#[derive(Clone, Debug)]
pub struct GithubApiConfig {
    /// `GITHUB_API_URL` — GitHub's REST API. Default
    /// `https://api.github.com`; GitHub Enterprise Server:
    /// `https://HOST/api/v3`.
    pub api_url: url::Url,
    /// The credential; `None`: no reports to GitHub.
    pub credential: Option<GithubCredential>,
    /// `PUBLIC_URL` — where people reach this service; reports link to a
    /// Job's page under it. Default: no link.
    pub public_url: Option<url::Url>,
    /// `REPORT_GIVE_UP_SECONDS` — how long a report (GitHub or callback)
    /// may keep failing before it is given up. Default `900`.
    pub give_up: Duration,
    /// `DELIVERY_RECOVERY_*` — recovery of missed webhook deliveries.
    pub recovery: RecoveryConfig,
}

/// Recovery of missed webhook deliveries (`src/report/recovery.rs`), with
/// GitHub App credentials only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// `DELIVERY_RECOVERY_INTERVAL_SECONDS` — how often the leader looks
    /// for missed deliveries; `None` (`0`): never. Default `300`.
    pub interval: Option<Duration>,
    /// `DELIVERY_RECOVERY_WINDOW_SECONDS` — how far back it looks. Default
    /// `259200` (3 days, as long as github.com keeps deliveries).
    pub window: Duration,
    /// `DELIVERY_RECOVERY_MAX_PER_CYCLE` — most redeliveries asked for per
    /// cycle. Default `50`.
    pub max_per_cycle: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            interval: Some(Duration::from_secs(300)),
            window: Duration::from_secs(259_200),
            max_per_cycle: 50,
        }
    }
}

/// An integer in `range` (`None` when unset).
fn integer(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, ConfigError> {
    let Some(v) = get(var) else {
        return Ok(None);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(bad(
            var,
            format!(
                "expected an integer from {} to {}, got {:?}",
                range.start(),
                range.end(),
                v.trim()
            ),
        )),
    }
}

impl RecoveryConfig {
    /// Reads and checks the `DELIVERY_RECOVERY_*` variables.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = RecoveryConfig::default();
        let interval = match integer(get, "DELIVERY_RECOVERY_INTERVAL_SECONDS", 0..=86_400)? {
            None => d.interval,
            Some(0) => None,
            Some(n) => Some(Duration::from_secs(n)),
        };
        let window = integer(get, "DELIVERY_RECOVERY_WINDOW_SECONDS", 60..=2_592_000)?
            .map_or(d.window, Duration::from_secs);
        let max_per_cycle = integer(get, "DELIVERY_RECOVERY_MAX_PER_CYCLE", 1..=1000)?
            .map_or(d.max_per_cycle, |n| n as usize);
        Ok(RecoveryConfig {
            interval,
            window,
            max_per_cycle,
        })
    }
}

impl Default for GithubApiConfig {
    fn default() -> Self {
        GithubApiConfig {
            api_url: url::Url::parse("https://api.github.com").expect("a valid URL"),
            credential: None,
            public_url: None,
            give_up: Duration::from_secs(900),
            recovery: RecoveryConfig::default(),
        }
    }
}

fn bad(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// `VAR` or `VAR_FILE` (not both), trimmed.
fn inline_or_file(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    file_var: &'static str,
) -> Result<Option<String>, ConfigError> {
    match (get(var), get(file_var)) {
        (Some(_), Some(_)) => Err(bad(
            file_var,
            format!("set either {var} or {file_var}, not both"),
        )),
        (Some(v), None) => Ok(Some(v.trim().to_string())),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|t| Some(t.trim().to_string()))
            .map_err(|e| {
                bad(
                    file_var,
                    format!("expected a readable file, could not read {path:?}: {e}"),
                )
            }),
        (None, None) => Ok(None),
    }
}

fn http_url(var: &'static str, v: &str) -> Result<url::Url, ConfigError> {
    match url::Url::parse(v.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err(bad(
            var,
            format!(
                "expected an http(s) URL like https://api.github.com, got {:?}",
                v.trim()
            ),
        )),
    }
}

impl GithubApiConfig {
    /// Reads and checks the variables.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = GithubApiConfig::default();
        let api_url = match get("GITHUB_API_URL") {
            Some(v) => http_url("GITHUB_API_URL", &v)?,
            None => d.api_url,
        };
        let public_url = get("PUBLIC_URL")
            .map(|v| http_url("PUBLIC_URL", &v))
            .transpose()?;
        let token = inline_or_file(get, "GITHUB_TOKEN", "GITHUB_TOKEN_FILE")?;
        let key = inline_or_file(get, "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_PRIVATE_KEY_FILE")?;
        let app_id = match get("GITHUB_APP_ID") {
            None => None,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(bad(
                        "GITHUB_APP_ID",
                        format!("expected the App's numeric id, got {:?}", v.trim()),
                    ))
                }
            },
        };
        let credential = match (token, app_id, key) {
            (Some(_), Some(_), _) => {
                return Err(bad(
                    "GITHUB_APP_ID",
                    "set either GITHUB_TOKEN or a GitHub App (GITHUB_APP_ID with GITHUB_APP_PRIVATE_KEY), not both",
                ))
            }
            (Some(t), None, None) if !t.is_empty() => Some(GithubCredential::Token(Secret::new(t))),
            (Some(_), None, Some(_)) => {
                return Err(bad("GITHUB_APP_PRIVATE_KEY", "set with GITHUB_APP_ID, not with GITHUB_TOKEN"))
            }
            (None, Some(_), None) => {
                return Err(bad(
                    "GITHUB_APP_PRIVATE_KEY",
                    "required with GITHUB_APP_ID: set GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE",
                ))
            }
            (None, None, Some(_)) => return Err(bad("GITHUB_APP_ID", "required with GITHUB_APP_PRIVATE_KEY")),
            (None, Some(app_id), Some(pem)) => {
                let key = RsaKey::from_pem(&pem).map_err(|m| bad("GITHUB_APP_PRIVATE_KEY", m))?;
                Some(GithubCredential::App {
                    app_id,
                    key: Arc::new(key),
                })
            }
            _ => None,
        };
        let give_up = match get("REPORT_GIVE_UP_SECONDS") {
            None => d.give_up,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (1..=86_400).contains(&n) => Duration::from_secs(n),
                _ => {
                    return Err(bad(
                        "REPORT_GIVE_UP_SECONDS",
                        format!("expected an integer from 1 to 86400, got {:?}", v.trim()),
                    ))
                }
            },
        };
        Ok(GithubApiConfig {
            api_url,
            credential,
            public_url,
            give_up,
            recovery: RecoveryConfig::from_lookup(get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<GithubApiConfig, ConfigError> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GithubApiConfig::from_lookup(&|k: &str| map.get(k).cloned())
    }

    const KEY: &str = include_str!("../../tests/fixtures/keys/github-app-test.pem");

    #[test]
    fn a_token_or_an_app_never_both_and_the_key_must_sign() {
        assert!(load(&[]).unwrap().credential.is_none());
        assert!(matches!(
            load(&[("GITHUB_TOKEN", "t")]).unwrap().credential,
            Some(GithubCredential::Token(_))
        ));
        let app = load(&[("GITHUB_APP_ID", "7"), ("GITHUB_APP_PRIVATE_KEY", KEY)]).unwrap();
        assert!(matches!(
            app.credential,
            Some(GithubCredential::App { app_id: 7, .. })
        ));
        let e = load(&[
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_APP_ID", "7"),
            ("GITHUB_APP_PRIVATE_KEY", KEY),
        ])
        .unwrap_err();
        assert_eq!(e.var, "GITHUB_APP_ID");
        let e = load(&[("GITHUB_APP_ID", "7")]).unwrap_err();
        assert_eq!(e.var, "GITHUB_APP_PRIVATE_KEY");
        let e = load(&[
            ("GITHUB_APP_ID", "7"),
            (
                "GITHUB_APP_PRIVATE_KEY",
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            ),
        ])
        .unwrap_err();
        assert_eq!(e.var, "GITHUB_APP_PRIVATE_KEY");
        assert!(!e.message.contains("AAAA"), "{}", e.message);
        let e = load(&[("GITHUB_APP_ID", "x"), ("GITHUB_APP_PRIVATE_KEY", KEY)]).unwrap_err();
        assert_eq!(e.var, "GITHUB_APP_ID");
    }

    #[test]
    fn urls_and_give_up_are_checked() {
        assert_eq!(
            load(&[]).unwrap().api_url.as_str(),
            "https://api.github.com/"
        );
        assert_eq!(
            load(&[("GITHUB_API_URL", "ftp://x")]).unwrap_err().var,
            "GITHUB_API_URL"
        );
        assert_eq!(
            load(&[("PUBLIC_URL", "nope")]).unwrap_err().var,
            "PUBLIC_URL"
        );
        assert_eq!(
            load(&[("REPORT_GIVE_UP_SECONDS", "0")]).unwrap_err().var,
            "REPORT_GIVE_UP_SECONDS"
        );
        assert_eq!(
            load(&[("REPORT_GIVE_UP_SECONDS", "30")]).unwrap().give_up,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn delivery_recovery_defaults_zero_turns_it_off_and_bounds_are_checked() {
        assert_eq!(load(&[]).unwrap().recovery, RecoveryConfig::default());
        let off = load(&[("DELIVERY_RECOVERY_INTERVAL_SECONDS", "0")]).unwrap();
        assert_eq!(off.recovery.interval, None);
        let r = load(&[
            ("DELIVERY_RECOVERY_INTERVAL_SECONDS", "1"),
            ("DELIVERY_RECOVERY_WINDOW_SECONDS", "3600"),
            ("DELIVERY_RECOVERY_MAX_PER_CYCLE", "5"),
        ])
        .unwrap()
        .recovery;
        assert_eq!(r.interval, Some(Duration::from_secs(1)));
        assert_eq!(r.window, Duration::from_secs(3600));
        assert_eq!(r.max_per_cycle, 5);
        for (var, v) in [
            ("DELIVERY_RECOVERY_INTERVAL_SECONDS", "-1"),
            ("DELIVERY_RECOVERY_WINDOW_SECONDS", "0"),
            ("DELIVERY_RECOVERY_MAX_PER_CYCLE", "0"),
            ("DELIVERY_RECOVERY_MAX_PER_CYCLE", "many"),
        ] {
            assert_eq!(load(&[(var, v)]).unwrap_err().var, var);
        }
    }
}
