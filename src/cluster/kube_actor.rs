//! The Kube actor: the service's Job, Pod, log and ConfigMap calls. Every
//! call goes through the shared [`KubeGate`] (rate bound, timeouts,
//! retries inside each request's deadline, metrics). Its handlers return
//! futures, so the mailbox keeps flowing while calls are in flight.
//!
//! Each Job message names the Job's namespace (`None`: the service's own,
//! `KUBERNETES_NAMESPACE`); a Job's files' ConfigMap, pods and Events live
//! in its namespace too.

use std::time::Instant;

use actix::prelude::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams};

use super::jobspec::{ANNOTATION_CANCELLED, ANNOTATION_SUPERSEDED_BY};
use crate::task::files::TaskFile;
use serde_json::json;

pub use super::gate::{KubeError, KubeGate};

mod create;
mod event;
mod kueue;
mod preflight;
pub use kueue::{HandToKueue, KueuePreflight};
pub use preflight::Preflight;

/// Mailbox capacity of the Kube actor (requests in flight).
pub const MAILBOX: usize = 1024;

/// Calls the API server through the gate, in the service's namespace or a
/// Job's own.
pub struct KubeActor {
    /// The service's own namespace (`KUBERNETES_NAMESPACE`).
    namespace: String,
    gate: KubeGate,
    /// `SCHEDULER=kueue`: cancels delete, preflight asks about Kueue.
    kueue: Option<std::sync::Arc<crate::config::kueue::KueueSettings>>,
    /// Fault injection ([`CrashNextCall`]): calls whose future panics.
    #[cfg(feature = "test-hooks")]
    crash_calls: u32,
}

/// Makes the Kube actor's next call panic inside its future (not in the
/// handler): the call is answered `Unavailable` and counted as a restart.
/// Fault injection for the supervision tests: no route, input or
/// configuration sends it.
#[cfg(feature = "test-hooks")]
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct CrashNextCall;

#[cfg(feature = "test-hooks")]
impl Handler<CrashNextCall> for KubeActor {
    type Result = ();
    fn handle(&mut self, _: CrashNextCall, _: &mut Context<Self>) {
        self.crash_calls += 1;
    }
}

impl KubeActor {
    /// The namespace a message names, else the service's own.
    fn ns(&self, namespace: Option<&str>) -> String {
        namespace.unwrap_or(&self.namespace).to_string()
    }

    /// The Jobs of `namespace` (else of the service's own namespace).
    fn jobs(&self, namespace: Option<&str>) -> Api<Job> {
        Api::namespaced(self.gate.client(), &self.ns(namespace))
    }

    /// The gate for a call: the reads' share for a client's read.
    fn gate_for(&self, read_share: bool) -> KubeGate {
        if read_share {
            self.gate.for_reads()
        } else {
            self.gate.clone()
        }
    }

    /// One call of the actor. actix runs a handler's future apart from the
    /// actor, so the actor's supervisor never sees it fail: a panic in it is
    /// caught here, logged, counted as a restart of the `kube` actor and
    /// answered `Unavailable` (a 503 at the HTTP edge), as a panicking
    /// handler would be.
    fn tracked<T: 'static>(
        &mut self,
        call: impl std::future::Future<Output = Result<T, KubeError>> + 'static,
    ) -> ResponseFuture<Result<T, KubeError>> {
        use futures::FutureExt as _;
        let metrics = self.gate.metrics().clone();
        #[cfg(feature = "test-hooks")]
        let crash = {
            let armed = self.crash_calls > 0;
            self.crash_calls = self.crash_calls.saturating_sub(1);
            armed
        };
        #[cfg(not(feature = "test-hooks"))]
        let crash = false;
        Box::pin(async move {
            let call = async move {
                if crash {
                    panic!("fault injection: the kube actor's call was told to crash");
                }
                call.await
            };
            match std::panic::AssertUnwindSafe(call).catch_unwind().await {
                Ok(answer) => answer,
                Err(panic) => {
                    let what = crate::actors::panic_text(&*panic);
                    tracing::error!(actor = "kube", panic = %what, "a Kubernetes call panicked");
                    metrics.actor("kube").restarts.inc();
                    Err(KubeError::Unavailable(
                        "the Kubernetes call failed inside this service".into(),
                    ))
                }
            }
        })
    }
}

impl KubeActor {
    /// An actor calling the API server through `gate` in `namespace`.
    pub fn new(gate: KubeGate, namespace: &str) -> Self {
        KubeActor {
            namespace: namespace.to_string(),
            gate,
            kueue: None,
            #[cfg(feature = "test-hooks")]
            crash_calls: 0,
        }
    }
}

