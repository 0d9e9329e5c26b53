//! Event sources: each one authenticates and decodes its own wire format and
//! turns an event into a [`Decision`] — a [`Task`] or an explicit reason to
//! ignore it. Sources are pure: no I/O, no clock reads except where a
//! function says so, so the HTTP layer can run them on its worker threads
//! and the source actors stay thin.
//!
//! ```text
//!  raw body + headers ──verify──▶ typed, borrowed decode ──rules──▶ Decision
//! ```

pub mod github;
pub mod grafana;
pub mod intake;

use crate::task::Task;

/// What a source made of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A connectivity check (GitHub `ping`); answer 200, do nothing.
    Ping,
    /// Nothing to do; `reason` is short and machine-friendly
    /// (`event 'push' is not routed`, `no rule matched`, `untrusted`).
    Ignored {
        /// Why the event was ignored.
        reason: String,
    },
    /// Work to do (boxed: a Task is much larger than the other variants).
    Task(Box<Task>),
    /// A trusted slash command (`/agent status|cancel|retry`) on an issue
    /// or pull request.
    Command(Box<github::Command>),
    /// A slash command from someone not trusted: answered like an ignored
    /// untrusted delivery, logged (login only) and counted, nothing else.
    UntrustedCommand {
        /// Which command.
        command: github::CommandKind,
        /// The comment author's login.
        login: String,
    },
}

impl Decision {
    /// An [`Decision::Ignored`] with `reason`.
    pub fn ignored(reason: impl Into<String>) -> Decision {
        Decision::Ignored {
            reason: reason.into(),
        }
    }
}
pub mod actor;
pub mod api;
pub mod fields;
pub mod strict_json;
