//! The Kube actor: the only code that calls the Kubernetes API for Jobs.
//!
//! It bounds its own request rate (like client-go's QPS/burst), retries
//! 429/5xx/transport errors with exponential backoff inside each request's
//! deadline, and maps API errors to [`KubeError`]. Its handlers return
//! futures, so the mailbox keeps flowing while calls are in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};

use super::files::{self, TaskFile};
use super::state::ANNOTATION_CANCELLED;
use serde_json::json;

use crate::metrics::Metrics;

/// A failed Kubernetes call, typed for the callers' decisions.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KubeError {
    #[error("already exists")]
    AlreadyExists,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The API server could not be reached or kept failing until the deadline.
    #[error("Kubernetes API unavailable: {0}")]
    Unavailable(String),
}

impl KubeError {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            KubeError::AlreadyExists => "already_exists",
            KubeError::Conflict(_) => "conflict",
            KubeError::NotFound => "not_found",
            KubeError::Invalid(_) => "invalid",
            KubeError::Forbidden(_) => "forbidden",
            KubeError::Unavailable(_) => "unavailable",
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, KubeError::Unavailable(_))
    }
}

impl From<kube::Error> for KubeError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => match (s.code, s.reason.as_str()) {
                (409, "AlreadyExists") => KubeError::AlreadyExists,
                (409, _) => KubeError::Conflict(s.message.clone()),
                (404, _) => KubeError::NotFound,
                (403, _) | (401, _) => KubeError::Forbidden(s.message.clone()),
                (429, _) | (500..=599, _) => {
                    KubeError::Unavailable(format!("{} {}", s.code, s.reason))
                }
                _ => KubeError::Invalid(s.message.clone()),
            },
            other => KubeError::Unavailable(other.to_string()),
        }
    }
}

/// Request rate and retry settings.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    pub namespace: String,
    /// Sustained requests per second to the API server.
    pub qps: u32,
    /// Requests allowed in a burst above `qps`.
    pub burst: u32,
}

/// Owns the client, the rate limiter and the retry policy.
pub struct KubeActor {
    jobs: Api<Job>,
    namespace: String,
    limiter: Arc<DefaultDirectRateLimiter>,
    metrics: Arc<Metrics>,
}

impl KubeActor {
    pub fn new(client: kube::Client, settings: &KubeSettings, metrics: Arc<Metrics>) -> Self {
        let qps =
            std::num::NonZeroU32::new(settings.qps.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let burst =
            std::num::NonZeroU32::new(settings.burst.max(settings.qps).max(1)).unwrap_or(qps);
        KubeActor {
            jobs: Api::namespaced(client, &settings.namespace),
            namespace: settings.namespace.clone(),
            limiter: Arc::new(RateLimiter::direct(
                Quota::per_second(qps).allow_burst(burst),
            )),
            metrics,
        }
    }
}

impl KubeActor {
    fn ctx(&self) -> (Arc<DefaultDirectRateLimiter>, Arc<Metrics>) {
        (self.limiter.clone(), self.metrics.clone())
    }
}

impl Actor for KubeActor {
    type Context = Context<Self>;
}

impl Supervised for KubeActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(actor = "kube", "actor restarting");
        self.metrics.actor_restarted("kube");
    }
}

/// Runs `call` under the rate limit, retrying retryable failures with
/// backoff until `deadline`.
async fn call<T, F, Fut>(
    (limiter, metrics): (Arc<DefaultDirectRateLimiter>, Arc<Metrics>),
    deadline: Instant,
    verb: &'static str,
    f: F,
) -> Result<T, KubeError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let attempt = || {
        let limiter = limiter.clone();
        let metrics = metrics.clone();
        let f = &f;
        async move {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KubeError::Unavailable("deadline exceeded".into()));
            }
            if tokio::time::timeout(left, limiter.until_ready())
                .await
                .is_err()
            {
                return Err(KubeError::Unavailable(
                    "client rate limit wait exceeded the deadline".into(),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let started = Instant::now();
            let r = match tokio::time::timeout(left, f()).await {
                Ok(r) => r.map_err(KubeError::from),
                Err(_) => Err(KubeError::Unavailable("request timed out".into())),
            };
            metrics.kube_request(
                verb,
                r.as_ref().err().map_or("ok", |e| e.metric_label()),
                started.elapsed(),
            );
            r
        }
    };
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times();
    attempt
        .retry(policy)
        .when(|e: &KubeError| e.retryable() && Instant::now() < deadline)
        .notify(|e, wait| tracing::debug!(error = %e, ?wait, verb, "retrying Kubernetes call"))
        .await
}

