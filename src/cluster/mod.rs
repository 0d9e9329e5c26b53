//! The one door to the API server and what the service knows about
//! Kubernetes objects: the gate every call goes through ([`gate`], the only
//! holder of a `kube::Client`), the Kube actor that makes the Job, pod, log
//! and ConfigMap calls ([`kube_actor`]), the jobs facade the routes use
//! ([`jobs`]), the Lease ([`lease`]), the dedup record ([`dedup`]), the Job watch's client ([`metered`]),
//! the watch store ([`store`]) and the one mapping from Job objects
//! ([`view`]), building the Job for a Task ([`jobspec`], [`files`]), and the
//! preflight checks ([`preflight`], [`probe`]); Jobs in Kueue's hands
//! ([`kueue`]). Nothing here imports the
//! layers above (sources, scheduler, watcher, http, app).
//!
//! (Named `cluster`, not `kube`, so it does not shadow the `kube` crate.)

pub mod jobspec;

pub use jobspec::{build_job, build_job_in, JobSpecError};
pub mod audit;
pub mod connect;
pub mod dedup;
pub mod describe;
pub mod files;
pub mod forbidden;
pub mod gate;
pub mod jobs;
pub mod kube_actor;
pub mod kueue;
pub mod lease;
pub mod metered;
pub mod permissions;
pub mod preflight;
pub mod probe;
pub mod slim;
pub mod store;
pub mod view;
