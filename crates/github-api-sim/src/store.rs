//! The in-memory state: comments, reactions, check runs, seeded pull requests
//! and installations, hook deliveries, issued tokens, rate-limit buckets and
//! the request log. Every collection is capped ([`crate::Limits`]).

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::Limits;

/// GitHub's timestamp form: RFC 3339, seconds, `Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The author of what a request creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub login: String,
    pub id: u64,
    /// "Bot" (installation tokens) or "User" (static tokens).
    pub kind: &'static str,
}

impl User {
    pub fn json(&self) -> Value {
        json!({
            "login": self.login, "id": self.id,
            "node_id": format!("MDM6Qm90{}", self.id),
            "type": self.kind, "site_admin": false,
            "html_url": format!("https://github.com/{}", self.login.replace("[bot]", "")),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub repo: String,
    pub issue: u64,
    pub body: String,
    pub user: User,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Issue(u64),
    Comment(u64),
}

#[derive(Debug, Clone)]
pub struct Reaction {
    pub id: u64,
    pub repo: String,
    pub subject: Subject,
    pub content: String,
    pub user: User,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct CheckRun {
    pub id: u64,
    pub repo: String,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub output: Value,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub installation_id: u64,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub repo: String,
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    pub state: String,
    pub title: String,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: u64,
    pub guid: String,
    pub delivered_at: DateTime<Utc>,
    pub redelivery: bool,
    pub duration: f64,
    pub status_code: u16,
    /// Set when the attempt failed before an HTTP answer (status_code 0).
    pub error: Option<String>,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<u64>,
    pub repository_id: Option<u64>,
    pub payload: Value,
    pub request_headers: BTreeMap<String, String>,
    pub response_headers: BTreeMap<String, String>,
    pub response_body: String,
}

impl Delivery {
    pub fn status(&self) -> String {
        match (self.status_code, &self.error) {
            (200..=299, _) => "OK".into(),
            (0, Some(e)) => e.clone(),
            (0, None) => "failed to connect".into(),
            (c, _) => format!("Invalid HTTP Response: {c}"),
        }
    }

    pub fn summary(&self) -> Value {
        json!({
            "id": self.id, "guid": self.guid, "delivered_at": ts(self.delivered_at),
            "redelivery": self.redelivery, "duration": self.duration,
            "status": self.status(), "status_code": self.status_code,
            "event": self.event, "action": self.action,
            "installation_id": self.installation_id, "repository_id": self.repository_id,
            "throttled_at": null,
        })
    }

    pub fn detail(&self, base: &str) -> Value {
        let mut v = self.summary();
        v["url"] = json!(format!("{base}/app/hook/deliveries/{}", self.id));
        v["request"] = json!({"headers": self.request_headers, "payload": self.payload});
        v["response"] = json!({"headers": self.response_headers, "payload": self.response_body});
        v
    }
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub installation_id: u64,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    /// Unix seconds when the window resets.
    pub reset: i64,
    pub used: u32,
}

#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub installation_tokens: u64,
    pub jwt_requests: u64,
    pub requests: u64,
}

/// Everything the simulator stores, behind one mutex.
pub struct Store {
    pub limits: Limits,
    next_id: u64,
    pub comments: BTreeMap<u64, Comment>,
    pub reactions: BTreeMap<u64, Reaction>,
    pub check_runs: BTreeMap<u64, CheckRun>,
    pub pulls: HashMap<(String, u64), Pull>,
    pub installations: HashMap<String, u64>,
    pub deliveries: BTreeMap<u64, Delivery>,
    /// Where redelivery attempts are POSTed: (url, webhook secret).
    pub target: Option<(String, String)>,
    pub tokens: HashMap<String, IssuedToken>,
    pub buckets: HashMap<String, Bucket>,
    pub requests: VecDeque<LoggedRequest>,
    pub counts: Counts,
}

/// Insert into a capped map, dropping the oldest (lowest id) entries first.
pub fn insert_capped<T>(map: &mut BTreeMap<u64, T>, cap: usize, id: u64, value: T) {
    while map.len() >= cap.max(1) {
        map.pop_first();
    }
    map.insert(id, value);
}

impl Store {
    pub fn new(limits: Limits) -> Store {
        Store {
            limits,
            next_id: 1,
            comments: BTreeMap::new(),
            reactions: BTreeMap::new(),
            check_runs: BTreeMap::new(),
            pulls: HashMap::new(),
            installations: HashMap::new(),
            deliveries: BTreeMap::new(),
            target: None,
            tokens: HashMap::new(),
            buckets: HashMap::new(),
            requests: VecDeque::new(),
            counts: Counts::default(),
        }
    }

    /// Drops everything but the id counter (ids stay unique across resets).
    pub fn reset(&mut self) {
        let next = self.next_id;
        *self = Store::new(self.limits.clone());
        self.next_id = next;
    }

    /// A fresh id, shared by every kind of object.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn log(&mut self, method: &str, path: &str, status: u16) {
        self.counts.requests += 1;
        let cap = self.limits.max_requests_logged;
        if cap == 0 {
            return;
        }
        while self.requests.len() >= cap {
            self.requests.pop_front();
        }
        self.requests.push_back(LoggedRequest {
            method: method.to_string(),
            path: path.to_string(),
            status,
        });
    }

    /// Remembers an issued installation token, dropping expired ones (then
    /// the soonest to expire) at the cap.
    pub fn remember_token(&mut self, token: String, issued: IssuedToken, now: DateTime<Utc>) {
        let cap = self.limits.max_installation_tokens.max(1);
        if self.tokens.len() >= cap {
            self.tokens.retain(|_, t| t.expires_at > now);
        }
        while self.tokens.len() >= cap {
            let soonest = self
                .tokens
                .iter()
                .min_by_key(|(_, t)| t.expires_at)
                .map(|(k, _)| k.clone());
            match soonest {
                Some(k) => self.tokens.remove(&k),
                None => break,
            };
        }
        self.tokens.insert(token, issued);
    }

    /// The installation id of `repo` (1 unless set).
    pub fn installation_of(&self, repo: &str) -> u64 {
        self.installations.get(repo).copied().unwrap_or(1)
    }

    /// Keeps a small seeded map bounded (pull requests, installations).
    pub fn seeded_room<K: Clone + Eq + std::hash::Hash, V>(
        map: &mut HashMap<K, V>,
        cap: usize,
        key: &K,
    ) {
        if !map.contains_key(key) && map.len() >= cap.max(1) {
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
    }

    /// The `/_sim/state` document.
    pub fn snapshot(&self, faults: Value) -> Value {
        let comments: Vec<Value> = self
            .comments
            .values()
            .map(|c| {
                json!({
                    "id": c.id, "repo": c.repo, "issue": c.issue, "body": c.body,
                    "user": c.user.login, "created_at": ts(c.created_at), "updated_at": ts(c.updated_at),
                })
            })
            .collect();
        let reactions: Vec<Value> = self
            .reactions
            .values()
            .map(|r| {
                let (subject, n) = match r.subject {
                    Subject::Issue(n) => ("issue", n),
                    Subject::Comment(id) => ("comment", id),
                };
                json!({
                    "id": r.id, "repo": r.repo, "subject": subject, "number_or_comment_id": n,
                    "content": r.content, "user": r.user.login, "created_at": ts(r.created_at),
                })
            })
            .collect();
        let check_runs: Vec<Value> = self
            .check_runs
            .values()
            .map(|c| {
                json!({
                    "id": c.id, "repo": c.repo, "name": c.name, "head_sha": c.head_sha,
                    "status": c.status, "conclusion": c.conclusion, "output": c.output,
                    "details_url": c.details_url, "external_id": c.external_id,
                    "started_at": ts(c.started_at), "completed_at": c.completed_at.map(ts),
                })
            })
            .collect();
        let pulls: Vec<Value> = {
            let mut p: Vec<&Pull> = self.pulls.values().collect();
            p.sort_by(|a, b| (&a.repo, a.number).cmp(&(&b.repo, b.number)));
            p.iter()
                .map(|p| {
                    json!({"repo": p.repo, "number": p.number, "head_sha": p.head_sha,
                        "head_ref": p.head_ref, "base_ref": p.base_ref, "state": p.state})
                })
                .collect()
        };
        let installations: BTreeMap<&String, &u64> = self.installations.iter().collect();
        let deliveries: Vec<Value> = self.deliveries.values().map(Delivery::summary).collect();
        let requests: Vec<Value> = self
            .requests
            .iter()
            .map(|r| json!({"method": r.method, "path": r.path, "status": r.status}))
            .collect();
        json!({
            "comments": comments,
            "reactions": reactions,
            "check_runs": check_runs,
            "pulls": pulls,
            "installations": installations,
            "deliveries": deliveries,
            "delivery_target": self.target.as_ref().map(|(u, _)| u),
            "faults": faults,
            "requests": requests,
            "counts": {
                "installation_tokens": self.counts.installation_tokens,
                "jwt_requests": self.counts.jwt_requests,
                "requests": self.counts.requests,
            },
        })
    }
}