impl Actor for KubeActor {
    type Context = Context<Self>;
}

impl Supervised for KubeActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        // Nothing derived to rebuild: each call carries what it needs.
        tracing::warn!(actor = "kube", "actor restarting");
    }
}

crate::tracked_handlers!(KubeActor => CreateJob, CancelJob, StreamLogs, AdmitJob, DeleteJob, GetJob, AnnotateJob, Preflight, crate::cluster::audit::RecordEvent, HandToKueue, KueuePreflight);
#[cfg(feature = "test-hooks")]
crate::tracked_handlers!(KubeActor => crate::actors::Crash, CrashNextCall);

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
/// pod); in Kueue mode marks it cancelled and deletes it instead (Kueue
/// would requeue a suspended Job and start it again). Finished Jobs are left as they are, and so is a running one when
/// `keep_running` is set. The state is checked on the API server's copy and
/// the patch is bound to the resourceVersion that was checked, so a Job
/// admitted or finished in between is never cancelled by mistake. Answers the
/// Job after the call (unchanged when it was left alone) and whether this
/// call cancelled it.
#[derive(Message)]
#[rtype(result = "Result<Option<(Job, bool)>, KubeError>")]
pub struct CancelJob {
    pub name: String,
    /// The Job's namespace (`None`: the service's own).
    pub namespace: Option<String>,
    pub keep_running: bool,
    /// Cancelled because this newer Job supersedes it: written, with the
    /// cancel, as `orchestrator.dev/superseded-by`.
    pub superseded_by: Option<String>,
    pub deadline: Instant,
    /// An operator's cancel: its calls take the gate's share for reads
    /// ([`KubeGate::for_reads`]), so cancels cannot starve Job creates.
    pub read_share: bool,
}

/// Streams the log of the newest pod of a Job's agent container (its
/// calls take the gate's share for reads).
#[derive(Message)]
#[rtype(result = "Result<LogLines, KubeError>")]
pub struct StreamLogs {
    pub name: String,
    /// The Job's namespace (`None`: the service's own).
    pub namespace: Option<String>,
    pub follow: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<i64>,
    pub deadline: Instant,
}

/// Writes annotations of a managed Job (a value of `None` removes the key),
/// bound to the resourceVersion read: a conflict reads and writes again.
/// `keep` decides on the copy read whether the write is still wanted
/// (given the current value of the first key): `false` answers `Ok(false)`
/// and writes nothing. Answers whether it wrote.
/// Decides on the Job's copy whether an [`AnnotateJob`] still writes:
/// given the current value of its first key and the annotations to write.
pub type KeepAnnotation = fn(Option<&str>, &[(String, Option<String>)]) -> bool;

#[derive(Message)]
#[rtype(result = "Result<bool, KubeError>")]
pub struct AnnotateJob {
    pub name: String,
    /// The Job's namespace (`None`: the service's own).
    pub namespace: Option<String>,
    pub annotations: Vec<(String, Option<String>)>,
    pub keep: KeepAnnotation,
    pub deadline: Instant,
}

/// Log lines as they arrive.
pub type LogLines = futures::stream::BoxStream<'static, Result<String, String>>;

/// Admits a queued Job: sets its `spec.suspend` to false (a cancelled Job,
/// or one in a Kueue LocalQueue, is never admitted: answered `NotFound`).
#[derive(Message)]
#[rtype(result = "Result<(), KubeError>")]
pub struct AdmitJob {
    pub name: String,
    /// The Job's namespace (`None`: the service's own).
    pub namespace: Option<String>,
    pub deadline: Instant,
}

/// Deletes a Job and (Background propagation) its pods and ConfigMaps.
#[derive(Message)]
#[rtype(result = "Result<(), KubeError>")]
pub struct DeleteJob {
    pub name: String,
    /// The Job's namespace (`None`: the service's own).
    pub namespace: Option<String>,
    pub deadline: Instant,
}

/// Gets one Job (None when absent).
#[derive(Message)]
#[rtype(result = "Result<Option<Job>, KubeError>")]
pub struct GetJob {
    pub name: String,
    /// The Job's namespace (`None`: the service's own).
    pub namespace: Option<String>,
    pub deadline: Instant,
    /// A client's read: take the gate's share for reads
    /// ([`KubeGate::for_reads`]) rather than the create path's.
    pub read_share: bool,
}

