//! Recovery of missed webhook deliveries. GitHub records every delivery it
//! made to the App's webhook with the status our service answered; one
//! that never reached us (we were down, the network was, an answer
//! timed out) stays failed unless someone redelivers it. Every
//! `DELIVERY_RECOVERY_INTERVAL_SECONDS`, on the Lease holder only:
//!
//! ```text
//!  GET /app/hook/deliveries (App JWT, newest first, Link cursor paging,
//!      until older than DELIVERY_RECOVERY_WINDOW_SECONDS, ≤ 100 pages)
//!    │ group the attempts by guid (X-GitHub-Delivery, kept on redelivery)
//!    │ missing = no attempt answered 2xx
//!    │           and not processed here (Job store, dedup cache)
//!    │           and not asked for by this replica within the window
//!    ▼ oldest first, at most DELIVERY_RECOVERY_MAX_PER_CYCLE
//!  POST /app/hook/deliveries/{newest attempt}/attempts ── events log: `recovered`
//! ```
//!
//! * **Never twice for one guid** on one replica: requested guids are kept
//!   in memory for the window. A new leader (or a restarted one) does not
//!   know them, so it may ask once more — but only for a guid still without
//!   a 2xx: the redelivery is itself an attempt with the same guid, so one
//!   that reached us shows as answered (or the guid's Job is in the store).
//!   Only a first redelivery that also failed, or one GitHub had not made
//!   yet when the leadership changed, is asked for a second time; our
//!   service deduplicates what arrives twice (delivery key, comment key,
//!   the API server's `409`).
//! * **Comment events** are keyed per comment, not per delivery, so the
//!   processed check cannot find them: a failed one is redelivered if no
//!   attempt got a 2xx, and deduplicated on arrival.
//! * Bounded: pages per listing, requests per cycle, remembered guids.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::cluster::lease::Leader;
use crate::config::github::RecoveryConfig;
use crate::events::{EventLog, NewEvent};
use crate::github::deliveries::{Delivery, MAX_PAGES};
use crate::github::{Github, GithubError};
use crate::metrics::reports::ReportMetrics;

/// Whether the service already processed a delivery, by its guid
/// (`sources::intake::delivery_processed`, wired in `src/app.rs`).
pub type Processed = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Whether [`Processed`] can be asked yet (the Job watch has synced: before
/// that an unlisted Job would look unprocessed).
pub type Ready = Arc<dyn Fn() -> bool + Send + Sync>;

/// Most guids remembered as requested (past it the oldest half goes).
const MEMORY: usize = 100_000;

/// A guid to redeliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub guid: String,
    /// The attempt to redeliver (the guid's newest).
    pub attempt: u64,
    pub event: String,
    /// Its first attempt.
    pub first_at: DateTime<Utc>,
    /// The newest attempt's status (0: no answer).
    pub status_code: u16,
}

/// What one listing holds: the distinct guids, and those missing (oldest
/// first) — none answered 2xx, `processed` does not know it and
/// `requested` does not hold it.
pub fn missing(
    deliveries: &[Delivery],
    processed: impl Fn(&str) -> bool,
    requested: impl Fn(&str) -> bool,
) -> (usize, Vec<Missing>) {
    let mut by_guid: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for d in deliveries {
        by_guid.entry(d.guid.as_str()).or_default().push(d);
    }
    let seen = by_guid.len();
    let mut out: Vec<Missing> = by_guid
        .into_iter()
        .filter(|(guid, attempts)| {
            !attempts.iter().any(|d| d.succeeded()) && !requested(guid) && !processed(guid)
        })
        .filter_map(|(guid, attempts)| {
            let newest = attempts.iter().max_by_key(|d| d.id)?;
            let first_at = attempts.iter().map(|d| d.delivered_at).min()?;
            Some(Missing {
                guid: guid.to_string(),
                attempt: newest.id,
                event: newest.event.clone(),
                first_at,
                status_code: newest.status_code,
            })
        })
        .collect();
    out.sort_by(|a, b| a.first_at.cmp(&b.first_at).then(a.attempt.cmp(&b.attempt)));
    (seen, out)
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Distinct guids within the window.
    pub seen: usize,
    /// Missing guids found (before the per-cycle bound).
    pub missing: usize,
    /// Redeliveries GitHub accepted.
    pub requested: usize,
    /// Redelivery requests that failed.
    pub failed: usize,
    /// Listing pages read.
    pub pages: u32,
}

/// The recovery loop (a supervised task on every replica; cycles run on
/// the Lease holder only).
#[derive(Clone)]
pub struct Recovery {
    inner: Arc<Inner>,
}

struct Inner {
    github: Github,
    leader: Leader,
    events: Arc<EventLog>,
    metrics: ReportMetrics,
    config: RecoveryConfig,
    processed: Processed,
    ready: Ready,
    /// guid → when this replica asked for its redelivery.
    requested: Mutex<HashMap<String, Instant>>,
}

impl Recovery {
    pub fn new(
        github: Github,
        leader: Leader,
        events: Arc<EventLog>,
        metrics: ReportMetrics,
        config: RecoveryConfig,
        (processed, ready): (Processed, Ready),
    ) -> Self {
        Recovery {
            inner: Arc::new(Inner {
                github,
                leader,
                events,
                metrics,
                config,
                processed,
                ready,
                requested: Mutex::default(),
            }),
        }
    }

