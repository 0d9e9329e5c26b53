//! Why a queued Job waits, and roughly where it stands in the queue: what
//! `GET /api/v1/jobs/{name}`, `orchestrator jobs get` and the status
//! comment show.
//!
//! The scheduler (on every replica: each keeps the queue from the same
//! watch) publishes a [`Waits`] after each change — who holds running slots
//! per repository, per source and per concurrency key, and which budgets
//! are spent until when — on the [`WaitBoard`] the watch store carries.
//! Readers (the HTTP routes, the reporters) derive one Job's reason from it
//! without asking the scheduler actor: a snapshot of a few small maps, not
//! one entry per queued Job.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use super::{JobRecord, JobState};

/// What holds queued Jobs back, as the scheduler last saw it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Waits {
    /// The scheduler has published (until then, no reasons are given).
    pub published: bool,
    /// `MAX_CONCURRENT_JOBS` and the Jobs running or being admitted.
    pub max_running: usize,
    pub running: usize,
    /// `MAX_CONCURRENT_JOBS_PER_REPOSITORY` (0: none) and the running Jobs
    /// per repository key.
    pub per_repository: usize,
    pub repositories: HashMap<String, usize>,
    /// `MAX_CONCURRENT_JOBS_PER_SOURCE` and the running Jobs per source.
    pub per_source: BTreeMap<String, usize>,
    pub sources: HashMap<String, usize>,
    /// Concurrency keys a running Job holds.
    pub keys: HashSet<String>,
    /// Repository key → what of its budget is spent ("600/600 agent-minutes").
    pub spent_repositories: HashMap<String, String>,
    /// Source → what of its budget is spent.
    pub spent_sources: HashMap<String, String>,
    /// When the budget day ends, as shown ("2026-12-08 00:00 UTC").
    pub until: String,
    /// `SCHEDULER=kueue`: Kueue admits; a Job in its hands waits for it,
    /// and the service's caps do not apply.
    pub kueue: bool,
}

/// Why the reasons are what they are (for metrics), in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitKind {
    Budget,
    RepositoryCap,
    SourceCap,
    ConcurrencyKey,
    GlobalCap,
    /// Kueue mode: queued in a LocalQueue, for Kueue to admit.
    Kueue,
}

impl WaitKind {
    pub const ALL: [WaitKind; 6] = [
        WaitKind::Budget,
        WaitKind::RepositoryCap,
        WaitKind::SourceCap,
        WaitKind::ConcurrencyKey,
        WaitKind::GlobalCap,
        WaitKind::Kueue,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitKind::Budget => "budget",
            WaitKind::RepositoryCap => "repository_cap",
            WaitKind::SourceCap => "source_cap",
            WaitKind::ConcurrencyKey => "concurrency_key",
            WaitKind::GlobalCap => "global_cap",
            WaitKind::Kueue => "kueue",
        }
    }
}

impl Waits {
    /// Why `r` (queued) waits, with the words to show; `None` when nothing
    /// holds it back but the Jobs ahead of it (or it is not queued).
    pub fn reason(&self, r: &JobRecord) -> Option<(WaitKind, String)> {
        if !self.published || r.state != JobState::Queued {
            return None;
        }
        if let Some(q) = r.kueue_queue() {
            // In Kueue's hands (whatever the mode now): Kueue decides.
            return Some((WaitKind::Kueue, format!("queued in Kueue LocalQueue {q}")));
        }
        let repo = r.repository_key();
        let shown = r.repository_name.as_deref().unwrap_or("");
        let source = r.source.as_deref().unwrap_or("");
        if let Some(spent) = self.spent_repositories.get(&repo) {
            return Some((
                WaitKind::Budget,
                format!(
                    "daily budget of {shown} spent ({spent}) until {}",
                    self.until
                ),
            ));
        }
        if let Some(spent) = self.spent_sources.get(source) {
            return Some((
                WaitKind::Budget,
                format!(
                    "daily budget of source {source} spent ({spent}) until {}",
                    self.until
                ),
            ));
        }
        if self.kueue {
            // Held back only by a budget, handed to Kueue when it allows.
            return None;
        }
        if self.per_repository > 0 && !repo.is_empty() {
            let n = self.repositories.get(&repo).copied().unwrap_or(0);
            if n >= self.per_repository {
                return Some((
                    WaitKind::RepositoryCap,
                    format!("repository {shown} at its cap {n}/{}", self.per_repository),
                ));
            }
        }
        if let Some(cap) = self.per_source.get(source) {
            let n = self.sources.get(source).copied().unwrap_or(0);
            if n >= *cap {
                return Some((
                    WaitKind::SourceCap,
                    format!("source {source} at its cap {n}/{cap}"),
                ));
            }
        }
        if let Some(k) = r.concurrency_key.as_deref() {
            if self.keys.contains(k) {
                return Some((
                    WaitKind::ConcurrencyKey,
                    "another task for the same issue or pull request is running".into(),
                ));
            }
        }
        if self.running >= self.max_running {
            return Some((
                WaitKind::GlobalCap,
                format!("global cap {}/{}", self.running, self.max_running),
            ));
        }
        None
    }