impl Handler<CancelJob> for KubeActor {
    type Result = ResponseFuture<Result<Option<(Job, bool)>, KubeError>>;
    fn handle(&mut self, msg: CancelJob, _: &mut Context<Self>) -> Self::Result {
        let jobs = self.jobs(msg.namespace.as_deref());
        let gate = self.gate_for(msg.read_share);
        let deletes = self.kueue.is_some();
        self.tracked(async move {
            use crate::cluster::view::job_state;
            use crate::job::JobState;
            let plan = |job: Option<&Job>| {
                // Jobs this service does not manage are not ours to cancel:
                // the caller sees them as absent, as every read path does.
                let Some(job) = job.filter(|j| super::jobspec::is_managed(j)) else {
                    return Ok(Plan::Answer(None));
                };
                let state = job_state(job);
                if state.is_finished() || (msg.keep_running && state == JobState::Running) {
                    return Ok(Plan::Answer(Some((job.clone(), false))));
                }
                let mut annotations =
                    json!({ANNOTATION_CANCELLED: chrono::Utc::now().to_rfc3339()});
                if let Some(by) = &msg.superseded_by {
                    annotations[ANNOTATION_SUPERSEDED_BY] = json!(by);
                }
                if deletes {
                    // Kueue's to suspend: the mark, then the delete below.
                    return Ok(Plan::Patch(
                        json!({"metadata": {"annotations": annotations}}),
                    ));
                }
                Ok(Plan::Patch(json!({
                    "metadata": {"annotations": annotations},
                    "spec": {"suspend": true},
                })))
            };
            let done = |_read: &Job, patched: Job| Some((patched, true));
            let answer = patch_as_read(
                &jobs,
                &gate,
                &msg.name,
                msg.deadline,
                "cancelled",
                plan,
                done,
            )
            .await?;
            if let (true, Some((job, true))) = (deletes, &answer) {
                kueue::delete_cancelled(&jobs, &gate, job, msg.deadline).await;
            }
            Ok(answer)
        })
    }
}

/// What to do with a Job just read.
enum Plan<T> {
    /// Nothing to write: answer this.
    Answer(T),
    /// Apply this merge patch, bound to the resourceVersion read.
    Patch(serde_json::Value),
}

/// Reads Job `name`, lets `plan` decide on that copy, and applies its patch
/// only to the resourceVersion read, so nothing that changed the Job in
/// between (an admission, a cancel, its end) is overwritten: a conflict
/// reads and decides again (5 tries). `done` turns the copy read and the
/// patched Job into the answer; `doing` names the step in the error.
async fn patch_as_read<T>(
    jobs: &Api<Job>,
    gate: &KubeGate,
    name: &str,
    deadline: Instant,
    doing: &str,
    plan: impl Fn(Option<&Job>) -> Result<Plan<T>, KubeError>,
    done: impl Fn(&Job, Job) -> T,
) -> Result<T, KubeError> {
    let pp = PatchParams::default();
    for _ in 0..5 {
        let read = gate.call(deadline, "get", || jobs.get_opt(name)).await?;
        let mut patch = match plan(read.as_ref())? {
            Plan::Answer(a) => return Ok(a),
            Plan::Patch(p) => p,
        };
        let Some(read) = read else {
            return Err(KubeError::NotFound);
        };
        patch["metadata"]["resourceVersion"] = json!(read.metadata.resource_version);
        let patch = Patch::Merge(patch);
        match gate
            .call(deadline, "patch", || jobs.patch(name, &pp, &patch))
            .await
        {
            Err(KubeError::Conflict(_)) => continue,
            other => return other.map(|patched| done(&read, patched)),
        }
    }
    Err(KubeError::Conflict(format!(
        "the job kept changing while being {doing}"
    )))
}

impl Handler<StreamLogs> for KubeActor {
    type Result = ResponseFuture<Result<LogLines, KubeError>>;
    fn handle(&mut self, msg: StreamLogs, _: &mut Context<Self>) -> Self::Result {
        let gate = self.gate.for_reads();
        let pods: Api<Pod> =
            Api::namespaced(self.gate.client(), &self.ns(msg.namespace.as_deref()));
        self.tracked(async move {
            use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
            let lp =
                ListParams::default().labels(&format!("batch.kubernetes.io/job-name={}", msg.name));
            let mut list = gate
                .call(msg.deadline, "list", || pods.list(&lp))
                .await?
                .items;
            list.sort_by_key(|p| p.metadata.creation_timestamp.clone());
            let Some(pod) = list.pop().and_then(|p| p.metadata.name) else {
                return Err(KubeError::NotFound);
            };
            let params = LogParams {
                follow: msg.follow,
                tail_lines: msg.tail_lines,
                container: Some(super::jobspec::AGENT_CONTAINER.into()),
                ..Default::default()
            };
            let reader = gate
                .call(msg.deadline, "get", || pods.log_stream(&pod, &params))
                .await?;
            let lines = reader.lines().map_err(|e| e.to_string()).boxed();
            Ok(lines)
        })
    }
}

