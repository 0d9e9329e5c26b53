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
    pub delivery: Option<&'a str>,
    pub decision: &'a str,
    pub reason: Option<&'a str>,
    pub job: Option<&'a str>,
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
            delivery: e.delivery.map(clip),
            decision: clip(e.decision),
            reason: e.reason.map(clip),
            job: e.job.map(clip),
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
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter()
            .rev()
            .filter(|r| source.is_none_or(|s| r.source == s))
            .filter(|r| decision.is_none_or(|d| r.decision == d))
            .take(limit)
            .cloned()
            .collect()
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
