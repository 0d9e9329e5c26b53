//! The recent-deliveries log behind `GET /api/v1/events`: the last N events
//! from every source with the decision taken and the Job they led to. Bounded
//! ring buffer in memory (per replica); the Jobs themselves are the durable
//! record.
//!
//! What an event is about (repository, number, sender, action) may be read
//! from the delivery's body later ([`EventLog::record_deferred`]): when
//! someone reads the log, or when the body leaves the small window of the
//! newest records' bodies ([`DEFERRED_BYTES`]), at most
//! [`SUBJECT_READS_PER_SECOND`] a second. Reading each body at once would
//! cost as much as checking its signature, and keeping every record's body
//! until the log is read (a ring of 1,000 ordinary deliveries is ~13 MB)
//! makes every request slower: that much memory does not stay in the
//! cache. So at ordinary rates every subject is read, a few seconds after
//! its delivery; in a flood of ignored deliveries, beyond that rate, the
//! subjects of records older than the window are not read (they show no
//! repository, number, sender or action) — nobody reads a ring that turns
//! over in milliseconds. A body longer than [`DEFERRED_BODY_MAX`] is read
//! at once.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
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
    pub source: &'static str,
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
    pub decision: &'static str,
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
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// The last sequence number given.
    seq: u64,
    /// Oldest first; sequence numbers consecutive.
    entries: VecDeque<Entry>,
    /// Bytes of the bodies kept for deferred subjects.
    deferred_bytes: usize,
    /// The records whose bodies are kept, oldest first.
    deferred: VecDeque<u64>,
    /// Subjects that may still be read this second as bodies leave the
    /// window (a token bucket of [`SUBJECT_READS_PER_SECOND`]).
    reads: ReadBudget,
}

/// A token bucket: [`SUBJECT_READS_PER_SECOND`] a second, as many at once.
#[derive(Debug)]
struct ReadBudget {
    tokens: f64,
    at: std::time::Instant,
}

impl Default for ReadBudget {
    fn default() -> Self {
        ReadBudget {
            tokens: SUBJECT_READS_PER_SECOND as f64,
            at: std::time::Instant::now(),
        }
    }
}

impl ReadBudget {
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let rate = SUBJECT_READS_PER_SECOND as f64;
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Entry {
    rec: EventRecord,
    /// The body whose subject is still to be read, and its reader.
    deferred: Option<(Bytes, ReadSubject)>,
}

/// What an event is about (each part when known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// `owner/name`.
    pub repository: Option<String>,
    /// The issue or pull request number.
    pub number: Option<u64>,
    /// Who sent it.
    pub sender: Option<String>,
    /// The payload's action.
    pub action: Option<String>,
}

/// Reads the [`Subject`] of a delivery from its body.
pub type ReadSubject = fn(&[u8]) -> Subject;

/// Bodies kept, the newest records' together, for subjects not read yet
/// (about 20 ordinary 10–16 KB deliveries: small enough to stay in the
/// cache); an older body leaves the window to make room.
pub const DEFERRED_BYTES: usize = 256 * 1024;

/// Subjects read a second, at most, of bodies leaving the window (the
/// rest of a flood's go unread).
pub const SUBJECT_READS_PER_SECOND: u32 = 200;

/// Longest body kept for a deferred subject; a longer one's is read at once.
pub const DEFERRED_BODY_MAX: usize = 64 * 1024;

