//! Who may trigger work: GitHub author associations plus an allowlist.

use super::payload::Comment;
use crate::config::Config;

/// Who may trigger work besides the author associations OWNER, MEMBER and
/// COLLABORATOR.
#[derive(Clone, Debug, Default)]
pub struct TrustConfig {
    /// GitHub logins trusted regardless of association (case-insensitive).
    pub allowlist: Vec<String>,
}

impl TrustConfig {
    /// From `GITHUB_TRUSTED_USERS`.
    pub fn from_config(cfg: &Config) -> TrustConfig {
        TrustConfig {
            allowlist: cfg.github_trusted_users.clone(),
        }
    }

    fn allows(&self, login: &str) -> bool {
        self.allowlist.iter().any(|u| u.eq_ignore_ascii_case(login))
    }
}

/// Associations that can trigger work by default.
const TRUSTED_ASSOCIATIONS: &[&str] = &["OWNER", "MEMBER", "COLLABORATOR"];

/// Trust of whoever *caused* the event:
///
/// * **Comments**: the comment's author. Its `author_association` is the
///   commenter's relation to the repository (or the login is allowlisted).
///   The author, not the sender, because the comment text is the
///   instruction: a maintainer editing an outsider's comment must not turn
///   the outsider's words into trusted instructions.
/// * **Label events**: the sender, who applied the label. GitHub sends no
///   association for the sender, but only users with triage access or more
///   can label issues and PRs — with one exception: labels that an issue
///   template applies when an issue is opened are applied *as the issue
///   author*. So a label from someone other than the author is trusted (it
///   proves triage access), and a label the author applied is trusted only
///   if the author's association is (or the sender is allowlisted).
/// * **Anything else** (custom rules on `opened`, `edited`, …): the issue's
///   or PR's author association, or the sender on the allowlist.
pub(super) fn is_trusted(
    trust: &TrustConfig,
    action: &str,
    sender: &str,
    (author, association): (&str, &str),
    comment: Option<&Comment<'_>>,
) -> bool {
    let trusted_assoc = |a: &str| TRUSTED_ASSOCIATIONS.contains(&a);
    if let Some(c) = comment {
        return trusted_assoc(&c.author_association) || trust.allows(&c.user.login);
    }
    if trust.allows(sender) {
        return true;
    }
    if action == "labeled" || action == "unlabeled" {
        let by_author = author.is_empty() || author.eq_ignore_ascii_case(sender);
        return !by_author || trusted_assoc(association);
    }
    trusted_assoc(association)
}
