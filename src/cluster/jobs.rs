//! The operator's door to Jobs, for the HTTP routes: look one up in the
//! watch store (by name or by a task's dedup key), fetch its whole document,
//! cancel it, stream its logs — each call through the Kube actor (and so
//! the gate), each failure one [`JobsError`]. The routes speak to this and
//! to no other part of `cluster/`'s Kubernetes side.
//!
//! A Job is named by its name alone (names are unique across the watched
//! namespaces, see `src/watcher.rs`): each call goes to the namespace the
//! watch store has the Job in, else to the service's own.

use std::sync::Arc;
use std::time::Instant;

use super::audit::{Audit, CancelledBy};
use super::jobspec::{dedup_annotation, is_managed};
use super::kube_actor::{
    AnnotateJob, CancelJob, GetJob, KubeActor, KubeError, LogLines, StreamLogs,
};
use super::store::JobStore;
use super::view::JobView;
use crate::actors::{Mailbox, Refused};
use crate::job::JobRecord;

/// Why a Jobs call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JobsError {
    /// No such Job (or, for logs, no pod of it yet).
    #[error("not found")]
    NotFound,
    /// Kubernetes (or the Kube actor) did not answer in time: retry.
    #[error("{0}")]
    Unavailable(String),
    /// Kubernetes denied this service a permission it needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// Kubernetes refused the call for good.
    #[error("{0}")]
    Failed(String),
}

impl From<KubeError> for JobsError {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::NotFound => JobsError::NotFound,
            KubeError::Unavailable(m) => JobsError::Unavailable(m),
            KubeError::Conflict(m) => JobsError::Unavailable(format!("conflict: {m}")),
            e @ KubeError::Forbidden(_) => JobsError::PermissionDenied(e.to_string()),
            other => JobsError::Failed(other.to_string()),
        }
    }
}

impl From<Refused> for JobsError {
    fn from(e: Refused) -> Self {
        JobsError::Unavailable(e.to_string())
    }
}

/// The store and the Kube actor, behind one face.
#[derive(Clone)]
pub struct Jobs {
    store: JobStore,
    kube: Mailbox<KubeActor>,
    audit: Audit,
}

impl Jobs {
    pub fn new(store: JobStore, kube: Mailbox<KubeActor>, audit: Audit) -> Self {
        Jobs { store, kube, audit }
    }

    /// The audit trail's recorder (Events on Jobs).
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The watch store (lists and counts).
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// A Job's stored record, by name (no Kubernetes call).
    pub fn stored(&self, name: &str) -> Option<Arc<JobRecord>> {
        self.store.get(name)
    }

    /// A Job's stored record, or the last one of a Job deleted lately
    /// (`true`: deleted), for reports still owed to it (no Kubernetes call).
    pub fn stored_or_deleted(&self, name: &str) -> Option<(Arc<JobRecord>, bool)> {
        match self.store.get(name) {
            Some(r) => Some((r, false)),
            None => self.store.recently_deleted(name).map(|r| (r, true)),
        }
    }

    /// The namespace the store has Job `name` in (`None`: not stored; the
    /// calls then go to the service's own namespace).
    pub fn namespace_of(&self, name: &str) -> Option<String> {
        self.store.get(name).map(|r| r.namespace.to_string())
    }

    /// The stored record of a task's Job, by the task's dedup key (no
    /// Kubernetes call).
    pub fn stored_by_dedup_key(&self, key: &str) -> Option<Arc<JobRecord>> {
        self.store.by_dedup_key(&dedup_annotation(key))
    }

