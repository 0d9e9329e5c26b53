//! github-api-sim — a fake GitHub REST API for tests.
//!
//! It answers, over real HTTP, the part of `api.github.com` a GitHub App
//! uses: App JWTs (RS256, verified against the App's public key) and
//! installation tokens, issue comments, reactions, check runs, pull requests
//! (seeded), the App's hook deliveries and redelivery, with GitHub's JSON
//! shapes, primary rate limits and their headers, ETags and conditional
//! requests. Everything is in memory and bounded; `/_sim/…` is a test-only
//! control API (state, faults, seeds). See the crate's README.
//!
//! ```no_run
//! use github_api_sim::{GithubSimConfig, GithubSimServer};
//! let sim = GithubSimServer::start_local(GithubSimConfig {
//!     tokens: vec!["test-token".into()],
//!     ..Default::default()
//! })?;
//! // Point the code under test at it: GITHUB_API_URL=sim.url()
//! let state = sim.snapshot(); // {"comments": [...], "requests": [...], ...}
//! assert!(state["comments"].as_array().unwrap().is_empty());
//! drop(sim); // stops the server
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod api;
pub mod auth;
pub mod config;
pub mod control;
pub mod faults;
pub mod server;
pub mod store;

pub use config::{GithubSimConfig, Limits};
pub use server::GithubSimServer;

/// The `documentation_url` of error answers.
pub const DOCS_URL: &str = "https://docs.github.com/rest";
