//! The parts of a GitHub webhook payload that routing reads, decoded typed
//! and borrowed from the request body. Everything else in the (often
//! 10–30 KB) payload is skipped by the parser without being materialised.
//!
//! Strings are [`Text`], a `Cow<str>` that borrows from the body unless the
//! JSON string contains escapes (`\n`, `\"`), in which case it must own the
//! unescaped copy.

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::ops::Deref;

use super::About;

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
    /// The top-level `number` (pull request events), when it is an
    /// unsigned integer; a value of another type is skipped, not refused.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub number: Option<u64>,
}

impl Payload<'_> {
    /// What the delivery is about (as [`super::about`] reads it).
    pub fn about(&self) -> About {
        About {
            repository: self.repository.as_ref().map(|r| r.full_name.to_string()),
            number: self
                .issue
                .as_ref()
                .map(|i| i.number)
                .or(self.pull_request.as_ref().map(|p| p.number))
                .or(self.number),
            sender: self.sender.as_ref().map(|s| s.login.to_string()),
            action: self.action.as_ref().map(|a| a.to_string()),
        }
    }
}

/// An unsigned integer, or `None` for any other value (skipped).
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Lenient;
    impl<'de> Visitor<'de> for Lenient {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any value")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            lenient_u64(d)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(Lenient)
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
