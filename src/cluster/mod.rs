//! Everything this service knows about Kubernetes objects, kept apart from
//! the API calls: building the Job for a Task ([`jobspec`]). The Kube actor
//! that creates, admits and watches Jobs lives next to this and uses it.
//!
//! (Named `cluster`, not `kube`, so it does not shadow the `kube` crate.)

pub mod jobspec;

pub use jobspec::{build_job, JobSpecError};
pub mod connect;
pub mod describe;
pub mod files;
pub mod forbidden;
pub mod gate;
pub mod jobs;
pub mod kube_actor;
pub mod lease;
pub mod metered;
pub mod permissions;
pub mod preflight;
pub mod probe;
pub mod slim;
pub mod store;
pub mod view;
