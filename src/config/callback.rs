//! Callbacks of task state changes (`CALLBACK_SECRET[_FILE]`,
//! `CALLBACK_ALLOWED_HOSTS`): the key the bodies are signed with, and the
//! hosts a task's `callback_url` may name.
//!
//! The allowlist holds host names — exact (`hooks.example.com`) or every
//! subdomain of one (`*.example.com`, not the name itself) — and IP
//! addresses or CIDRs (`203.0.113.7`, `10.1.0.0/16`, `fd00::/8`). A URL
//! whose host is a name must match a listed name; one whose host is an IP
//! literal must be inside a listed address or CIDR. At delivery, the
//! addresses a name resolves to are checked again (`src/report/callback.rs`):
//! loopback, private, link-local and other internal addresses are refused
//! unless they are inside a listed address or CIDR.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{ConfigError, Secret};

/// Longest `callback_url` accepted, bytes.
pub const MAX_CALLBACK_URL: usize = 2048;

/// One host-name entry of `CALLBACK_ALLOWED_HOSTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// This name exactly (lower case, no trailing dot).
    Exact(String),
    /// Any subdomain of this name (`*.example.com` holds `example.com`).
    Subdomains(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(n) => host == n,
            HostPattern::Subdomains(n) => host
                .strip_suffix(n.as_str())
                .and_then(|p| p.strip_suffix('.'))
                .is_some_and(|p| !p.is_empty()),
        }
    }
}

/// Callbacks' configuration.
#[derive(Clone, Debug, Default)]
pub struct CallbackConfig {
    /// `CALLBACK_SECRET` / `CALLBACK_SECRET_FILE` — the HMAC-SHA256 key of
    /// the `X-Orchestrator-Signature` header. `None`: no callbacks (a
    /// `callback_url` is refused with 422).
    pub secret: Option<Secret>,
    /// `CALLBACK_ALLOWED_HOSTS` — the host-name entries.
    pub names: Vec<HostPattern>,
    /// `CALLBACK_ALLOWED_HOSTS` — the address and CIDR entries.
    pub nets: Vec<IpNet>,
}

fn bad(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// A host name as listed or as found in a URL: lower case, no trailing dot,
/// dot-separated labels of letters, digits, `-` and `_`.
fn host_name(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = (1..=253).contains(&s.len())
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(s)
}

fn parse_entry(item: &str) -> Result<Result<IpNet, HostPattern>, ConfigError> {
    let expected = "comma-separated host names (hooks.example.com, or *.example.com for its subdomains), IP addresses or CIDRs (203.0.113.7, 10.0.0.0/8, fd00::/8); no ports";
    let bare = item.trim_start_matches('[').trim_end_matches(']');
    if let Ok(net) = bare.parse::<IpNet>() {
        return Ok(Ok(net.trunc()));
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Ok(IpNet::from(ip)));
    }
    let fail = || {
        bad(
            "CALLBACK_ALLOWED_HOSTS",
            format!("expected {expected}, got {item:?}"),
        )
    };
    if let Some(rest) = item.strip_prefix("*.") {
        return host_name(rest)
            .map(|n| Err(HostPattern::Subdomains(n)))
            .ok_or_else(fail);
    }
    host_name(item)
        .map(|n| Err(HostPattern::Exact(n)))
        .ok_or_else(fail)
}