/// Creates a (suspended) Job and, if it has files, their ConfigMap owned
/// by the Job; answers the created Job.
#[derive(Message)]
#[rtype(result = "Result<Job, KubeError>")]
pub struct CreateJob {
    pub job: Box<Job>,
    pub files: Vec<TaskFile>,
    pub deadline: Instant,
}

/// Cancels a Job: marks it cancelled and suspends it (which stops a running
/// pod). Finished Jobs are left as they are. Answers the Job after the call.
#[derive(Message)]
#[rtype(result = "Result<Option<Job>, KubeError>")]
pub struct CancelJob {
    pub name: String,
    pub deadline: Instant,
}

/// Streams the log of the newest pod of a Job's agent container.
#[derive(Message)]
#[rtype(result = "Result<LogLines, KubeError>")]
pub struct StreamLogs {
    pub name: String,
    pub follow: bool,
    pub deadline: Instant,
}

/// Log lines as they arrive.
pub type LogLines = futures::stream::BoxStream<'static, Result<String, String>>;

/// Sets `spec.suspend` of a Job (false admits it; a cancelled Job is never
/// admitted: answered `NotFound`).
#[derive(Message)]
#[rtype(result = "Result<(), KubeError>")]
pub struct SetSuspend {
    pub name: String,
    pub suspend: bool,
    pub deadline: Instant,
}

/// Deletes a Job and (Background propagation) its pods and ConfigMaps.
#[derive(Message)]
#[rtype(result = "Result<(), KubeError>")]
pub struct DeleteJob {
    pub name: String,
    pub deadline: Instant,
}

/// Gets one Job (None when absent).
#[derive(Message)]
#[rtype(result = "Result<Option<Job>, KubeError>")]
pub struct GetJob {
    pub name: String,
    pub deadline: Instant,
}

/// Lists the managed Jobs.
#[derive(Message)]
#[rtype(result = "Result<Vec<Job>, KubeError>")]
pub struct ListJobs {
    pub selector: String,
    pub deadline: Instant,
}

impl Handler<CreateJob> for KubeActor {
    type Result = ResponseFuture<Result<Job, KubeError>>;
    fn handle(&mut self, msg: CreateJob, _: &mut Context<Self>) -> Self::Result {
        let (jobs, limiter) = (self.jobs.clone(), self.ctx());
        let cms: Api<ConfigMap> = Api::namespaced(self.jobs.clone().into_client(), &self.namespace);
        Box::pin(async move {
            let cm = if msg.files.is_empty() {
                None
            } else {
                files::configmap(&msg.job, &msg.files)
            };
            // The files first: the Job must never exist without them.
            let mut created_cm = false;
            if let Some(cm) = &cm {
                created_cm =
                    ensure_configmap(&cms, &jobs, limiter.clone(), msg.deadline, cm).await?;
            }
            let pp = PostParams::default();
            let created = call(limiter.clone(), msg.deadline, "create", || {
                jobs.create(&pp, &msg.job)
            })
            .await;
            let Some(cm) = cm else {
                return created;
            };
            let cm_name = cm.metadata.name.clone().unwrap_or_default();
            match created {
                Ok(job) => {
                    own(&cms, limiter, msg.deadline, &cm_name, &job).await?;
                    Ok(job)
                }
                Err(KubeError::AlreadyExists) => {
                    // The task exists: finish what an earlier attempt began
                    // before anyone is told "duplicate".
                    let name = msg.job.metadata.name.clone().unwrap_or_default();
                    let existing =
                        call(limiter.clone(), msg.deadline, "get", || jobs.get_opt(&name)).await?;
                    if let Some(job) = existing {
                        own(&cms, limiter, msg.deadline, &cm_name, &job).await?;
                    }
                    Err(KubeError::AlreadyExists)
                }
                Err(e @ KubeError::Unavailable(_)) => {
                    // The create may have happened after all: keep the files
                    // for the Job that may exist; a retry completes it.
                    Err(e)
                }
                Err(e) => {
                    // Refused for good: take back the files this call made.
                    if created_cm {
                        let dp = DeleteParams::background();
                        let r = call(limiter, msg.deadline, "delete", || {
                            cms.delete(&cm_name, &dp)
                        })
                        .await;
                        if let Err(de) = r.map(|_| ()).or_else(|e| match e {
                            KubeError::NotFound => Ok(()),
                            e => Err(e),
                        }) {
                            tracing::warn!(configmap = %cm_name, error = %de, "could not delete the files of a refused job; a retry reuses them");
                        }
                    }
                    Err(e)
                }
            }
        })
    }
}

