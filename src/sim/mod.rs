//! Embedded Kubernetes API server simulator.
//!
//! It speaks the real Kubernetes REST protocol over HTTP (discovery,
//! list/watch with resourceVersions and bookmarks, `Status` errors,
//! optimistic concurrency, patches) for the few types this project uses, and a
//! small Job controller with a fake kubelet moves Jobs and Pods through their
//! lifecycle. It runs no containers and keeps everything in memory.

// `ApiError` mirrors a Kubernetes `Status` (message, details, causes); it is
// returned on rare paths, so its size is not worth boxing everywhere.
#![allow(clippy::result_large_err)]

pub mod controller;
pub mod defaults;
pub mod error;
pub mod faults;
pub mod http;
pub mod logs;
pub mod negotiate;
pub mod openapi;
pub mod patch;
pub mod printers;
pub mod request;
pub mod resources;
pub mod selector;
pub mod server;
pub mod store;
pub mod strict;
pub mod table;
#[cfg(test)]
mod table_tests;
pub mod validate;
pub mod watch;

pub use server::{SimConfig, SimServer};