/// Fields of a new record.
#[derive(Debug, Default, Clone)]
pub struct NewEvent<'a> {
    pub source: &'static str,
    pub event: &'a str,
    pub action: Option<&'a str>,
    pub delivery: Option<&'a str>,
    pub decision: &'static str,
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
            inner: Mutex::new(Inner {
                entries: VecDeque::with_capacity(capacity.min(4096)),
                ..Inner::default()
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, e: NewEvent<'_>) {
        self.push(e, None);
    }

    /// Records `e` with the subject to be read from `body` by `read` when
    /// the log is read (`e`'s own repository, number, sender and action are
    /// not used) — or at once, when the body is longer than
    /// [`DEFERRED_BODY_MAX`] or the bodies kept would exceed
    /// [`DEFERRED_BYTES`].
    pub fn record_deferred(&self, e: NewEvent<'_>, body: Bytes, read: ReadSubject) {
        if body.len() > DEFERRED_BODY_MAX {
            let s = read(&body);
            return self.record(with_subject(e, &s));
        }
        self.push(e, Some((body, read)));
    }

    fn push(&self, e: NewEvent<'_>, deferred: Option<(Bytes, ReadSubject)>) {
        let mut rec = EventRecord {
            seq: 0,
            at: Utc::now(),
            source: e.source,
            event: clip(e.event),
            action: e.action.map(clip),
            delivery: e.delivery.map(clip),
            decision: e.decision,
            reason: e.reason.map(clip),
            job: e.job.map(clip),
            repository: e.repository.map(clip),
            number: e.number,
            sender: e.sender.map(clip),
        };
        let mut evicted = None;
        // Bodies that left the window, their subjects to be read here.
        let mut leaving: Vec<(u64, Bytes, ReadSubject)> = Vec::new();
        // Bodies that left the window unread (the budget spent): freed
        // outside the lock.
        let mut unread: Vec<Bytes> = Vec::new();
        {
            let mut g = self.lock();
            let g = &mut *g;
            g.seq += 1;
            rec.seq = g.seq;
            if let Some((body, _)) = &deferred {
                // Room in the window: the oldest bodies leave it, their
                // subjects read while the budget lasts.
                while g.deferred_bytes + body.len() > DEFERRED_BYTES {
                    let Some(old) = g.deferred.pop_front() else {
                        break;
                    };
                    let Some((b, read)) =
                        entry(&mut g.entries, old).and_then(|e| e.deferred.take())
                    else {
                        continue;
                    };
                    g.deferred_bytes -= b.len();
                    if g.reads.take() {
                        leaving.push((old, b, read));
                    } else {
                        unread.push(b);
                    }
                }
                g.deferred_bytes += body.len();
                g.deferred.push_back(rec.seq);
            }
            g.entries.push_back(Entry { rec, deferred });
            // One in, at most one out: the ring never holds more.
            if g.entries.len() > self.capacity {
                evicted = g.entries.pop_front();
                if let Some((body, _)) = evicted.as_ref().and_then(|e| e.deferred.as_ref()) {
                    g.deferred_bytes -= body.len();
                    // `deferred` lists the records with bodies in order:
                    // the oldest record's is its first.
                    g.deferred.pop_front();
                }
            }
        }
        // Freed and read outside the lock.
        drop(evicted);
        drop(unread);
        if !leaving.is_empty() {
            let read: Vec<(u64, Subject)> =
                leaving.into_iter().map(|(s, b, f)| (s, f(&b))).collect();
            let mut g = self.lock();
            for (s, subject) in read {
                if let Some(e) = entry(&mut g.entries, s) {
                    apply(&mut e.rec, subject);
                }
            }
        }
    }

    /// Reads the deferred subjects: the bodies outside the lock, then
    /// under it those recorded meanwhile.
    fn settle(&self) {
        let todo: Vec<(u64, Bytes, ReadSubject)> = self
            .lock()
            .entries
            .iter()
            .filter_map(|e| e.deferred.as_ref().map(|(b, f)| (e.rec.seq, b.clone(), *f)))
            .collect();
        let read: Vec<(u64, Subject)> = todo
            .into_iter()
            .map(|(seq, body, f)| (seq, f(&body)))
            .collect();
        let mut g = self.lock();
        let g = &mut *g;
        for (seq, subject) in read {
            if let Some(e) = entry(&mut g.entries, seq) {
                if let Some((body, _)) = e.deferred.take() {
                    g.deferred_bytes -= body.len();
                    apply(&mut e.rec, subject);
                }
            }
        }
        for e in g.entries.iter_mut() {
            if let Some((body, read)) = e.deferred.take() {
                g.deferred_bytes -= body.len();
                apply(&mut e.rec, read(&body));
            }
        }
        g.deferred.clear();
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
        self.settle();
        let g = self.lock();
        g.entries
            .iter()
            .rev()
            .map(|e| &e.rec)
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
        self.settle();
        let g = self.lock();
        let mut seen = std::collections::BTreeSet::new();
        for r in g.entries.iter().rev().map(|e| &e.rec) {
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
        self.lock().entries.len()
    }

    /// Bytes of the bodies kept for subjects not read yet.
    pub fn deferred_bytes(&self) -> usize {
        self.lock().deferred_bytes
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The entry with sequence number `seq`, if still kept.
fn entry(entries: &mut VecDeque<Entry>, seq: u64) -> Option<&mut Entry> {
    let first = entries.front()?.rec.seq;
    let at = usize::try_from(seq.checked_sub(first)?).ok()?;
    entries.get_mut(at).filter(|e| e.rec.seq == seq)
}

/// `e` with the subject `s`.
fn with_subject<'a>(e: NewEvent<'a>, s: &'a Subject) -> NewEvent<'a> {
    NewEvent {
        repository: s.repository.as_deref(),
        number: s.number,
        sender: s.sender.as_deref(),
        action: s.action.as_deref(),
        ..e
    }
}

/// Fills in a record's subject (clipped like every field).
fn apply(rec: &mut EventRecord, s: Subject) {
    rec.repository = s.repository.as_deref().map(clip);
    rec.number = s.number;
    rec.sender = s.sender.as_deref().map(clip);
    rec.action = s.action.as_deref().map(clip);
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

    fn github(delivery: &str) -> NewEvent<'_> {
        NewEvent {
            source: "github",
            event: "issue_comment",
            delivery: Some(delivery),
            decision: "ignored",
            ..Default::default()
        }
    }

    /// A reader counting its calls: the body is the repository.
    fn subject_of(body: &[u8], calls: &std::sync::atomic::AtomicUsize) -> Subject {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Subject {
            repository: Some(String::from_utf8_lossy(body).into_owned()),
            number: Some(7),
            ..Subject::default()
        }
    }

    #[test]
    fn a_deferred_subject_is_read_when_the_log_is_read_and_never_for_records_evicted_unread() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn read(body: &[u8]) -> Subject {
            subject_of(body, &CALLS)
        }
        let log = EventLog::new(3);
        for i in 0..10 {
            let d = i.to_string();
            log.record_deferred(github(&d), Bytes::from(format!("acme/r{i}")), read);
        }
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            0,
            "nothing read while recording"
        );
        assert_eq!(
            log.deferred_bytes(),
            3 * "acme/r9".len(),
            "evicted bodies are let go"
        );
        let r = log.recent(10, None, None);
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            3,
            "only the records kept are read"
        );
        let repos: Vec<_> = r.iter().map(|e| e.repository.clone().unwrap()).collect();
        assert_eq!(repos, ["acme/r9", "acme/r8", "acme/r7"]);
        assert!(r.iter().all(|e| e.number == Some(7)));
        assert_eq!(log.deferred_bytes(), 0);
        assert_eq!(
            log.matching(10, None, None, Some("ACME/R8")).len(),
            1,
            "filtered on the subject read"
        );
        assert_eq!(log.repositories(10), ["acme/r7", "acme/r8", "acme/r9"]);
        assert_eq!(CALLS.load(Ordering::SeqCst), 3, "each body is read once");
    }

    #[test]
    fn bodies_kept_for_deferred_subjects_stay_within_their_budget() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn read(body: &[u8]) -> Subject {
            subject_of(&body[..4], &CALLS)
        }
        let log = EventLog::new(10_000);
        // A body over the per-body limit is read at once.
        log.record_deferred(
            github("big"),
            Bytes::from(vec![b'x'; DEFERRED_BODY_MAX + 1]),
            read,
        );
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        assert_eq!(log.deferred_bytes(), 0);
        // Bodies are kept up to the budget; beyond, read at once.
        let n = DEFERRED_BYTES / DEFERRED_BODY_MAX;
        for i in 0..n + 5 {
            log.record_deferred(
                github(&i.to_string()),
                Bytes::from(vec![b'y'; DEFERRED_BODY_MAX]),
                read,
            );
        }
        assert_eq!(log.deferred_bytes(), n * DEFERRED_BODY_MAX);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1 + 5);
        let r = log.recent(1, None, None);
        assert_eq!(r[0].repository.as_deref(), Some("yyyy"));
        assert_eq!(log.deferred_bytes(), 0);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1 + n + 5);
    }

    #[test]
    fn a_flood_s_subjects_are_read_up_to_the_rate_as_bodies_leave_the_window() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn read(body: &[u8]) -> Subject {
            subject_of(&body[..4], &CALLS)
        }
        let log = EventLog::new(10_000);
        let size = DEFERRED_BYTES / 8;
        let budget = SUBJECT_READS_PER_SECOND as usize;
        // 8 fit in the window; the rest leave it, one per record.
        let total = 8 + budget + 1000;
        for i in 0..total {
            let mut body = vec![b'z'; size];
            body[..4].copy_from_slice(format!("{:04}", i % 10_000).as_bytes());
            log.record_deferred(github(&i.to_string()), Bytes::from(body), read);
        }
        assert_eq!(log.deferred_bytes(), 8 * size, "the window holds 8");
        let calls = CALLS.load(Ordering::SeqCst);
        // The bucket starts full; it refills 200 a second, so more than
        // `budget` reads only if recording took seconds.
        assert!(
            calls >= budget && calls < budget + 1000,
            "{calls} subjects read as bodies left the window"
        );
        let r = log.recent(total, None, None);
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            calls + 8,
            "the window's read on reading"
        );
        // Newest first: the window's 8 and the first `budget` read, the
        // flood between them not.
        assert!(r[..8].iter().all(|e| e.repository.is_some()));
        assert_eq!(r[total - 1].repository.as_deref(), Some("0000"));
        assert!(r[total - budget..].iter().all(|e| e.repository.is_some()));
        assert!(r[8..8 + 100].iter().all(|e| e.repository.is_none()));
        assert_eq!(log.deferred_bytes(), 0);
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
