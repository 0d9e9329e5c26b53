//! Logging set-up (text or JSON) and the shutdown signal.

use tracing_subscriber::{fmt, EnvFilter};

/// The filter used when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

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
}
