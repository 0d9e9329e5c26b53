//! Small validators shared by [`super::Config`] and the Job builder: each one
//! answers "is this string acceptable to Kubernetes / to us?" and, on failure,
//! returns the expected form so the caller can build a message naming the
//! variable.

use std::time::Duration;

use super::ConfigError;

/// Longest period accepted by [`seconds`] (one hour).
const MAX_SECONDS: f64 = 3600.0;

/// Reads a period in seconds from `var`: a positive number up to an hour,
/// decimals allowed (`15`, `0.5`); unset means `default`.
pub(crate) fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(v) = get(var) else {
        return Ok(default);
    };
    let expected = "a positive number of seconds up to 3600 (decimals allowed, e.g. 15 or 0.5)";
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_SECONDS => Ok(Duration::from_secs_f64(s)),
        _ => Err(ConfigError {
            var,
            message: format!("expected {expected}, got {v:?}"),
        }),
    }
}

/// Binary (`Ki`…`Ei`) and decimal (`n`…`E`) suffixes Kubernetes accepts on a
/// quantity, with their multipliers.
const SUFFIXES: &[(&str, f64)] = &[
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
];

/// Parses a non-negative Kubernetes resource quantity (`4Gi`, `500m`, `1.5`,
/// `2e3`) into its value in base units, or `None` if Kubernetes would reject
/// it. Used to validate resources and to compare a request with its limit.
pub fn quantity_value(s: &str) -> Option<f64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let base: f64 = number.parse().ok()?;
    let multiplier = if suffix.is_empty() {
        1.0
    } else if let Some(&(_, m)) = SUFFIXES.iter().find(|(name, _)| *name == suffix) {
        m
    } else if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
        let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        10f64.powi(exp.parse().ok()?)
    } else {
        return None;
    };
    Some(base * multiplier)
}

/// True if `s` is an RFC 1123 DNS label: 1–63 characters of `[a-z0-9-]`,
/// starting and ending with an alphanumeric (namespaces, container names).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// True if `s` is an RFC 1123 DNS subdomain: ≤253 characters, dot-separated
/// DNS labels (Secret and ServiceAccount names).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// `host[:port]`: a DNS name (letters, digits, `-`, `.`; labels not starting
/// or ending with `-`) with an optional port 1–65535; nothing else.
pub fn is_host_port(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n >= 1)
    });
    let host_ok = (1..=253).contains(&host.len())
        && host.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    port_ok && host_ok
}

/// True if `s` may be a key in a Secret's `data` (`[-._a-zA-Z0-9]+`, ≤253).
pub fn is_secret_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A container image reference we accept: non-empty, no whitespace or
/// control characters. The registry is the final judge of the rest.
pub fn is_image_ref(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Parses a boolean the way operators write them in env files.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Parses a byte size: a plain integer, or an integer with a `KiB`/`MiB`/`GiB`
/// (also `Ki`/`Mi`/`Gi`) suffix.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match suffix.trim() {
        "" | "B" => 1,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_kubernetes_accepts_parse() {
        assert_eq!(quantity_value("4Gi"), Some(4.0 * 1_073_741_824.0));
        assert_eq!(quantity_value("500m"), Some(0.5));
        assert_eq!(quantity_value("1"), Some(1.0));
        assert_eq!(quantity_value("1.5"), Some(1.5));
        assert_eq!(quantity_value("2e3"), Some(2000.0));
        assert_eq!(quantity_value("128974848"), Some(128_974_848.0));
        assert_eq!(quantity_value("+1k"), Some(1000.0));
    }

    #[test]
    fn quantities_kubernetes_rejects_do_not_parse() {
        for bad in [
            "", "lots", "4GB", "-1", "1..2", ".", "Gi", "4 Gi", "1e", "1ex", "4gi",
        ] {
            assert_eq!(quantity_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dns_labels_and_subdomains() {
        assert!(is_dns1123_label("default"));
        assert!(is_dns1123_label("a-1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("agent.secrets"));
        assert!(!is_dns1123_subdomain("agent..secrets"));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("25MiB"), Some(25 << 20));
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("1Ki"), Some(1024));
        assert_eq!(parse_bytes("10MB"), None);
    }
}
