//! Reporting back: every Job's state changes go back to where its task
//! came from — a status comment (and optionally a check run) on the GitHub
//! issue or pull request ([`github`]), a signed callback for API and PM
//! tasks ([`callback`]).
//!
//! The per-Job watcher (`JobWatcher` in `src/watcher.rs`) owns its Job's
//! report: on each state change it calls [`Reporting::changed`], which only
//! queues work (it never waits, so the watch and admission never do). Only
//! the replica holding the scheduler Lease reports. What was reported is
//! marked on the Job (annotations written with the resourceVersion guard),
//! so a restarted or new leader continues where the last one stopped; the
//! periodic sweep ([`Reporting::sweep_forever`]) finds Jobs still owed a
//! report — those whose watcher ended before a report went out, or changed
//! while this replica was not leading.

pub mod callback;
pub mod comment;
pub mod github;
pub mod recovery;

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::lease::Leader;
use crate::cluster::store::JobStore;
use crate::job::JobRecord;

/// How often the sweep looks for Jobs owed a report.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(30);

/// The reporters (clones share them). Without any, every call does nothing.
#[derive(Clone, Default)]
pub struct Reporting {
    github: Option<github::GithubReporter>,
    callbacks: Option<callback::CallbackReporter>,
}

impl Reporting {
    /// Reporting to nobody.
    pub fn none() -> Self {
        Reporting::default()
    }

    pub fn new(
        github: Option<github::GithubReporter>,
        callbacks: Option<callback::CallbackReporter>,
    ) -> Self {
        Reporting { github, callbacks }
    }

    /// The GitHub reporter, if GitHub reporting is configured.
    pub fn github(&self) -> Option<&github::GithubReporter> {
        self.github.as_ref()
    }

    /// A Job's state changed (or its watcher started): queue what it is
    /// owed. Never waits.
    pub fn changed(&self, record: &Arc<JobRecord>) {
        if let Some(g) = &self.github {
            g.changed(record);
        }
        if let Some(c) = &self.callbacks {
            c.changed(record);
        }
    }

    /// Queues every stored Job still owed a report; the count queued.
    pub fn sweep(&self, store: &JobStore) -> usize {
        let mut n = 0;
        if let Some(g) = &self.github {
            n += g.sweep(store.filtered(|r| r.source.as_deref() == Some("github")));
        }
        if let Some(c) = &self.callbacks {
            n += c.sweep(store.filtered(|r| r.callback_url.is_some()));
        }
        n
    }

    /// Sweeps at once on taking the Lease, and every [`SWEEP_PERIOD`]
    /// while leading (a supervised task).
    pub async fn sweep_forever(self, store: JobStore, leader: Leader) {
        if self.github.is_none() && self.callbacks.is_none() {
            return std::future::pending().await;
        }
        let mut leading = false;
        let mut last_sweep: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now_leading = leader.is_leader();
            let due = last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_PERIOD);
            if now_leading && (!leading || due) && store.is_ready() {
                let n = self.sweep(&store);
                if n > 0 {
                    tracing::info!(jobs = n, "reports owed; queued");
                }
                last_sweep = Some(tokio::time::Instant::now());
            }
            leading = now_leading;
        }
    }
}
