//! The recent-deliveries log behind `GET /api/v1/events`: the last N events
//! from every source with the decision taken and the Job they led to. Bounded
//! ring buffer in memory (per replica); the Jobs themselves are the durable
//! record.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// One answered event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventRecord {
    /// Monotonic sequence number within this replica.
    pub seq: u64,
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// `github`, `grafana`, `pm-agent` or `cli`.
    pub source: String,
    /// Source-specific kind: the GitHub event, `alert`, `task`.
    pub event: String,
    /// The payload's action (GitHub's `labeled`, `created`, …), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Delivery id, alert fingerprint, task id or idempotency key.
    pub delivery: Option<String>,
    /// `queued`, `duplicate`, `ignored`, `rejected`, `rate_limited`,
    /// `unavailable`, `cancelled`, `recovered` (a missed GitHub delivery
    /// whose redelivery was asked for; `delivery` is its guid).
    pub decision: String,
    /// Why (for ignored and rejected events).
    pub reason: Option<String>,
    /// The Job the event led to.
    pub job: Option<String>,
    /// The repository the event is about, `owner/name` (when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The issue or pull request number (when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// Who sent it: a GitHub login, an API token's kind (when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

/// Bounded log of recent events.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<(u64, VecDeque<EventRecord>)>,
    capacity: usize,
}

/// Fields of a new record.
#[derive(Debug, Default, Clone)]
pub struct NewEvent<'a> {
    pub source: &'a str,
    pub event: &'a str,
    pub action: Option<&'a str>,
    pub delivery: Option<&'a str>,
    pub decision: &'a str,
    pub reason: Option<&'a str>,
    pub job: Option<&'a str>,
    pub repository: Option<&'a str>,
    pub number: Option<u64>,
    pub sender: Option<&'a str>,
}

/// Longest text kept per field (bounded memory whatever senders send).
const FIELD_MAX: usize = 200;

fn clip(s: &str) -> String {
    if s.len() <= FIELD_MAX {
        return s.to_string();
    }
    let mut end = FIELD_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        EventLog {
            inner: Mutex::new((0, VecDeque::with_capacity(capacity.min(4096)))),
            capacity: capacity.max(1),
        }
    }

    pub fn record(&self, e: NewEvent<'_>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let rec = EventRecord {
            seq: g.0,
            at: Utc::now(),
            source: clip(e.source),
            event: clip(e.event),
            action: e.action.map(clip),
            delivery: e.delivery.map(clip),
            decision: clip(e.decision),
            reason: e.reason.map(clip),
            job: e.job.map(clip),
            repository: e.repository.map(clip),
            number: e.number,
            sender: e.sender.map(clip),
        };
        g.1.push_back(rec);
        while g.1.len() > self.capacity {
            g.1.pop_front();
        }
    }

    /// Newest first, optionally filtered by source and decision.
    pub fn recent(
        &self,
        limit: usize,
        source: Option<&str>,
        decision: Option<&str>,
    ) -> Vec<EventRecord> {
        self.matching(limit, source, decision, None)
    }

    /// Newest first, filtered by source, decision and repository
    /// (`owner/name`, compared ignoring ASCII case as GitHub does).
    pub fn matching(
        &self,
        limit: usize,
        source: Option<&str>,
        decision: Option<&str>,
        repository: Option<&str>,
    ) -> Vec<EventRecord> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter()
            .rev()
            .filter(|r| source.is_none_or(|s| r.source == s))
            .filter(|r| decision.is_none_or(|d| r.decision == d))
            .filter(|r| {
                repository.is_none_or(|want| {
                    r.repository
                        .as_deref()
                        .is_some_and(|have| have.eq_ignore_ascii_case(want))
                })
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// The repositories named in the log (sorted, at most `limit`): the
    /// dashboard's filter choices.
    pub fn repositories(&self, limit: usize) -> Vec<String> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = std::collections::BTreeSet::new();
        for r in g.1.iter().rev() {
            if let Some(repo) = &r.repository {
                if seen.len() >= limit && !seen.contains(repo) {
                    continue;
                }
                seen.insert(repo.clone());
            }
        }
        seen.into_iter().collect()
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).1.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_events_up_to_capacity_newest_first() {
        let log = EventLog::new(3);
        for i in 0..5 {
            let d = i.to_string();
            log.record(NewEvent {
                source: "github",
                event: "issues",
                delivery: Some(&d),
                decision: "queued",
                ..Default::default()
            });
        }
        let r = log.recent(10, None, None);
        assert_eq!(
            r.iter()
                .map(|e| e.delivery.clone().unwrap())
                .collect::<Vec<_>>(),
            ["4", "3", "2"]
        );
        assert_eq!(log.recent(10, Some("grafana"), None).len(), 0);
        assert_eq!(log.recent(1, None, Some("queued")).len(), 1);
    }

    #[test]
    fn long_fields_are_clipped() {
        let log = EventLog::new(1);
        let long = "é".repeat(500);
        log.record(NewEvent {
            source: "cli",
            event: "task",
            reason: Some(&long),
            decision: "rejected",
            ..Default::default()
        });
        assert!(log.recent(1, None, None)[0].reason.as_ref().unwrap().len() <= FIELD_MAX + 3);
    }
}