impl CallbackConfig {
    /// Reads and checks the variables.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let secret = match (get("CALLBACK_SECRET"), get("CALLBACK_SECRET_FILE")) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "CALLBACK_SECRET_FILE",
                    "set either CALLBACK_SECRET or CALLBACK_SECRET_FILE, not both",
                ))
            }
            (Some(v), None) => Some(v.trim().to_string()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| {
                        bad(
                            "CALLBACK_SECRET_FILE",
                            format!("expected a readable file, could not read {path:?}: {e}"),
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(bad(
                "CALLBACK_SECRET",
                "expected a secret of at least 16 characters",
            ));
        }
        let (mut names, mut nets) = (Vec::new(), Vec::new());
        for item in get("CALLBACK_ALLOWED_HOSTS")
            .unwrap_or_default()
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match parse_entry(item)? {
                Ok(net) => nets.push(net),
                Err(name) => names.push(name),
            }
        }
        Ok(CallbackConfig {
            secret: secret.map(Secret::new),
            names,
            nets,
        })
    }

    /// Whether callbacks are on (a secret is set).
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether `ip` is inside a listed address or CIDR (an IPv4-mapped
    /// IPv6 address counts as its IPv4 address).
    pub fn ip_listed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether a host name matches a listed name.
    pub fn name_listed(&self, host: &str) -> bool {
        host_name(host).is_some_and(|h| self.names.iter().any(|p| p.matches(&h)))
    }

    /// Checks a task's `callback_url`: the URL, or why it is refused (a
    /// field error's message; it never repeats the URL).
    pub fn check_url(&self, raw: &str) -> Result<url::Url, String> {
        if !self.enabled() {
            return Err("callbacks are not configured: set CALLBACK_SECRET".into());
        }
        if raw.len() > MAX_CALLBACK_URL {
            return Err(format!("must be at most {MAX_CALLBACK_URL} bytes"));
        }
        let url =
            url::Url::parse(raw).map_err(|_| "must be an absolute http(s) URL".to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        let allowed = match url.host() {
            Some(url::Host::Ipv4(ip)) => self.ip_listed(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.ip_listed(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => self.name_listed(d),
            None => return Err("must name a host".into()),
        };
        if !allowed {
            return Err("its host is not on CALLBACK_ALLOWED_HOSTS".into());
        }
        Ok(url)
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others as they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<CallbackConfig, ConfigError> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CallbackConfig::from_lookup(&|k: &str| map.get(k).cloned())
    }

    const SECRET: &str = "a-callback-secret-0123";

    #[test]
    fn the_secret_is_inline_or_a_file_never_both_and_never_printed() {
        assert!(!load(&[]).unwrap().enabled());
        let c = load(&[("CALLBACK_SECRET", SECRET)]).unwrap();
        assert!(c.enabled());
        assert!(!format!("{c:?}").contains(SECRET));
        let e = load(&[("CALLBACK_SECRET", SECRET), ("CALLBACK_SECRET_FILE", "/x")]).unwrap_err();
        assert_eq!(e.var, "CALLBACK_SECRET_FILE");
        let e = load(&[("CALLBACK_SECRET", "short")]).unwrap_err();
        assert_eq!(e.var, "CALLBACK_SECRET");
        assert!(!e.message.contains("short"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        let c = load(&[("CALLBACK_SECRET_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(c.secret.unwrap().expose(), SECRET.as_bytes());
        let e = load(&[("CALLBACK_SECRET_FILE", "/nonexistent/secret")]).unwrap_err();
        assert_eq!(e.var, "CALLBACK_SECRET_FILE");
    }

    #[test]
    fn the_allowlist_holds_names_patterns_addresses_and_cidrs() {
        let c = load(&[(
            "CALLBACK_ALLOWED_HOSTS",
            "Hooks.Example.com, *.pm.example.org,127.0.0.1 10.1.0.0/16,[::1],fd00::/8",
        )])
        .unwrap();
        assert_eq!(
            c.names,
            vec![
                HostPattern::Exact("hooks.example.com".into()),
                HostPattern::Subdomains("pm.example.org".into())
            ]
        );
        assert_eq!(c.nets.len(), 4);
        assert!(c.name_listed("hooks.example.com."));
        assert!(c.name_listed("HOOKS.example.com"));
        assert!(!c.name_listed("x.hooks.example.com"));
        assert!(c.name_listed("a.pm.example.org"));
        assert!(c.name_listed("a.b.pm.example.org"));
        assert!(!c.name_listed("pm.example.org"));
        assert!(!c.name_listed("evilpm.example.org"));
        assert!(c.ip_listed("127.0.0.1".parse().unwrap()));
        assert!(c.ip_listed("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.ip_listed("127.0.0.2".parse().unwrap()));
        assert!(c.ip_listed("10.1.200.3".parse().unwrap()));
        assert!(c.ip_listed("fd12::1".parse().unwrap()));
        for bad in [
            "example.com:8080",
            "http://x",
            "*.",
            "a..b",
            "*.*.x",
            "10.0.0.0/33",
        ] {
            let e = load(&[("CALLBACK_ALLOWED_HOSTS", bad)]).unwrap_err();
            assert_eq!(e.var, "CALLBACK_ALLOWED_HOSTS", "{bad}");
        }
    }

    #[test]
    fn a_callback_url_must_be_plain_http_on_a_listed_host() {
        let off = load(&[("CALLBACK_ALLOWED_HOSTS", "hooks.example.com")]).unwrap();
        assert!(off
            .check_url("https://hooks.example.com/x")
            .unwrap_err()
            .contains("CALLBACK_SECRET"));
        let c = load(&[
            ("CALLBACK_SECRET", SECRET),
            (
                "CALLBACK_ALLOWED_HOSTS",
                "hooks.example.com,*.example.net,192.0.2.0/24,::1",
            ),
        ])
        .unwrap();
        assert!(c.check_url("https://hooks.example.com/cb?x=1").is_ok());
        assert!(c.check_url("http://HOOKS.example.com:8443/cb").is_ok());
        assert!(c.check_url("https://a.example.net/").is_ok());
        assert!(c.check_url("http://192.0.2.9:9000/").is_ok());
        assert!(c.check_url("http://[::1]:9000/").is_ok());
        for bad in [
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://user@hooks.example.com/",
            "https://other.example.com/",
            "https://example.net/",
            "http://127.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://192.0.3.1/",
            "not a url",
            "/relative",
        ] {
            assert!(c.check_url(bad).is_err(), "{bad}");
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_CALLBACK_URL));
        assert!(c.check_url(&long).unwrap_err().contains("2048"));
        let e = c
            .check_url("https://secret-host.invalid/?token=abc")
            .unwrap_err();
        assert!(!e.contains("token") && !e.contains("secret-host"), "{e}");
    }
}