    fn requested(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.inner
            .requested
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets requests older than the window (and the oldest half past
    /// [`MEMORY`]).
    fn prune(&self) {
        let window = self.inner.config.window;
        let mut m = self.requested();
        m.retain(|_, at| at.elapsed() < window);
        if m.len() >= MEMORY {
            let mut ats: Vec<Instant> = m.values().copied().collect();
            ats.sort();
            let cut = ats[ats.len() / 2];
            m.retain(|_, at| *at > cut);
        }
    }

    /// One cycle: list, find what is missing, ask for redeliveries. Does
    /// nothing off the Lease, or before the Job watch has synced.
    pub async fn cycle(&self) -> Result<CycleReport, GithubError> {
        let mut report = CycleReport::default();
        if !self.inner.leader.is_leader() || !(self.inner.ready)() {
            return Ok(report);
        }
        let started = Instant::now();
        let result = self.cycle_leading(&mut report).await;
        self.inner
            .metrics
            .recovery_cycle(started.elapsed().as_secs_f64());
        result.map(|()| report)
    }

    async fn cycle_leading(&self, report: &mut CycleReport) -> Result<(), GithubError> {
        let i = &self.inner;
        self.prune();
        let window = chrono::Duration::from_std(i.config.window).unwrap_or(chrono::Duration::MAX);
        let since = Utc::now()
            .checked_sub_signed(window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let listing = i.github.app_hook_deliveries(since, MAX_PAGES).await?;
        report.pages = listing.pages;
        if listing.truncated {
            tracing::warn!(
                pages = listing.pages,
                "delivery recovery: more deliveries within the window than one listing reads; the oldest are not looked at"
            );
        }
        let (seen, missing) = {
            let requested = self.requested();
            missing(
                &listing.deliveries,
                |g| (i.processed)(g),
                |g| requested.contains_key(g),
            )
        };
        report.seen = seen;
        report.missing = missing.len();
        i.metrics.recovery("seen", seen as u64);
        i.metrics.recovery("missing", missing.len() as u64);
        for m in missing.into_iter().take(i.config.max_per_cycle) {
            // Leadership can end mid-cycle: the new leader takes over.
            if !i.leader.is_leader() {
                break;
            }
            match i.github.redeliver_app_hook_delivery(m.attempt).await {
                Ok(()) => {
                    self.requested().insert(m.guid.clone(), Instant::now());
                    report.requested += 1;
                    i.metrics.recovery("requested", 1);
                    let reason = format!(
                        "redelivery of attempt {} requested (last answered {})",
                        m.attempt, m.status_code
                    );
                    i.events.record(NewEvent {
                        source: "github",
                        event: &m.event,
                        delivery: Some(&m.guid),
                        decision: "recovered",
                        reason: Some(&reason),
                        job: None,
                        ..NewEvent::default()
                    });
                    tracing::info!(delivery = %m.guid, event = %m.event, attempt = m.attempt, "missed delivery: redelivery requested");
                }
                Err(e) => {
                    report.failed += 1;
                    i.metrics.recovery("failed", 1);
                    tracing::warn!(delivery = %m.guid, attempt = m.attempt, error = %e, "missed delivery: the redelivery request failed");
                    // Waiting is what GitHub asked for: the rest next cycle.
                    if matches!(e, GithubError::RateLimited(_)) {
                        break;
                    }
                    // A refusal is final for this guid (remembered like a
                    // request); a 5xx or no answer is tried next cycle.
                    if matches!(e, GithubError::Refused { .. }) {
                        self.requested().insert(m.guid.clone(), Instant::now());
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs a cycle every `interval` while this replica leads (a
    /// supervised task); never returns.
    pub async fn run_forever(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.cycle().await {
                Ok(r) if r.requested + r.failed > 0 => tracing::info!(
                    seen = r.seen,
                    missing = r.missing,
                    requested = r.requested,
                    failed = r.failed,
                    "delivery recovery cycle"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "delivery recovery: could not list the App's deliveries")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-01-01T00:{minute:02}:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn d(id: u64, guid: &str, minute: u32, status: u16) -> Delivery {
        Delivery {
            id,
            guid: guid.into(),
            delivered_at: at(minute),
            status_code: status,
            event: "issues".into(),
            action: Some("labeled".into()),
            redelivery: false,
        }
    }

    #[test]
    fn a_guid_is_missing_when_no_attempt_answered_2xx_and_nobody_knows_it() {
        let deliveries = vec![
            d(10, "ok", 9, 200),
            d(9, "failed-then-ok", 8, 202),
            d(8, "late", 7, 500),
            d(7, "failed-then-ok", 6, 500),
            d(6, "processed", 5, 0),
            d(5, "asked", 4, 502),
            d(4, "twice-failed", 3, 0),
            d(3, "twice-failed", 2, 500),
            d(2, "ok", 1, 500),
        ];
        let (seen, out) = missing(&deliveries, |g| g == "processed", |g| g == "asked");
        assert_eq!(seen, 6);
        let guids: Vec<&str> = out.iter().map(|m| m.guid.as_str()).collect();
        assert_eq!(guids, ["twice-failed", "late"], "oldest first");
        assert_eq!(out[0].attempt, 4, "the newest attempt is redelivered");
        assert_eq!(out[0].first_at, at(2));
        assert_eq!(out[0].status_code, 0);
        assert_eq!(out[1].attempt, 8);
    }

    #[test]
    fn nothing_listed_nothing_missing() {
        let (seen, out) = missing(&[], |_| false, |_| false);
        assert_eq!((seen, out.len()), (0, 0));
        let all_ok = vec![d(1, "a", 1, 200), d(2, "b", 2, 204)];
        assert!(missing(&all_ok, |_| false, |_| false).1.is_empty());
    }
}
