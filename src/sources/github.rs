//! GitHub webhooks: signature check, then routing of one delivery.
//!
//! The hot path is ordered so that the cheapest question comes first:
//!
//! ```text
//!  X-GitHub-Event ── ping ─────────────────────────────▶ Ping
//!        │ ── issue_comment holding `/agent`: decoded; a new comment whose
//!        │    first line is `/agent status|cancel|retry` ─▶ Command (trusted)
//!        │                                                 or UntrustedCommand
//!        │ ── no rule names this event ────────────────▶ Ignored (body never parsed)
//!        │ ── comment events: the raw body holds none ──▶ Ignored (body never parsed)
//!        │    of the rules' commands
//!        ▼
//!  typed, borrowed decode of ~20 fields ── no rule ────▶ Ignored "no rule matched"
//!        ▼
//!  trust check ── untrusted ───────────────────────────▶ Ignored "untrusted"
//!        ▼
//!  prompt render ──────────────────────────────────────▶ Task
//! ```
//!
//! Signature verification ([`verify_signature`]) is separate so the HTTP
//! layer runs it before anything else and answers 401 on failure.

mod about;
pub mod command;
mod payload;
mod signature;
mod trust;

pub use about::{about, About};
pub use command::{Command, CommandKind};
pub use signature::{verify_signature, SignatureError};
pub use trust::TrustConfig;

use super::Decision;
use crate::rules::{
    EventFacts, PromptContext, RuleMatch, Rules, RulesError, Trust, COMMENT_EVENTS,
};
use crate::task::{git, Checkout, Task, TaskSource};
use chrono::{DateTime, Utc};
use payload::{Comment, Payload};
use std::collections::BTreeMap;

/// A payload routing cannot use (answered 400, except [`DecodeError::Prompt`]).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or a field has the wrong type or is missing inside an object.
    #[error("malformed payload: {0}")]
    Json(String),
    /// A top-level object the route needs is absent.
    #[error("payload has no `{field}`, which a '{event}' event needs")]
    Missing {
        /// The missing field (e.g. `repository`, `issue.default_branch`).
        field: &'static str,
        /// The event being routed.
        event: String,
    },
    /// A field or header has a value we refuse to use.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field or header.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The matched rule's prompt failed to render: a rules problem, not the
    /// client's (answer 500).
    #[error(transparent)]
    Prompt(#[from] RulesError),
}

impl DecodeError {
    /// True if the client sent something wrong (HTTP 400); false for
    /// server-side problems (HTTP 500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, DecodeError::Prompt(_))
    }
}

/// The searcher for [`command::COMMAND_PREFIX`], built once.
static PREFIX_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(command::COMMAND_PREFIX));

/// The raw JSON text of a body, asked whether it may hold commands (whose
/// characters JSON writes verbatim) inside a string: it may if it holds one
/// as it is, or has an escape that could spell one differently (`\u…` for
/// any character, `\/` for `/`). Each search runs at most once per body.
struct RawBody<'b> {
    body: &'b [u8],
    /// Whether it has such an escape (once searched).
    escaped: Option<bool>,
    /// Whether it holds [`command::COMMAND_PREFIX`] verbatim (once searched).
    prefix: Option<bool>,
}

impl<'b> RawBody<'b> {
    fn new(body: &'b [u8]) -> Self {
        RawBody {
            body,
            escaped: None,
            prefix: None,
        }
    }

    /// True unless no decoded string of the body contains any of `needles`.
    fn may_contain_any<S: AsRef<str>>(&mut self, needles: &[S]) -> bool {
        let body = self.body;
        let escaped = *self.escaped.get_or_insert_with(|| {
            memchr::memchr_iter(b'\\', body).any(|at| matches!(body.get(at + 1), Some(b'u' | b'/')))
        });
        escaped
            || needles.iter().any(|n| {
                let n = n.as_ref();
                if n == command::COMMAND_PREFIX {
                    *self
                        .prefix
                        .get_or_insert_with(|| PREFIX_FINDER.find(body).is_some())
                } else {
                    memchr::memmem::find(body, n.as_bytes()).is_some()
                }
            })
    }
}

/// Routes one verified delivery. See [`route_at`].
pub fn route(
    event: &str,
    delivery: &str,
    body: &[u8],
    rules: &Rules,
    trust: &TrustConfig,
) -> Result<Decision, DecodeError> {
    route_at(event, delivery, body, rules, trust, Utc::now())
}

/// Routes one verified delivery, stamping a resulting Task with `now`.
pub fn route_at(
    event: &str,
    delivery: &str,
    body: &[u8],
    rules: &Rules,
    trust: &TrustConfig,
    now: DateTime<Utc>,
) -> Result<Decision, DecodeError> {
    route_about_at(event, delivery, body, rules, trust, now).map(|(d, _)| d)
}

