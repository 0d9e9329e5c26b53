//! orchestrator — turns events from GitHub, Grafana, a PM Agent and a CLI into
//! Kubernetes Jobs that run AI coding agents.
//!
//! ```text
//!  actix-web front end ──▶ source actors ──▶ scheduler ──▶ Kube actor ──▶ API server
//!                                               ▲                          │
//!                                               └── per-Job watchers ◀── one watch
//! ```
//!
//! The API server is the queue and the source of truth: accepted work is a
//! suspended Job before any 2xx. The `kube-api-sim` crate is an embedded Kubernetes API server
//! simulator used by the tests and by `serve --embedded-cluster`.

pub mod actors;
pub mod app;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod events;
pub mod github;
pub mod http;
pub mod job;
pub mod metrics;
pub mod report;
pub mod rules;
pub mod scheduler;
pub mod sources;
pub mod task;
pub mod telemetry;
pub mod watcher;
