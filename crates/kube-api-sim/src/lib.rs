//! kube-api-sim — an embedded, kubectl-compatible Kubernetes API server
//! simulator for tests.
//!
//! It speaks the real Kubernetes REST protocol over HTTP (discovery,
//! list/watch with resourceVersions and bookmarks, `Status` errors,
//! optimistic concurrency, patches) for the few types this project uses, and a
//! small Job controller with a fake kubelet moves Jobs and Pods through their
//! lifecycle. It runs no containers and keeps everything in memory.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::Api;
//! // A simulator on 127.0.0.1:0 and a `kube::Client` already pointed at it.
//! let (client, sim) = kube_api_sim::start().await?;
//! let cms: Api<ConfigMap> = Api::namespaced(client, "default");
//! assert!(cms.list(&Default::default()).await?.items.is_empty());
//! drop(sim); // stops the server
//! # Ok(()) }
//! ```

// `ApiError` mirrors a Kubernetes `Status` (message, details, causes); it is
// returned on rare paths, so its size is not worth boxing everywhere.
#![allow(clippy::result_large_err)]

pub mod authz;
pub mod controller;
pub mod defaults;
pub mod error;
pub mod expansion;
pub mod faults;
pub mod http;
pub mod kueue;
pub mod listopts;
pub mod logs;
pub mod negotiate;
pub mod openapi;
pub mod patch;
pub mod pod_update;
pub mod printers;
pub mod protobuf;
pub mod quantity;
pub mod request;
pub mod resources;
pub mod reviews;
pub mod reviews_pb;
pub mod selector;
pub mod server;
pub mod ssa;
pub mod store;
pub mod strict;
pub mod table;
#[cfg(test)]
mod table_tests;
pub mod tls;
pub mod typecheck;
pub mod validate;
pub mod validate_container;
pub mod validate_core;
pub mod validate_job;
pub mod validate_job_policies;
pub mod validate_job_update;
pub mod validate_names;
pub mod validate_pod;
pub mod watch;
pub mod writes;

pub use server::{SimConfig, SimServer};

/// Starts a simulator with the default configuration on `127.0.0.1:0` and
/// returns a `kube::Client` for it, plus the server (dropping it stops it).
pub async fn start() -> anyhow::Result<(kube::Client, SimServer)> {
    start_with(SimConfig::default()).await
}

/// [`start`] with a configuration of your own (faults, run times, limits).
pub async fn start_with(config: SimConfig) -> anyhow::Result<(kube::Client, SimServer)> {
    let sim = SimServer::start_local(config)?;
    let client = sim.client().await?;
    Ok((client, sim))
}