    /// Whether a new task of `repository_key` (lower-cased `owner/name`)
    /// from `source` would wait for a spent budget, and the words saying so.
    pub fn budget_spent(&self, repository_key: &str, source: &str) -> Option<String> {
        if !self.published {
            return None;
        }
        if let Some(spent) = self.spent_repositories.get(repository_key) {
            return Some(format!(
                "daily budget of {repository_key} spent ({spent}) until {}",
                self.until
            ));
        }
        self.spent_sources.get(source).map(|spent| {
            format!(
                "daily budget of source {source} spent ({spent}) until {}",
                self.until
            )
        })
    }

    /// [`Waits::reason`]'s words.
    pub fn reason_text(&self, r: &JobRecord) -> Option<String> {
        self.reason(r).map(|(_, t)| t)
    }
}

/// The latest [`Waits`], shared (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct WaitBoard(Arc<RwLock<Arc<Waits>>>);

impl WaitBoard {
    pub fn get(&self) -> Arc<Waits> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, waits: Waits) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(waits);
    }
}

/// About where a queued Job stands (1 = next), under the queue's order:
/// every queued Job of higher priority, then at its priority as many turns
/// of each repository (its own included) as there are Jobs of its own
/// repository ahead of it — the rounds of the fair order before its own.
/// An estimate: it does not know which repositories go first in its own
/// round, nor which are held back by a cap or budget. O(queued).
pub fn position(record: &JobRecord, queued: &[Arc<JobRecord>]) -> usize {
    let own = record.repository_key();
    let mut higher = 0;
    let mut ahead_in_own = 0;
    let mut per_repo: HashMap<String, usize> = HashMap::new();
    for r in queued {
        if r.state != JobState::Queued || r.name == record.name {
            continue;
        }
        if r.priority > record.priority {
            higher += 1;
        } else if r.priority == record.priority {
            let key = r.repository_key();
            if key == own {
                if (r.created, &r.name) < (record.created, &record.name) {
                    ahead_in_own += 1;
                }
            } else {
                *per_repo.entry(key).or_default() += 1;
            }
        }
    }
    let others: usize = per_repo.values().map(|n| (*n).min(ahead_in_own)).sum();
    1 + higher + ahead_in_own + others
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, repo: &str, priority: i32, created: i64) -> Arc<JobRecord> {
        Arc::new(JobRecord {
            name: name.into(),
            namespace: "default".into(),
            rv: 1,
            state: JobState::Queued,
            created,
            created_at: None,
            source: Some("github".into()),
            kind: None,
            repository: None,
            repository_name: Some(repo.into()),
            priority,
            concurrency_key: Some(format!("{}#1", repo.to_lowercase()).into()),
            dedup_key: None,
            url: None,
            cancelled_at: None,
            started_at: None,
            completed_at: None,
            conditions: Vec::new(),
            active: 0,
            succeeded: 0,
            failed: 0,
            task: None,
            report_mark: None,
            callback_url: None,
            callback_mark: None,
            kueue: None,
            uid: None,
        })
    }

    #[test]
    fn the_reason_names_what_holds_the_job_back_budget_first() {
        let r = rec("j", "Acme/API", 0, 0);
        let mut w = Waits {
            published: true,
            max_running: 10,
            running: 3,
            per_repository: 2,
            repositories: [("acme/api".to_string(), 2)].into(),
            per_source: [("github".to_string(), 5)].into(),
            sources: [("github".to_string(), 3)].into(),
            until: "2026-12-08 00:00 UTC".into(),
            ..Waits::default()
        };
        assert_eq!(
            w.reason_text(&r).as_deref(),
            Some("repository Acme/API at its cap 2/2")
        );
        w.spent_repositories
            .insert("acme/api".into(), "600/600 agent-minutes".into());
        assert_eq!(
            w.reason(&r),
            Some((
                WaitKind::Budget,
                "daily budget of Acme/API spent (600/600 agent-minutes) until 2026-12-08 00:00 UTC"
                    .into()
            ))
        );
        let w = Waits {
            published: true,
            max_running: 3,
            running: 3,
            keys: ["acme/api#1".to_string()].into(),
            ..Waits::default()
        };
        assert_eq!(w.reason(&r).map(|x| x.0), Some(WaitKind::ConcurrencyKey));
        let w = Waits {
            published: true,
            max_running: 3,
            running: 3,
            ..Waits::default()
        };
        assert_eq!(w.reason_text(&r).as_deref(), Some("global cap 3/3"));
        assert_eq!(Waits::default().reason(&r), None, "nothing published yet");
    }

    #[test]
    fn the_position_counts_the_rounds_of_the_fair_order() {
        let mut q: Vec<Arc<JobRecord>> = (0..500)
            .map(|i| rec(&format!("a{i}"), "acme/a", 0, i))
            .collect();
        q.push(rec("b", "acme/b", 0, 1000));
        q.push(rec("urgent", "acme/c", 5, 2000));
        let b = q[500].clone();
        assert_eq!(position(&b, &q), 2, "after the urgent one, not after 500");
        let a3 = q[3].clone();
        assert_eq!(
            position(&a3, &q),
            1 + 1 + 3 + 1,
            "urgent, a0-a2, and b's one turn"
        );
    }
}
