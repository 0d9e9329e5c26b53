//! Embedded Kubernetes API server simulator.
//!
//! It speaks the real Kubernetes REST protocol over HTTP (discovery,
//! list/watch with resourceVersions and bookmarks, `Status` errors,
//! optimistic concurrency, patches) for the few types this project uses, and a
//! small Job controller with a fake kubelet moves Jobs and Pods through their
//! lifecycle. It runs no containers and keeps everything in memory.

pub mod defaults;
pub mod error;
pub mod patch;
pub mod resources;
pub mod selector;
pub mod store;
pub mod validate;
pub mod controller;
pub mod faults;
pub mod http;
pub mod openapi;
pub mod server;
pub mod watch;

pub use server::{SimConfig, SimServer};
