//! Why a Task could not be persisted ([`EnqueueError`]), from the Kube
//! actor's [`KubeError`] and an actor that did not answer ([`Refused`]).
//! The source actors carry it on (`SubmitError::Enqueue`); the HTTP edge
//! turns it into an answer (`src/http/error.rs`).

use crate::actors::Refused;
use crate::cluster::kube_actor::KubeError;

/// Why a Task could not be persisted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnqueueError {
    #[error("the task cannot become a Job: {0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    /// The namespace Jobs go to (named) does not exist.
    #[error("namespace {0:?} does not exist")]
    NamespaceMissing(String),
    /// Kubernetes denied this service a permission it needs (RBAC): the
    /// operator fixes the Role, the service recovers without a restart.
    #[error("{0}")]
    PermissionDenied(String),
    /// Kubernetes refused the Job for good (not the task's fault).
    #[error("{0}")]
    Failed(String),
    /// The task's Job (named) exists, made from a different request under
    /// the same `Idempotency-Key`.
    #[error("job {0} was made from a different request with this key")]
    KeyReused(String),
}

/// A failed create, as the sender should see it.
impl From<KubeError> for EnqueueError {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::NamespaceMissing(ns) => EnqueueError::NamespaceMissing(ns),
            e @ KubeError::Forbidden(_) => EnqueueError::PermissionDenied(e.to_string()),
            // Temporary: the sender retries.
            e @ (KubeError::Unavailable(_) | KubeError::Conflict(_)) => {
                EnqueueError::Unavailable(e.to_string())
            }
            // The API server refused our Job as invalid: our problem, not
            // the client's, and not temporary.
            e => EnqueueError::Failed(e.to_string()),
        }
    }
}

/// An actor that did not answer: temporary, the sender retries.
impl From<Refused> for EnqueueError {
    fn from(e: Refused) -> Self {
        EnqueueError::Unavailable(e.to_string())
    }
}
