//! `submit --wait`: polls `GET /api/v1/jobs/{name}` until the Job ends,
//! showing progress on stderr (queued → running → done, with the elapsed
//! time). On a terminal the line is redrawn in place; otherwise one line is
//! written per change of state. Short outages of the server are ridden out,
//! and so is a moment in which the server does not list the new Job yet.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ApiClient, ClientError};

/// How `wait_for_job` polls.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Time between polls (about 500 ms).
    pub interval: Duration,
    /// Give up after this long ([`ClientError::WaitTimeout`]).
    pub limit: Duration,
    /// Longest run of failed polls (server briefly unavailable) to ride out.
    pub outage: Duration,
    /// How long a just-submitted Job may be unknown to the server's reads
    /// (its Job list is a watch that can lag the create by a moment).
    pub appear: Duration,
    /// Show progress on stderr.
    pub progress: bool,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            interval: Duration::from_millis(500),
            limit: Duration::from_secs(3600),
            outage: Duration::from_secs(30),
            appear: Duration::from_secs(10),
            progress: true,
        }
    }
}

/// True for the states a Job does not leave.
pub fn is_terminal(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "timed_out" | "cancelled")
}

/// Progress output on stderr.
struct Progress {
    enabled: bool,
    tty: bool,
    start: Instant,
    /// States seen so far, in order.
    trail: Vec<String>,
}

impl Progress {
    fn elapsed(&self) -> String {
        format!("{:.1}s", self.start.elapsed().as_secs_f64())
    }

    /// Records a poll that saw `state`.
    fn update(&mut self, name: &str, state: &str) {
        let changed = self.trail.last().map(String::as_str) != Some(state);
        if changed {
            self.trail.push(state.to_string());
        }
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(
                err,
                "\r\x1b[2Kjob {name}: {} ({})",
                self.trail.join(" → "),
                self.elapsed()
            );
            let _ = err.flush();
        } else if changed && !is_terminal(state) {
            let _ = writeln!(err, "job {name}: {state} ({})", self.elapsed());
        }
    }

    /// Prints the final line.
    fn finish(&mut self, name: &str, state: &str) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(
            err,
            "job {name}: {} after {}",
            if self.tty {
                self.trail.join(" → ")
            } else {
                state.to_string()
            },
            self.elapsed()
        );
    }

    /// Ends an in-place line before another message.
    fn interrupt(&mut self) {
        if self.enabled && self.tty {
            eprintln!();
        }
    }
}

/// Waits until Job `name` is succeeded, failed, timed out or cancelled and
/// returns its last view.
pub async fn wait_for_job(
    client: &ApiClient,
    name: &str,
    opts: &WaitOptions,
) -> Result<Value, ClientError> {
    let mut progress = Progress {
        enabled: opts.progress,
        tty: std::io::stderr().is_terminal(),
        start: Instant::now(),
        trail: Vec::new(),
    };
    let deadline = progress.start + opts.limit;
    let mut failing_since: Option<Instant> = None;
    // The server has shown the Job at least once.
    let mut seen = false;
    loop {
        match client.get_job(name).await {
            Ok(job) => {
                seen = true;
                failing_since = None;
                let state = job["state"].as_str().unwrap_or("unknown").to_string();
                progress.update(name, &state);
                if is_terminal(&state) {
                    progress.finish(name, &state);
                    return Ok(job);
                }
            }
            // Accepted but not yet visible: it is queued.
            Err(ClientError::NoSuchJob { .. })
                if !seen && progress.start.elapsed() < opts.appear =>
            {
                progress.update(name, "queued");
            }
            Err(e) if e.is_transient() => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= opts.outage {
                    progress.interrupt();
                    return Err(e);
                }
            }
            Err(e) => {
                progress.interrupt();
                return Err(e);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            progress.interrupt();
            return Err(ClientError::WaitTimeout {
                name: name.to_string(),
                state: progress
                    .trail
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "unknown".into()),
                waited_secs: opts.limit.as_secs(),
            });
        }
        tokio::time::sleep(opts.interval.min(deadline - now)).await;
    }
}