/// [`route`], and — when routing decoded the payload and ignored it
/// ([`Decision::Ignored`], [`Decision::UntrustedCommand`]) — what the
/// delivery is about, read from that decode. `None` otherwise: for a body
/// ignored undecoded, [`about`] reads it without a full decode.
pub fn route_about(
    event: &str,
    delivery: &str,
    body: &[u8],
    rules: &Rules,
    trust: &TrustConfig,
) -> Result<(Decision, Option<About>), DecodeError> {
    route_about_at(event, delivery, body, rules, trust, Utc::now())
}

fn route_about_at(
    event: &str,
    delivery: &str,
    body: &[u8],
    rules: &Rules,
    trust: &TrustConfig,
    now: DateTime<Utc>,
) -> Result<(Decision, Option<About>), DecodeError> {
    if event == "ping" {
        return Ok((Decision::Ping, None));
    }
    let not_routed = || {
        Ok((
            Decision::ignored(format!("event '{event}' is not routed")),
            None,
        ))
    };
    let mut raw = RawBody::new(body);
    // Slash commands do not depend on the rules: an issue comment that may
    // hold one is decoded even when no rule routes issue comments.
    let maybe_command =
        event == command::COMMAND_EVENT && raw.may_contain_any(&[command::COMMAND_PREFIX]);
    if !maybe_command && !rules.routes_event(event) {
        return not_routed();
    }
    check_delivery_id(delivery)?;
    if let (false, Some(commands)) = (maybe_command, rules.commands_needed(event)) {
        if !raw.may_contain_any(commands) {
            return Ok((Decision::ignored("no rule matched"), None));
        }
    }
    let p: Payload<'_> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    let decision = decide(&p, event, delivery, maybe_command, rules, trust, now)?;
    let about = matches!(
        decision,
        Decision::Ignored { .. } | Decision::UntrustedCommand { .. }
    )
    .then(|| p.about());
    Ok((decision, about))
}

/// The decision on a decoded payload.
fn decide(
    p: &Payload<'_>,
    event: &str,
    delivery: &str,
    maybe_command: bool,
    rules: &Rules,
    trust: &TrustConfig,
    now: DateTime<Utc>,
) -> Result<Decision, DecodeError> {
    let not_routed = || Ok(Decision::ignored(format!("event '{event}' is not routed")));
    let missing = |field: &'static str| DecodeError::Missing {
        field,
        event: event.to_string(),
    };
    let action = p.action.as_deref().ok_or_else(|| missing("action"))?;
    let is_comment_event = COMMENT_EVENTS.contains(&event);
    let comment = match (&p.comment, is_comment_event) {
        (Some(c), true) => Some(c),
        (None, true) => return Err(missing("comment")),
        _ => None,
    };
    if maybe_command {
        if let Some(c) = comment {
            if let Some(d) = command_decision(p, event, action, c, delivery, trust)? {
                return Ok(d);
            }
        }
        if !rules.routes_event(event) {
            return not_routed();
        }
    }
    let facts = EventFacts {
        event,
        action,
        label: p.label.as_ref().map(|l| &*l.name),
        comment: comment.map(|c| &*c.body),
    };
    let Some(matched) = rules.find(&facts) else {
        return Ok(Decision::ignored("no rule matched"));
    };
    let sender = &*p.sender.as_ref().ok_or_else(|| missing("sender"))?.login;
    let repo = p.repository.as_ref().ok_or_else(|| missing("repository"))?;
    if !git::is_valid_repository(&repo.full_name) {
        return Err(DecodeError::Invalid {
            field: "repository.full_name",
            reason: format!("{:?} is not owner/name", &*repo.full_name),
        });
    }
    let subject = Subject::from_payload(p, event).ok_or_else(|| {
        missing(if event.starts_with("issue") {
            "issue"
        } else {
            "pull_request"
        })
    })?;
    let who = (subject.author, subject.association);
    if matched.rule.trust == Trust::Trusted
        && !trust::is_trusted(trust, action, sender, who, comment)
    {
        return Ok(Decision::ignored("untrusted"));
    }
    let checkout = subject.checkout(repo)?;
    let task = build_task(
        &TaskParts {
            event,
            action,
            delivery,
            sender,
            repo_id: repo.id,
            repository: &repo.full_name,
            default_branch: repo.default_branch.as_deref().unwrap_or(""),
            subject: &subject,
            comment,
            label: facts.label,
            matched,
            checkout,
            installation: p.installation.as_ref().map(|i| i.id),
            now,
        },
        rules,
    )?;
    Ok(Decision::Task(Box::new(task)))
}