impl Handler<AdmitJob> for KubeActor {
    type Result = ResponseFuture<Result<(), KubeError>>;
    fn handle(&mut self, msg: AdmitJob, _: &mut Context<Self>) -> Self::Result {
        let (jobs, gate) = (self.jobs(msg.namespace.as_deref()), self.gate.clone());
        self.tracked(async move {
            use crate::cluster::view::job_state;
            use crate::job::JobState;
            // Admission must never unsuspend a Job cancelled after the
            // scheduler last saw it: check and unsuspend as one step.
            let plan = |job: Option<&Job>| match job {
                // Answered like a vanished Job: the scheduler forgets it.
                None => Err(KubeError::NotFound),
                Some(j) if job_state(j) == JobState::Cancelled => {
                    tracing::info!(job = %msg.name, "not admitting a cancelled job");
                    Err(KubeError::NotFound)
                }
                // Kueue's to admit (it would suspend the Job again): a Job
                // handed to Kueue is never unsuspended here, whatever the
                // mode (one left from SCHEDULER=kueue included).
                Some(j)
                    if j.metadata.labels.as_ref().is_some_and(|l| {
                        l.contains_key(crate::cluster::kueue::QUEUE_NAME_LABEL)
                    }) =>
                {
                    tracing::warn!(job = %msg.name, "not admitting a job in a Kueue LocalQueue (kueue.x-k8s.io/queue-name): Kueue admits it");
                    Err(KubeError::NotFound)
                }
                Some(_) => Ok(Plan::Patch(json!({"spec": {"suspend": false}}))),
            };
            let done = |read: &Job, _patched: Job| gate.metrics().service().admitted(read);
            patch_as_read(
                &jobs,
                &gate,
                &msg.name,
                msg.deadline,
                "admitted",
                plan,
                done,
            )
            .await
        })
    }
}

impl Handler<DeleteJob> for KubeActor {
    type Result = ResponseFuture<Result<(), KubeError>>;
    fn handle(&mut self, msg: DeleteJob, _: &mut Context<Self>) -> Self::Result {
        let (jobs, gate) = (self.jobs(msg.namespace.as_deref()), self.gate.clone());
        self.tracked(async move {
            // batch/v1 Jobs orphan their pods unless told otherwise.
            let dp = DeleteParams::background();
            match gate
                .call(msg.deadline, "delete", || jobs.delete(&msg.name, &dp))
                .await
            {
                Ok(_) | Err(KubeError::NotFound) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

impl Handler<AnnotateJob> for KubeActor {
    type Result = ResponseFuture<Result<bool, KubeError>>;
    fn handle(&mut self, msg: AnnotateJob, _: &mut Context<Self>) -> Self::Result {
        let jobs = self.jobs(msg.namespace.as_deref());
        // Bookkeeping writes take the gate's share for reads: Job creates
        // keep at least half of the rate.
        let gate = self.gate.for_reads();
        self.tracked(async move {
            let plan = |job: Option<&Job>| {
                let Some(job) = job.filter(|j| super::jobspec::is_managed(j)) else {
                    return Err(KubeError::NotFound);
                };
                let first = msg.annotations.first().map(|(k, _)| k.as_str());
                let current = first.and_then(|k| {
                    job.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(k))
                        .map(String::as_str)
                });
                if !(msg.keep)(current, &msg.annotations) {
                    return Ok(Plan::Answer(false));
                }
                let map: serde_json::Map<String, serde_json::Value> = msg
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                Ok(Plan::Patch(json!({"metadata": {"annotations": map}})))
            };
            let done = |_read: &Job, _patched: Job| true;
            patch_as_read(
                &jobs,
                &gate,
                &msg.name,
                msg.deadline,
                "annotated",
                plan,
                done,
            )
            .await
        })
    }
}

impl Handler<GetJob> for KubeActor {
    type Result = ResponseFuture<Result<Option<Job>, KubeError>>;
    fn handle(&mut self, msg: GetJob, _: &mut Context<Self>) -> Self::Result {
        let jobs = self.jobs(msg.namespace.as_deref());
        let gate = self.gate_for(msg.read_share);
        self.tracked(async move {
            gate.call(msg.deadline, "get", || jobs.get_opt(&msg.name))
                .await
        })
    }
}

#[cfg(feature = "test-hooks")]
impl Handler<crate::actors::Crash> for KubeActor {
    type Result = ();
    fn handle(&mut self, _: crate::actors::Crash, _: &mut Context<Self>) {
        panic!("fault injection: the kube actor was told to crash");
    }
}