    /// The Jobs of `source` (e.g. `github`) for issue or pull request
    /// `number` of `repository` (compared ignoring case, as GitHub does),
    /// newest first (by creation; among equals, live ones first). From the
    /// watch store: no Kubernetes call.
    pub fn of_issue(&self, source: &str, repository: &str, number: u64) -> Vec<Arc<JobRecord>> {
        let mut jobs = self.store.filtered(|r| {
            r.source.as_deref() == Some(source)
                && r.task.as_deref().is_some_and(|t| {
                    t.repository
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(repository))
                        && t.issue_number.or(t.pr_number) == Some(number)
                })
        });
        jobs.sort_by(|a, b| {
            (b.created, b.created_at, b.state.is_live(), &b.name).cmp(&(
                a.created,
                a.created_at,
                a.state.is_live(),
                &a.name,
            ))
        });
        jobs
    }

    /// A managed Job with its whole task document, from the API server
    /// (one GET on the gate's share for reads); `None` if absent or not
    /// ours.
    pub async fn fetch(
        &self,
        name: String,
        deadline: Instant,
    ) -> Result<Option<JobView>, JobsError> {
        self.fetch_in(name, None, deadline).await
    }

    /// [`Self::fetch`] from `namespace` when the store does not have the
    /// Job yet (one this replica created a moment ago).
    pub async fn fetch_in(
        &self,
        name: String,
        namespace: Option<String>,
        deadline: Instant,
    ) -> Result<Option<JobView>, JobsError> {
        let msg = GetJob {
            namespace: self.namespace_of(&name).or(namespace),
            name,
            deadline,
            read_share: true,
        };
        let job = self.kube.ask(msg).await??;
        Ok(job.filter(is_managed).and_then(|j| JobView::from_job(&j)))
    }

    /// Cancels a managed Job (idempotent): answers it afterwards (state
    /// `cancelled`, or the state it had finished in, or `running` when
    /// `keep_running` left it so); `None` if absent or not ours. `reads`:
    /// an operator's cancel, on the gate's share for reads. When this call
    /// cancelled it, the Job gets a `Cancelled` (or `Superseded`) Event
    /// saying `by` whom.
    pub async fn cancel(
        &self,
        name: String,
        keep_running: bool,
        deadline: Instant,
        reads: bool,
        by: CancelledBy,
    ) -> Result<Option<JobView>, JobsError> {
        let superseded_by = match &by {
            CancelledBy::Superseded { by_job, .. } => Some(by_job.clone()),
            _ => None,
        };
        let msg = CancelJob {
            namespace: self.namespace_of(&name),
            name,
            keep_running,
            superseded_by,
            deadline,
            read_share: reads,
        };
        let answer = self.kube.ask(msg).await??;
        Ok(answer.and_then(|(job, now)| {
            if now {
                self.audit.cancelled(&job, &by);
            }
            JobView::from_job(&job)
        }))
    }

    /// The log lines of the Job's newest pod; `NotFound` when it has none.
    pub async fn logs(
        &self,
        name: String,
        follow: bool,
        deadline: Instant,
    ) -> Result<LogLines, JobsError> {
        let msg = StreamLogs {
            namespace: self.namespace_of(&name),
            name,
            follow,
            tail_lines: None,
            deadline,
        };
        Ok(self.kube.ask(msg).await??)
    }

    /// The last `tail` lines of the Job's newest pod's log, then every new
    /// line until the pod ends (the dashboard's follow).
    pub async fn follow_tail(
        &self,
        name: String,
        tail: i64,
        deadline: Instant,
    ) -> Result<LogLines, JobsError> {
        let msg = StreamLogs {
            namespace: self.namespace_of(&name),
            name,
            follow: true,
            tail_lines: Some(tail),
            deadline,
        };
        Ok(self.kube.ask(msg).await??)
    }

    /// The last `lines` lines of the agent's log in the Job's newest pod
    /// (at most `max_bytes` in all, the oldest dropped first).
    pub async fn log_tail(
        &self,
        name: String,
        lines: i64,
        max_bytes: usize,
        deadline: Instant,
    ) -> Result<Vec<String>, JobsError> {
        use futures::StreamExt;
        let msg = StreamLogs {
            namespace: self.namespace_of(&name),
            name,
            follow: false,
            tail_lines: Some(lines),
            deadline,
        };
        let mut stream = self.kube.ask(msg).await??;
        let mut out: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut bytes = 0usize;
        while let Some(line) = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .map_err(|_| JobsError::Unavailable("the log did not arrive in time".into()))?
        {
            let Ok(line) = line else { break };
            bytes += line.len();
            out.push_back(line);
            while bytes > max_bytes {
                match out.pop_front() {
                    Some(l) => bytes -= l.len(),
                    None => break,
                }
            }
        }
        Ok(out.into())
    }

    /// Writes annotations of a managed Job, guarded by its resourceVersion
    /// (see [`AnnotateJob`]); answers whether it wrote.
    pub async fn annotate(
        &self,
        name: String,
        annotations: Vec<(String, Option<String>)>,
        keep: super::kube_actor::KeepAnnotation,
        deadline: Instant,
    ) -> Result<bool, JobsError> {
        let msg = AnnotateJob {
            namespace: self.namespace_of(&name),
            name,
            annotations,
            keep,
            deadline,
        };
        Ok(self.kube.ask(msg).await??)
    }
}