/// A new comment whose first line is a slash command: the command, if its
/// author is trusted (the same check as trusted rules), else
/// [`Decision::UntrustedCommand`]. `None`: not a command.
fn command_decision(
    p: &Payload<'_>,
    event: &str,
    action: &str,
    comment: &Comment<'_>,
    delivery: &str,
    trust: &TrustConfig,
) -> Result<Option<Decision>, DecodeError> {
    if action != "created" {
        return Ok(None);
    }
    let Some(kind) = command::parse(&comment.body) else {
        return Ok(None);
    };
    let missing = |field: &'static str| DecodeError::Missing {
        field,
        event: event.to_string(),
    };
    let repo = p.repository.as_ref().ok_or_else(|| missing("repository"))?;
    if !git::is_valid_repository(&repo.full_name) {
        return Err(DecodeError::Invalid {
            field: "repository.full_name",
            reason: format!("{:?} is not owner/name", &*repo.full_name),
        });
    }
    let issue = p.issue.as_ref().ok_or_else(|| missing("issue"))?;
    let sender = &*comment.user.login;
    let author = issue.user.as_ref().map_or("", |u| &*u.login);
    let who = (author, &*issue.author_association);
    if !trust::is_trusted(trust, action, sender, who, Some(comment)) {
        return Ok(Some(Decision::UntrustedCommand {
            command: kind,
            login: sender.to_string(),
        }));
    }
    Ok(Some(Decision::Command(Box::new(Command {
        command: kind,
        repository: repo.full_name.to_string(),
        number: issue.number,
        is_pr: issue.pull_request.is_some(),
        comment_id: comment.id,
        sender: sender.to_string(),
        installation: p.installation.as_ref().map(|i| i.id),
        delivery: delivery.to_string(),
    }))))
}

fn check_delivery_id(delivery: &str) -> Result<(), DecodeError> {
    let ok = (1..=128).contains(&delivery.len())
        && delivery
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(DecodeError::Invalid {
            field: "X-GitHub-Delivery",
            reason: "expected 1-128 characters of [A-Za-z0-9._-]".into(),
        })
    }
}

/// The issue or pull request an event is about, whichever payload shape
/// carried it.
struct Subject<'p> {
    number: u64,
    is_pr: bool,
    title: &'p str,
    body: &'p str,
    url: &'p str,
    author: &'p str,
    association: &'p str,
    labels: Vec<&'p str>,
    /// PR head: (ref, repository clone URL if the head repository exists).
    head: Option<(&'p str, Option<&'p str>)>,
    /// `owner/name` of the PR's head repository (a fork, or the base).
    head_repository: Option<&'p str>,
    /// The PR head's commit (check runs), when the payload has it.
    head_sha: Option<&'p str>,
    base_ref: Option<&'p str>,
}

impl<'p> Subject<'p> {
    fn from_payload(p: &'p Payload<'_>, event: &str) -> Option<Subject<'p>> {
        if event.starts_with("issue") {
            let i = p.issue.as_ref()?;
            Some(Subject {
                number: i.number,
                is_pr: i.pull_request.is_some(),
                title: &i.title,
                body: i.body.as_deref().unwrap_or(""),
                url: &i.html_url,
                author: i.user.as_ref().map_or("", |u| &u.login),
                association: &i.author_association,
                labels: i.labels.iter().map(|l| &*l.name).collect(),
                head: None,
                head_repository: None,
                head_sha: None,
                base_ref: None,
            })
        } else {
            let pr = p.pull_request.as_ref()?;
            Some(Subject {
                number: pr.number,
                is_pr: true,
                title: &pr.title,
                body: pr.body.as_deref().unwrap_or(""),
                url: &pr.html_url,
                author: pr.user.as_ref().map_or("", |u| &u.login),
                association: &pr.author_association,
                labels: pr.labels.iter().map(|l| &*l.name).collect(),
                head: Some((
                    &pr.head.git_ref,
                    pr.head.repo.as_ref().map(|r| &*r.clone_url),
                )),
                head_repository: pr.head.repo.as_ref().map(|r| &*r.full_name),
                head_sha: pr.head.sha.as_deref().filter(|s| is_commit_sha(s)),
                base_ref: pr.base.as_ref().map(|b| &*b.git_ref),
            })
        }
    }

    /// Issue → the repository's default branch. PR with a known head → the
    /// head branch of the head repository (possibly a fork). PR seen through
    /// an issue comment (no head in the payload) or with a deleted fork →
    /// `refs/pull/<n>/head` of the base repository, which GitHub keeps.
    fn checkout(&self, repo: &payload::Repository<'_>) -> Result<Checkout, DecodeError> {
        let base_url = repo.clone_url.as_deref();
        let (url, git_ref) = match (self.is_pr, self.head) {
            (false, _) => (base_url, repo.default_branch.as_deref().map(str::to_string)),
            (true, Some((head_ref, Some(head_url)))) => {
                (Some(head_url), Some(head_ref.to_string()))
            }
            (true, _) => (base_url, Some(format!("refs/pull/{}/head", self.number))),
        };
        let url = url.ok_or(DecodeError::Invalid {
            field: "repository.clone_url",
            reason: "missing".into(),
        })?;
        let git_ref = git_ref.ok_or(DecodeError::Invalid {
            field: "repository.default_branch",
            reason: "missing".into(),
        })?;
        if git::https_origin(url).is_none() {
            return Err(DecodeError::Invalid {
                field: "clone_url",
                reason: format!("{url:?} is not a plain https:// URL"),
            });
        }
        if !git::is_valid_git_ref(&git_ref) {
            return Err(DecodeError::Invalid {
                field: "ref",
                reason: format!("{git_ref:?} is not a valid git ref"),
            });
        }
        Ok(Checkout {
            clone_url: url.to_string(),
            git_ref,
        })
    }
}

