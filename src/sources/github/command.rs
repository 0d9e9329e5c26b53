//! Slash commands on an issue or pull request: `/agent status`, `/agent
//! cancel`, `/agent retry`. A command is the whole first line of a new
//! `issue_comment`; it is decided before the routing rules, so it wins over
//! a rule whose command is `/agent` (which would otherwise read `status` as
//! an instruction to the agent).

use std::fmt;

/// The prefix of every slash command (as the default comment rule spells it).
pub const COMMAND_PREFIX: &str = "/agent";

/// The event slash commands arrive on.
pub const COMMAND_EVENT: &str = "issue_comment";

/// Which slash command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// Report the newest Job again, now.
    Status,
    /// Cancel the queued and running Jobs.
    Cancel,
    /// A new run of the newest task.
    Retry,
}

impl CommandKind {
    /// The command word (`status`, `cancel`, `retry`), also its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Status => "status",
            CommandKind::Cancel => "cancel",
            CommandKind::Retry => "retry",
        }
    }

    fn from_word(word: &str) -> Option<CommandKind> {
        [CommandKind::Status, CommandKind::Cancel, CommandKind::Retry]
            .into_iter()
            .find(|k| word.eq_ignore_ascii_case(k.as_str()))
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A trusted slash command, with what acting on it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub command: CommandKind,
    /// `owner/name`.
    pub repository: String,
    /// The issue or pull request number.
    pub number: u64,
    /// True when the comment is on a pull request.
    pub is_pr: bool,
    /// The command comment (reacted to; a retry's `comment_id`).
    pub comment_id: u64,
    /// The comment's author (whose trust was checked).
    pub sender: String,
    /// The GitHub App installation the delivery came through, if any.
    pub installation: Option<u64>,
    /// `X-GitHub-Delivery`.
    pub delivery: String,
}

/// The slash command a comment body holds: its first line (after any
/// leading blank lines) is exactly `/agent <word>` — `/agent` as written,
/// the word (`status`, `cancel`, `retry`) in any case, whitespace around
/// and between them, nothing else on the line. Later lines are ignored.
pub fn parse(body: &str) -> Option<CommandKind> {
    let line = body.trim_start().lines().next()?;
    let mut words = line.split_whitespace();
    if words.next()? != COMMAND_PREFIX {
        return None;
    }
    let kind = CommandKind::from_word(words.next()?)?;
    words.next().is_none().then_some(kind)
}
