//! The parts of a GitHub webhook payload that routing reads, decoded typed
//! and borrowed from the request body. Everything else in the (often
//! 10–30 KB) payload is skipped by the parser without being materialised.
//!
//! Strings are [`Text`], a `Cow<str>` that borrows from the body unless the
//! JSON string contains escapes (`\n`, `\"`), in which case it must own the
//! unescaped copy.

use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;
use std::ops::Deref;

/// A JSON string borrowed from the body where possible.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Top level of any routed event.
#[derive(Debug, Deserialize)]
pub struct Payload<'a> {
    #[serde(borrow, default)]
    pub action: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub sender: Option<User<'a>>,
    #[serde(borrow, default)]
    pub repository: Option<Repository<'a>>,
    #[serde(borrow, default)]
    pub issue: Option<Issue<'a>>,
    #[serde(borrow, default)]
    pub comment: Option<Comment<'a>>,
    #[serde(borrow, default)]
    pub pull_request: Option<PullRequest<'a>>,
    #[serde(borrow, default)]
    pub label: Option<Label<'a>>,
    /// The GitHub App installation the delivery came through (App webhooks).
    #[serde(default)]
    pub installation: Option<Installation>,
}

#[derive(Debug, Deserialize)]
pub struct Installation {
    pub id: u64,
}

#[derive(Debug, Deserialize)]
pub struct User<'a> {
    #[serde(borrow)]
    pub login: Text<'a>,
}

#[derive(Debug, Deserialize)]
pub struct Repository<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub full_name: Text<'a>,
    #[serde(borrow, default)]
    pub default_branch: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub clone_url: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Label<'a> {
    #[serde(borrow)]
    pub name: Text<'a>,
}

#[derive(Debug, Deserialize)]
pub struct Issue<'a> {
    pub number: u64,
    #[serde(borrow)]
    pub title: Text<'a>,
    #[serde(borrow, default)]
    pub body: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub labels: Vec<Label<'a>>,
    #[serde(borrow)]
    pub html_url: Text<'a>,
    #[serde(borrow)]
    pub author_association: Text<'a>,
    #[serde(borrow, default)]
    pub user: Option<User<'a>>,
    /// Present (an object) when the issue is a pull request.
    #[serde(default)]
    pub pull_request: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
pub struct Comment<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub body: Text<'a>,
    #[serde(borrow)]
    pub author_association: Text<'a>,
    #[serde(borrow)]
    pub html_url: Text<'a>,
    #[serde(borrow)]
    pub user: User<'a>,
}

#[derive(Debug, Deserialize)]
pub struct PullRequest<'a> {
    pub number: u64,
    #[serde(borrow)]
    pub title: Text<'a>,
    #[serde(borrow, default)]
    pub body: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub labels: Vec<Label<'a>>,
    #[serde(borrow)]
    pub html_url: Text<'a>,
    #[serde(borrow)]
    pub author_association: Text<'a>,
    #[serde(borrow, default)]
    pub user: Option<User<'a>>,
    #[serde(borrow)]
    pub head: Branch<'a>,
    #[serde(borrow, default)]
    pub base: Option<Branch<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Branch<'a> {
    #[serde(borrow, rename = "ref")]
    pub git_ref: Text<'a>,
    /// The commit at the branch's tip (a check run's `head_sha`).
    #[serde(borrow, default)]
    pub sha: Option<Text<'a>>,
    /// `null` when the head repository (a fork) was deleted.
    #[serde(borrow, default)]
    pub repo: Option<HeadRepo<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct HeadRepo<'a> {
    #[serde(borrow)]
    pub full_name: Text<'a>,
    #[serde(borrow)]
    pub clone_url: Text<'a>,
}
