//! Intake checks a source actor applies before asking the scheduler for a
//! Job (not the scheduler's admission of queued Jobs): a dedup cache (an API-call saver in front of the authoritative
//! `409 AlreadyExists` on deterministic Job names) and per-repository /
//! per-sender rate limits, and the per-alert-rule limit of Grafana alerts
//! (keyed token buckets from `governor`). Keys are compared
//! case-insensitively (GitHub's `Octo/Repo` is `octo/repo`).
//!
//! Both are plain structs taking `now` where time matters, so they are unit
//! tested without actors.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Most entries the dedup cache keeps; beyond this the oldest half is dropped
/// (the API server still deduplicates exactly, this only saves calls).
const DEDUP_MAX_ENTRIES: usize = 100_000;

/// A remembered task: its Job and the hash of the request that made it
/// (under an `Idempotency-Key`), until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub job: String,
    pub request_hash: Option<String>,
    expires: Instant,
}

/// dedup key → [`Cached`]. Shared by the source actors and their
/// restarts. They all run on the one actor thread, so a plain mutex is
/// never contended (no concurrent map needed).
#[derive(Debug, Clone)]
pub struct DedupCache {
    map: Arc<Mutex<HashMap<String, Cached>>>,
    ttl: Duration,
}

impl DedupCache {
    pub fn new(ttl: Duration) -> Self {
        DedupCache {
            map: Arc::default(),
            ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Cached>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Job already made for `key`, if remembered and not expired.
    pub fn get(&self, key: &str, now: Instant) -> Option<Cached> {
        let mut map = self.lock();
        match map.get(key) {
            Some(c) if now < c.expires => Some(c.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `key` became Job `job`, made from the request whose
    /// hash is `request_hash` (if one was kept).
    pub fn insert(&self, key: &str, job: &str, request_hash: Option<&str>, now: Instant) {
        let mut map = self.lock();
        if map.len() >= DEDUP_MAX_ENTRIES {
            Self::evict(&mut map, now);
        }
        map.insert(
            key.to_string(),
            Cached {
                job: job.to_string(),
                request_hash: request_hash.map(str::to_string),
                expires: now + self.ttl,
            },
        );
    }

    fn evict(map: &mut HashMap<String, Cached>, now: Instant) {
        map.retain(|_, c| c.expires > now);
        if map.len() >= DEDUP_MAX_ENTRIES {
            // Still full of live entries: drop those closest to expiry.
            let mut expiries: Vec<Instant> = map.values().map(|c| c.expires).collect();
            expiries.sort();
            let cut = expiries[expiries.len() / 2];
            map.retain(|_, c| c.expires > cut);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Whether this service already processed GitHub delivery `guid` (the
/// `X-GitHub-Delivery`): a Job keyed by it is in the watch store, or the
/// shared dedup cache remembers it. The delivery-recovery loop
/// (`src/report/recovery.rs`) asks this before it has GitHub redeliver a
/// delivery that GitHub recorded as failed. The one place to extend when
/// a persistent dedup record exists.
///
/// Comment events are keyed per comment, not per delivery: they are never
/// found here, and a failed one is redelivered (the service dedups it on
/// arrival by its comment key).
pub fn delivery_processed(
    guid: &str,
    jobs: &crate::cluster::jobs::Jobs,
    dedup: &DedupCache,
    record: &crate::cluster::dedup::DedupRecord,
) -> bool {
    let key = super::github::delivery_dedup_key(guid);
    jobs.stored_by_dedup_key(&key).is_some()
        || dedup.get(&key, Instant::now()).is_some()
        // Accepted within the retention, its Job deleted since.
        || record.contains(&key, chrono::Utc::now().timestamp())
}

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// Per-repository, per-sender and per-alert-rule token buckets.
pub struct RateLimits {
    per_repo: Option<Keyed>,
    per_sender: Option<Keyed>,
    per_rule: Option<Keyed>,
    clock: DefaultClock,
}

/// The [`Limited::scope`] of the per-alert-rule limit.
pub const SCOPE_ALERT_RULE: &str = "alert rule";

/// Which limit refused a request, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// `repository`, `sender` or [`SCOPE_ALERT_RULE`].
    pub scope: &'static str,
    pub retry_after: Duration,
}

fn keyed(per_minute: u32) -> Option<Keyed> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl RateLimits {
    /// Limits of `repo_per_minute` and `sender_per_minute` (0 turns one off),
    /// each with a burst of the same size.
    pub fn new(repo_per_minute: u32, sender_per_minute: u32) -> Self {
        RateLimits {
            per_repo: keyed(repo_per_minute),
            per_sender: keyed(sender_per_minute),
            per_rule: None,
            clock: DefaultClock::default(),
        }
    }

    /// Adds the per-alert-rule limit of `per_minute` (0 turns it off).
    pub fn with_rule_limit(mut self, per_minute: u32) -> Self {
        self.per_rule = keyed(per_minute);
        self
    }

    /// Takes one token from the alert rule's, the repository's and the
    /// sender's buckets, in that order (the first refusal stops: an alert
    /// its rule's limit refuses spends no repository token). Keys are
    /// lower-cased first.
    pub fn check(
        &self,
        repo: Option<&str>,
        sender: Option<&str>,
        rule: Option<&str>,
    ) -> Result<(), Limited> {
        for (scope, limiter, key) in [
            (SCOPE_ALERT_RULE, &self.per_rule, rule),
            ("repository", &self.per_repo, repo),
            ("sender", &self.per_sender, sender),
        ] {
            let (Some(l), Some(k)) = (limiter, key) else {
                continue;
            };
            if let Err(not_until) = l.check_key(&k.to_ascii_lowercase()) {
                let wait = not_until.wait_time_from(self.clock.now());
                return Err(Limited {
                    scope,
                    retry_after: wait.max(Duration::from_secs(1)),
                });
            }
        }
        Ok(())
    }

    /// Drops buckets that are full again, bounding memory.
    pub fn shrink(&self) {
        for l in [&self.per_repo, &self.per_sender, &self.per_rule]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_entries_expire_after_their_ttl() {
        let c = DedupCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        c.insert("k", "job-1", Some("hash-1"), t0);
        let hit = c.get("k", t0 + Duration::from_secs(9)).expect("remembered");
        assert_eq!(hit.job, "job-1");
        assert_eq!(hit.request_hash.as_deref(), Some("hash-1"));
        assert_eq!(c.get("k", t0 + Duration::from_secs(11)), None);
        assert!(c.is_empty(), "an expired entry is dropped on read");
    }

    #[test]
    fn a_sender_over_its_limit_is_refused_with_a_retry_after() {
        let r = RateLimits::new(100, 2);
        assert!(r.check(Some("o/r"), Some("alice"), None).is_ok());
        assert!(r.check(Some("o/r"), Some("alice"), None).is_ok());
        let e = r.check(Some("o/r"), Some("alice"), None).unwrap_err();
        assert_eq!(e.scope, "sender");
        assert!(e.retry_after >= Duration::from_secs(1));
        assert!(
            r.check(Some("o/r"), Some("bob"), None).is_ok(),
            "other senders unaffected"
        );
    }

    #[test]
    fn a_repository_over_its_limit_is_refused() {
        let r = RateLimits::new(1, 0);
        assert!(r.check(Some("o/r"), Some("a"), None).is_ok());
        assert_eq!(
            r.check(Some("O/R"), Some("b"), None).unwrap_err().scope,
            "repository"
        );
        assert!(r.check(Some("o/other"), None, None).is_ok());
    }

    #[test]
    fn an_alert_rule_over_its_limit_is_refused_before_the_repository_spends_a_token() {
        let r = RateLimits::new(2, 0).with_rule_limit(1);
        assert!(r.check(Some("o/r"), None, Some("rule-a")).is_ok());
        assert_eq!(
            r.check(Some("o/r"), None, Some("rule-a"))
                .unwrap_err()
                .scope,
            SCOPE_ALERT_RULE
        );
        // The refused alert took no repository token: one is left.
        assert!(r.check(Some("o/r"), None, Some("rule-b")).is_ok());
        assert_eq!(
            r.check(Some("o/r"), None, Some("rule-c"))
                .unwrap_err()
                .scope,
            "repository"
        );
    }
}
