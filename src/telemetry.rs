//! Logging set-up (text or JSON) and the shutdown signal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::{fmt, EnvFilter};

/// The filter used when `RUST_LOG` is unset or invalid: `info`, except
/// actix-server's per-worker lines. Their `force shutdown worker, closing N
/// connections` is routine — the embedded simulator's HTTP server closing
/// the service's own Kubernetes connections (watches, keep-alive) as the
/// process exits, after the service has logged `stopped` — yet reads like
/// an error at INFO; that target logs warnings and errors only. The service
/// logs its own shutdown steps (`shutting down: …`, `stopped`, and a warning
/// when requests outlive `SHUTDOWN_TIMEOUT_SECONDS`).
pub const DEFAULT_FILTER: &str = "info,actix_server::worker=warn";

/// Installs the global subscriber once; `format` is `text` or `json`.
/// `RUST_LOG` sets the filter (default `info`); an invalid one is reported
/// (with what is used instead) as the first log line.
pub fn init(format: &str) {
    let (filter, invalid) = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    // Colours only on a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Some((value, error)) = invalid {
        tracing::warn!(RUST_LOG = %value, %error, using = DEFAULT_FILTER, "RUST_LOG is invalid; logging with the default filter instead");
    }
}

/// The filter for a `RUST_LOG` value, and the value with its error if it
/// is invalid (then the filter is [`DEFAULT_FILTER`]).
pub fn filter_from(rust_log: Option<&str>) -> (EnvFilter, Option<(String, String)>) {
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => (EnvFilter::new(DEFAULT_FILTER), None),
        Some(v) => match EnvFilter::builder().parse(v) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_FILTER),
                Some((v.to_string(), e.to_string())),
            ),
        },
    }
}

/// Bytes of a caller's value that a log line shows.
pub const UNTRUSTED_SHOWN: usize = 200;

/// A value from a request (a header, a name) as a log line shows it:
/// quoted, control characters and quotes escaped, cut to
/// [`UNTRUSTED_SHOWN`] bytes with the whole length said — so it can neither
/// forge fields of the line nor flood the log.
pub struct Untrusted<'a>(pub &'a [u8]);

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.0[..self.0.len().min(UNTRUSTED_SHOWN)];
        f.write_char('"')?;
        for c in String::from_utf8_lossy(shown).chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')?;
        if self.0.len() > UNTRUSTED_SHOWN {
            write!(f, "…({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// How often one cause may write a repeated warning.
pub const REPEAT_EVERY: Duration = Duration::from_secs(10);

/// Causes kept by [`repeated`] (more are forgotten, which only lets a line
/// through early).
const CAUSES_KEPT: usize = 256;

/// Warnings per cause: when the last was written and how many were held back since.
static REPEATS: LazyLock<Mutex<HashMap<String, (Instant, u64)>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// For a warning that a flood of requests can repeat: `Some(held back)`
/// when a line for `cause` may be written now (at most once per
/// [`REPEAT_EVERY`]; the count is of the lines held back since the last),
/// `None` when it is to be held back.
pub fn repeated(cause: &str, now: Instant) -> Option<u64> {
    let mut map = REPEATS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((last, held)) = map.get_mut(cause) {
        if now.duration_since(*last) < REPEAT_EVERY {
            *held += 1;
            return None;
        }
        let n = *held;
        *last = now;
        *held = 0;
        return Some(n);
    }
    if map.len() >= CAUSES_KEPT {
        map.clear();
    }
    map.insert(cause.to_string(), (now, 0));
    Some(0)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_rust_log_is_reported_with_its_error_and_valid_ones_are_used() {
        let (_, invalid) = filter_from(Some("nonsense==="));
        let (value, error) = invalid.expect("reported as invalid");
        assert_eq!(value, "nonsense===");
        assert!(!error.is_empty());
        for ok in [None, Some(""), Some("debug"), Some("info,kube=warn")] {
            assert!(filter_from(ok).1.is_none(), "{ok:?}");
        }
        assert_eq!(filter_from(Some("warn")).0.to_string(), "warn");
    }

    #[test]
    fn untrusted_values_are_quoted_escaped_and_cut() {
        let forged = Untrusted(b"curl/8 request_id=FORGED \"x\"\n");
        assert_eq!(
            forged.to_string(),
            r#""curl/8 request_id=FORGED \"x\"\u{a}""#
        );
        let long = vec![b'a'; 60_000];
        let shown = Untrusted(&long).to_string();
        assert!(shown.len() < UNTRUSTED_SHOWN + 40, "{}", shown.len());
        assert!(shown.ends_with("…(60000 bytes)"), "{shown}");
    }

    #[test]
    fn a_repeated_warning_is_written_once_per_period_with_the_count_held_back() {
        let t = Instant::now();
        let cause = "test: a repeated warning";
        assert_eq!(repeated(cause, t), Some(0));
        for i in 1..=5 {
            assert_eq!(repeated(cause, t + Duration::from_millis(i)), None);
        }
        assert_eq!(repeated("test: another cause", t), Some(0));
        assert_eq!(repeated(cause, t + REPEAT_EVERY), Some(5));
        assert_eq!(repeated(cause, t + REPEAT_EVERY), None);
    }
}