/// Creates the files' ConfigMap, or accepts the one an earlier attempt
/// left (same content, or owned by a live Job of the same task). A leftover
/// with other content and no Job is replaced. True if this call created it.
async fn ensure_configmap(
    cms: &Api<ConfigMap>,
    jobs: &Api<Job>,
    limiter: (Arc<DefaultDirectRateLimiter>, Arc<Metrics>),
    deadline: Instant,
    cm: &ConfigMap,
) -> Result<bool, KubeError> {
    let pp = PostParams::default();
    let name = cm.metadata.name.clone().unwrap_or_default();
    for _ in 0..3 {
        match call(limiter.clone(), deadline, "create", || cms.create(&pp, cm)).await {
            Ok(_) => return Ok(true),
            Err(KubeError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        let Some(found) = call(limiter.clone(), deadline, "get", || cms.get_opt(&name)).await?
        else {
            continue;
        };
        if found.data == cm.data {
            return Ok(false);
        }
        let job_name = name.strip_suffix("-files").unwrap_or(&name).to_string();
        if call(limiter.clone(), deadline, "get", || jobs.get_opt(&job_name))
            .await?
            .is_some()
        {
            // The task's Job exists with these files: it stays as it is.
            return Ok(false);
        }
        let dp = DeleteParams::background();
        match call(limiter.clone(), deadline, "delete", || {
            cms.delete(&name, &dp)
        })
        .await
        {
            Ok(_) | Err(KubeError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Err(KubeError::Conflict(format!(
        "the files ConfigMap {name} kept changing"
    )))
}

/// Makes `job` the owner of its files' ConfigMap (if it is not already).
async fn own(
    cms: &Api<ConfigMap>,
    limiter: (Arc<DefaultDirectRateLimiter>, Arc<Metrics>),
    deadline: Instant,
    cm_name: &str,
    job: &Job,
) -> Result<(), KubeError> {
    let Some(patch) = files::owner_patch(job) else {
        return Ok(());
    };
    let current = call(limiter.clone(), deadline, "get", || cms.get_opt(cm_name)).await?;
    match current {
        Some(cm) if files::owned_by(&cm, job) => return Ok(()),
        // Gone (deleted with an earlier Job of this name): nothing to own.
        None => return Ok(()),
        Some(_) => {}
    }
    let pp = PatchParams::default();
    let patch = Patch::Merge(patch);
    call(limiter, deadline, "patch", || {
        cms.patch(cm_name, &pp, &patch)
    })
    .await
    .map(|_| ())
}

impl Handler<CancelJob> for KubeActor {
    type Result = ResponseFuture<Result<Option<Job>, KubeError>>;
    fn handle(&mut self, msg: CancelJob, _: &mut Context<Self>) -> Self::Result {
        let (jobs, limiter) = (self.jobs.clone(), self.ctx());
        Box::pin(async move {
            let Some(job) = call(limiter.clone(), msg.deadline, "get", || {
                jobs.get_opt(&msg.name)
            })
            .await?
            else {
                return Ok(None);
            };
            // Jobs this service does not manage are not ours to cancel: the
            // caller sees them as absent, as every read path does.
            if !super::jobspec::is_managed(&job) {
                return Ok(None);
            }
            if crate::cluster::state::job_state(&job).is_finished() {
                return Ok(Some(job));
            }
            let patch = Patch::Merge(json!({
                "metadata": {"annotations": {ANNOTATION_CANCELLED: chrono::Utc::now().to_rfc3339()}},
                "spec": {"suspend": true},
            }));
            let pp = PatchParams::default();
            call(limiter, msg.deadline, "patch", || {
                jobs.patch(&msg.name, &pp, &patch)
            })
            .await
            .map(Some)
        })
    }
}

impl Handler<StreamLogs> for KubeActor {
    type Result = ResponseFuture<Result<LogLines, KubeError>>;
    fn handle(&mut self, msg: StreamLogs, _: &mut Context<Self>) -> Self::Result {
        let (jobs, limiter) = (self.jobs.clone(), self.ctx());
        let ns = self.namespace.clone();
        Box::pin(async move {
            use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
            let pods: Api<Pod> = Api::namespaced(jobs.into_client(), &ns);
            let lp =
                ListParams::default().labels(&format!("batch.kubernetes.io/job-name={}", msg.name));
            let mut list = call(limiter.clone(), msg.deadline, "list", || pods.list(&lp))
                .await?
                .items;
            list.sort_by_key(|p| p.metadata.creation_timestamp.clone());
            let Some(pod) = list.pop().and_then(|p| p.metadata.name) else {
                return Err(KubeError::NotFound);
            };
            let params = LogParams {
                follow: msg.follow,
                container: Some("agent".into()),
                ..Default::default()
            };
            let reader = call(limiter, msg.deadline, "get", || {
                pods.log_stream(&pod, &params)
            })
            .await?;
            let lines = reader.lines().map_err(|e| e.to_string()).boxed();
            Ok(lines)
        })
    }
}

impl Handler<SetSuspend> for KubeActor {
    type Result = ResponseFuture<Result<(), KubeError>>;
    fn handle(&mut self, msg: SetSuspend, _: &mut Context<Self>) -> Self::Result {
        let (jobs, limiter) = (self.jobs.clone(), self.ctx());
        Box::pin(async move {
            let pp = PatchParams::default();
            if msg.suspend {
                let patch = Patch::Merge(json!({"spec": {"suspend": true}}));
                return call(limiter, msg.deadline, "patch", || {
                    jobs.patch(&msg.name, &pp, &patch)
                })
                .await
                .map(|_| ());
            }
            // Admission must never unsuspend a Job cancelled after the
            // scheduler last saw it: check and unsuspend as one step, by
            // patching only the resourceVersion that was checked (a
            // conflict means the Job changed in between: look again).
            for _ in 0..5 {
                let Some(job) = call(limiter.clone(), msg.deadline, "get", || {
                    jobs.get_opt(&msg.name)
                })
                .await?
                else {
                    return Err(KubeError::NotFound);
                };
                if crate::cluster::state::job_state(&job)
                    == crate::cluster::state::JobState::Cancelled
                {
                    // Answered like a vanished Job: the scheduler forgets it.
                    tracing::info!(job = %msg.name, "not admitting a cancelled job");
                    return Err(KubeError::NotFound);
                }
                let patch = Patch::Merge(json!({
                    "metadata": {"resourceVersion": job.metadata.resource_version},
                    "spec": {"suspend": false},
                }));
                match call(limiter.clone(), msg.deadline, "patch", || {
                    jobs.patch(&msg.name, &pp, &patch)
                })
                .await
                {
                    Err(KubeError::Conflict(_)) => continue,
                    other => return other.map(|_| ()),
                }
            }
            Err(KubeError::Conflict(
                "the job kept changing while being admitted".into(),
            ))
        })
    }
}

impl Handler<DeleteJob> for KubeActor {
    type Result = ResponseFuture<Result<(), KubeError>>;
    fn handle(&mut self, msg: DeleteJob, _: &mut Context<Self>) -> Self::Result {
        let (jobs, limiter) = (self.jobs.clone(), self.ctx());
        Box::pin(async move {
            // batch/v1 Jobs orphan their pods unless told otherwise.
            let dp = DeleteParams::background();
            match call(limiter, msg.deadline, "delete", || {
                jobs.delete(&msg.name, &dp)
            })
            .await
            {
                Ok(_) | Err(KubeError::NotFound) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

impl Handler<GetJob> for KubeActor {
    type Result = ResponseFuture<Result<Option<Job>, KubeError>>;
    fn handle(&mut self, msg: GetJob, _: &mut Context<Self>) -> Self::Result {
        let (jobs, limiter) = (self.jobs.clone(), self.ctx());
        Box::pin(
            async move { call(limiter, msg.deadline, "get", || jobs.get_opt(&msg.name)).await },
        )
    }
}

impl Handler<ListJobs> for KubeActor {
    type Result = ResponseFuture<Result<Vec<Job>, KubeError>>;
    fn handle(&mut self, msg: ListJobs, _: &mut Context<Self>) -> Self::Result {
        let (jobs, limiter) = (self.jobs.clone(), self.ctx());
        Box::pin(async move {
            let lp = ListParams::default().labels(&msg.selector);
            call(limiter, msg.deadline, "list", || jobs.list(&lp))
                .await
                .map(|l| l.items)
        })
    }
}

impl Handler<crate::metrics::Restart> for KubeActor {
    type Result = ();
    fn handle(&mut self, _: crate::metrics::Restart, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