struct TaskParts<'a, 'p> {
    event: &'a str,
    action: &'a str,
    delivery: &'a str,
    sender: &'a str,
    repo_id: u64,
    repository: &'a str,
    default_branch: &'a str,
    subject: &'a Subject<'p>,
    comment: Option<&'a Comment<'p>>,
    label: Option<&'a str>,
    matched: RuleMatch<'a, 'a>,
    checkout: Checkout,
    installation: Option<u64>,
    now: DateTime<Utc>,
}

/// 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
fn is_commit_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The dedup key of a non-comment delivery: `github:delivery:<id>`.
pub fn delivery_dedup_key(delivery: &str) -> String {
    format!("github:delivery:{delivery}")
}

/// Dedup keys:
///
/// * **Comment** → `github:<event>:<repository id>:<comment id>`. The comment
///   is the request; the same comment seen twice (a redelivery, or a second
///   webhook on the org and the repo with different delivery ids) is one task.
/// * **Everything else, label events included** → `github:delivery:<id>`.
///   GitHub keeps `X-GitHub-Delivery` on redeliveries, so retries dedupe,
///   while removing and re-adding a label — the natural way to ask the
///   agent to try again — is a new delivery and a new task. Keying on
///   issue + label instead would make re-labelling silently do nothing until
///   the old Job's TTL expired, and then suddenly work again.
fn build_task(t: &TaskParts<'_, '_>, rules: &Rules) -> Result<Task, DecodeError> {
    let s = t.subject;
    let rule = t.matched.rule;
    let ctx = PromptContext {
        event: t.event,
        action: t.action,
        kind: &rule.kind,
        repository: t.repository,
        number: s.number,
        is_pull_request: s.is_pr,
        title: s.title,
        body: s.body,
        url: t.comment.map_or(s.url, |c| &c.html_url),
        author: s.author,
        sender: t.sender,
        label: t.label.unwrap_or(""),
        comment: t.comment.map_or("", |c| &c.body),
        instruction: t.matched.instruction.unwrap_or(""),
        labels: s.labels.clone(),
        head_ref: s.head.map_or("", |(r, _)| r),
        base_ref: s.base_ref.unwrap_or(t.default_branch),
    };
    let prompt = rules.render(rule, &ctx)?;
    let dedup_key = match t.comment {
        Some(c) => format!("github:{}:{}:{}", t.event, t.repo_id, c.id),
        None => delivery_dedup_key(t.delivery),
    };
    let mut labels = BTreeMap::new();
    labels.insert("event".to_string(), t.event.to_string());
    labels.insert("action".to_string(), t.action.to_string());
    labels.insert("rule".to_string(), rule.name.clone());
    if let Some(l) = t.label {
        labels.insert("label".to_string(), l.to_string());
    }
    if let Some(h) = s.head_repository {
        labels.insert("head_repository".to_string(), h.to_string());
    }
    // What reporting back needs: where to react, through which App
    // installation, on which commit, and how the rule wants it reported.
    if let Some(c) = t.comment {
        labels.insert("comment_id".to_string(), c.id.to_string());
    }
    if let Some(i) = t.installation {
        labels.insert("installation_id".to_string(), i.to_string());
    }
    if let Some(sha) = s.head_sha {
        labels.insert("head_sha".to_string(), sha.to_string());
    }
    labels.insert("report".to_string(), rule.report.as_str().to_string());
    Ok(Task {
        source: TaskSource::Github,
        kind: rule.kind.clone(),
        priority: rule.priority,
        repository: Some(t.repository.to_string()),
        issue_number: (!s.is_pr).then_some(s.number),
        pr_number: s.is_pr.then_some(s.number),
        checkout: Some(t.checkout.clone()),
        title: crate::task::truncate_with_marker(s.title, 1024),
        prompt,
        url: Some(ctx.url.to_string()),
        delivery_id: Some(t.delivery.to_string()),
        dedup_key,
        requested_by: Some(t.sender.to_string()),
        labels,
        created_at: t.now,
    })
}

#[cfg(test)]
mod tests;
