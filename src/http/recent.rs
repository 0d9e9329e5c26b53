//! The Jobs this replica answered `202 queued` or `200 duplicate` for in
//! the last minute. The read and cancel routes look a name up in the watch
//! store first and answer 404 without any Kubernetes call when it is not
//! there; the store is fed by the watch, which can lag a create by a
//! moment. This short list lets a client read or cancel the Job it was
//! just told about on the same replica (read-your-writes) while random
//! names still cost nothing: only names this replica handed out are in it.
//! On another replica a Job that new is 404 until its watch sees it (the
//! CLI's `--wait` rides that out).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a name is remembered (the watch normally delivers in
/// milliseconds; a re-list after a dropped watch takes longer).
const KEEP: Duration = Duration::from_secs(60);
/// Most names remembered; the oldest go first.
const CAPACITY: usize = 4096;

/// A Job answered recently: its source and the task's dedup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentJob {
    pub name: String,
    pub source: &'static str,
    /// Where it was created (`None`: the service's own namespace).
    pub namespace: Option<String>,
}

/// What is kept per name: source, dedup key, when, namespace.
type Entry = (&'static str, String, Instant, Option<String>);

#[derive(Default)]
struct Inner {
    by_name: HashMap<String, Entry>,
    by_dedup: HashMap<String, String>,
    order: VecDeque<(Instant, String)>,
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some((at, name)) = self.order.front() {
            if now.duration_since(*at) < KEEP && self.order.len() <= CAPACITY {
                break;
            }
            let (at, name) = (*at, name.clone());
            self.order.pop_front();
            // A newer entry of the same name keeps its own time.
            if self.by_name.get(&name).is_some_and(|e| e.2 == at) {
                if let Some((_, key, _, _)) = self.by_name.remove(&name) {
                    if self.by_dedup.get(&key) == Some(&name) {
                        self.by_dedup.remove(&key);
                    }
                }
            }
        }
    }
}

/// See the module documentation.
#[derive(Default)]
pub struct RecentJobs {
    inner: Mutex<Inner>,
}

impl RecentJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers Job `name` of `source` made for `dedup_key`, in the
    /// service's own namespace.
    pub fn insert(&self, name: &str, source: &'static str, dedup_key: &str, now: Instant) {
        self.insert_in(name, None, source, dedup_key, now);
    }

    /// [`Self::insert`] of a Job in `namespace` (`None`: the service's own).
    pub fn insert_in(
        &self,
        name: &str,
        namespace: Option<&str>,
        source: &'static str,
        dedup_key: &str,
        now: Instant,
    ) {
        let mut inner = self.lock();
        let entry = (
            source,
            dedup_key.to_string(),
            now,
            namespace.map(str::to_string),
        );
        inner.by_name.insert(name.to_string(), entry);
        inner
            .by_dedup
            .insert(dedup_key.to_string(), name.to_string());
        inner.order.push_back((now, name.to_string()));
        inner.expire(now);
    }

    /// The source of Job `name`, if it was answered recently.
    pub fn get(&self, name: &str, now: Instant) -> Option<RecentJob> {
        let mut inner = self.lock();
        inner.expire(now);
        inner
            .by_name
            .get(name)
            .map(|(source, _, _, namespace)| RecentJob {
                name: name.to_string(),
                source,
                namespace: namespace.clone(),
            })
    }

    /// The Job answered recently for the task `dedup_key`.
    pub fn by_dedup_key(&self, dedup_key: &str, now: Instant) -> Option<RecentJob> {
        let mut inner = self.lock();
        inner.expire(now);
        let name = inner.by_dedup.get(dedup_key)?.clone();
        let (source, _, _, namespace) = inner.by_name.get(&name)?;
        Some(RecentJob {
            source,
            name: name.clone(),
            namespace: namespace.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_remembered_for_a_minute_by_name_and_dedup_key() {
        let r = RecentJobs::default();
        let t0 = Instant::now();
        r.insert("cli-task-a", "cli", "cli:request:1", t0);
        let seen = r.get("cli-task-a", t0 + Duration::from_secs(59));
        assert_eq!(seen.map(|j| (j.source, j.namespace)), Some(("cli", None)));
        r.insert_in("gh-task-b", Some("team-a"), "github", "gh:1", t0);
        let b = r.by_dedup_key("gh:1", t0).and_then(|j| j.namespace);
        assert_eq!(b.as_deref(), Some("team-a"));
        let by_key = r.by_dedup_key("cli:request:1", t0 + Duration::from_secs(1));
        assert_eq!(by_key.map(|j| j.name).as_deref(), Some("cli-task-a"));
        assert_eq!(r.get("cli-task-a", t0 + Duration::from_secs(61)), None);
        assert_eq!(r.by_dedup_key("cli:request:1", t0 + KEEP), None);
        assert_eq!(r.get("never-answered", t0), None);
    }

    #[test]
    fn the_oldest_names_go_beyond_the_capacity() {
        let r = RecentJobs::default();
        let t0 = Instant::now();
        for i in 0..=CAPACITY {
            r.insert(&format!("job-{i}"), "cli", &format!("k{i}"), t0);
        }
        assert_eq!(r.get("job-0", t0), None);
        assert!(r.get(&format!("job-{CAPACITY}"), t0).is_some());
        assert!(r.lock().by_name.len() <= CAPACITY);
    }
}
