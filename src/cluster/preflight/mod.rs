//! Preflight: what the service needs from the cluster, checked at start and
//! every `PREFLIGHT_INTERVAL_SECONDS` while it runs — the API server
//! answers, the namespace exists, and the service account may make each
//! call in [`crate::cluster::permissions::REQUIRED`]; then, for each tenant
//! namespace a rule names, that it exists and that each call of
//! [`crate::cluster::permissions::TENANT`] is allowed there ([`tenants`]).
//!
//! This module is the pure part: [`evaluate`] turns what the probes saw
//! ([`Observation`]) into a [`Report`] of checks worded for people, and
//! [`changes`] says which checks started failing or recovered between two
//! reports (so each is logged once). [`crate::cluster::probe`] does the API calls;
//! [`runner`] repeats them, keeps the latest report for `/ready` and logs
//! the changes; `orchestrator doctor` prints one report.

pub mod kueue;
pub mod runner;
pub mod tenants;

pub use tenants::{Tenant, TenantSeen};

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::cluster::permissions::Permission;

/// What the API server said about the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceSeen {
    Exists,
    Missing,
    /// Could not tell (for example no permission to look); the reason.
    Unknown(String),
}

/// What a `SelfSubjectAccessReview` answered for one permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessSeen {
    Allowed,
    /// Denied; the authorizer's reason, if it gave one.
    Denied(String),
    /// The review failed; the reason.
    Unknown(String),
}

/// The raw results of one round of probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The API server could not be reached (transport failure or an error
    /// answer to the version request); the reason in a few words.
    Unreachable(String),
    /// The API server answered.
    Reached {
        /// `gitVersion` of the API server.
        version: String,
        namespace: NamespaceSeen,
        /// `None`: the API server does not serve `SelfSubjectAccessReview`
        /// (404), so permissions cannot be checked.
        access: Option<Vec<(Permission, AccessSeen)>>,
        /// The same of each tenant namespace.
        tenants: Vec<TenantSeen>,
    },
}

/// Where the checks point: the API server URL, the namespace and the
/// tenant namespaces the rules name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub namespace: String,
    pub tenants: Vec<Tenant>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
    /// Could not be checked; does not make the service unready.
    Unknown,
}

/// One check and its result, worded for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `api_server`, `namespace`, `permission` or `permissions` (all of them,
    /// when they could not be checked); in Kueue mode also `kueue_api`,
    /// `kueue_local_queue` and `kueue_priority_class` ([`kueue`]).
    pub check: &'static str,
    pub result: Outcome,
    /// What was found, e.g. `namespace "claude-jobs" does not exist`.
    pub message: String,
    /// For a failed check: what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// For `permission`: the verb and the resource (`jobs.batch`); for the
    /// Kueue checks of one object, the object
    /// (`localqueues.kueue.x-k8s.io/agents`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verb: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// For the checks of a tenant namespace: which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Check {
    fn new(check: &'static str, result: Outcome, message: String) -> Self {
        Check {
            check,
            result,
            message,
            fix: None,
            verb: None,
            resource: None,
            namespace: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// A key that stays the same for the same check across rounds.
    pub fn key(&self) -> String {
        let own = match (self.verb, &self.resource) {
            (Some(v), Some(r)) => format!("{} {v} {r}", self.check),
            (None, Some(r)) => format!("{} {r}", self.check),
            _ => self.check.to_string(),
        };
        match &self.namespace {
            Some(ns) => format!("{own} in {ns}"),
            None => own,
        }
    }
}

/// The checks of one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The failed checks (those of tenant namespaces included).
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.result == Outcome::Failed)
    }

    /// True when no check of the service itself failed (unknown ones do
    /// not count, nor those of a tenant namespace: see [`Self::degraded`]).
    pub fn passed(&self) -> bool {
        !self.failures().any(|c| c.namespace.is_none())
    }

    /// The failed checks of tenant namespaces. They do not make the
    /// service unready: only the rules sending Jobs there fail (their
    /// deliveries are answered 503 naming the namespace); `/ready` lists
    /// them as `degraded`, the log names each once, `doctor` fails.
    pub fn degraded(&self) -> impl Iterator<Item = &Check> {
        self.failures().filter(|c| c.namespace.is_some())
    }

    /// The report as `/ready` shows it to anyone who can reach the service:
    /// the same checks, outcomes and fixes, with every internal address
    /// (the API server's URL, IP addresses, `host:port`) left out of the
    /// words. The log and `orchestrator doctor` keep the full report.
    pub fn public(&self) -> Report {
        let checks = self
            .checks
            .iter()
            .map(|c| Check {
                message: without_addresses(&c.message),
                fix: c.fix.as_deref().map(without_addresses),
                ..c.clone()
            })
            .collect();
        Report { checks }
    }

    /// True when the API server could not be reached.
    pub fn unreachable(&self) -> bool {
        self.checks
            .iter()
            .any(|c| c.check == "api_server" && c.result == Outcome::Failed)
    }
}

/// True for a word that names a network address: a URL, an IP address
/// (v4 or v6, with or without a port) or `host:port`.
fn is_address(word: &str) -> bool {
    let w = word
        .trim_matches(|c: char| matches!(c, '(' | ')' | '"' | '\'' | ',' | ';' | '<' | '>' | '`'));
    if w.contains("://") {
        return true;
    }
    let host_port = |w: &str| match w.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']'))
        }
        None => false,
    };
    [w, w.trim_end_matches([':', '.'])].iter().any(|w| {
        let bare = w.trim_start_matches('[').trim_end_matches(']');
        w.parse::<std::net::SocketAddr>().is_ok()
            || bare.parse::<std::net::IpAddr>().is_ok()
            || host_port(w)
    })
}

/// `text` without the network addresses in it: `at <address>` is dropped,
/// any other address becomes `(address hidden)`. Punctuation that followed
/// an address (`: reason`) is kept.
pub fn without_addresses(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let next_is_address = words.get(i + 1).is_some_and(|n| is_address(n));
        if matches!(w, "at" | "to" | "from") && next_is_address {
            let tail = trailing_punctuation(words[i + 1]);
            if let Some(last) = out.last_mut() {
                last.push_str(tail);
            }
            i += 2;
            continue;
        }
        if is_address(w) {
            out.push(format!("(address hidden){}", trailing_punctuation(w)));
        } else {
            out.push(w.to_string());
        }
        i += 1;
    }
    out.join(" ")
}

/// The `:`/`,`/`;`/`.` an address word ended with (`https://h:1:` → `:`).
fn trailing_punctuation(word: &str) -> &str {
    if word.ends_with(':') && word.matches(':').count() > 1 {
        ":"
    } else if word.ends_with([',', ';']) {
        &word[word.len() - 1..]
    } else {
        ""
    }
}

/// The latest report, shared with `/ready` (`None` until the first round).
pub type Latest = Arc<RwLock<Option<Report>>>;

/// How to fix a missing namespace.
pub fn namespace_fix(ns: &str) -> String {
    format!(
        "create it (kubectl create namespace {ns}) or set KUBERNETES_NAMESPACE to one that exists"
    )
}

/// The message of a missing namespace, as `/ready`, the log and clients say it.
pub fn namespace_missing_message(ns: &str) -> String {
    format!("namespace {ns:?} does not exist")
}

/// Turns one round of probe results into checks.
pub fn evaluate(target: &Target, seen: &Observation) -> Report {
    let ns = &target.namespace;
    let (version, namespace, access) = match seen {
        Observation::Unreachable(reason) => {
            let c = Check::new(
                "api_server",
                Outcome::Failed,
                format!("API server unreachable at {}: {reason}", target.server),
            )
            .fix("check the kubeconfig (KUBECONFIG, ~/.kube/config) or, in a cluster, the pod's service account and network");
            return Report { checks: vec![c] };
        }
        Observation::Reached {
            version,
            namespace,
            access,
            tenants: _,
        } => (version, namespace, access),
    };
    let mut checks = vec![Check::new(
        "api_server",
        Outcome::Ok,
        format!(
            "API server at {} answers (version {version})",
            target.server
        ),
    )];
    checks.push(match namespace {
        NamespaceSeen::Exists => {
            Check::new("namespace", Outcome::Ok, format!("namespace {ns:?} exists"))
        }
        NamespaceSeen::Missing => {
            Check::new("namespace", Outcome::Failed, namespace_missing_message(ns))
                .fix(namespace_fix(ns))
        }
        NamespaceSeen::Unknown(why) => Check::new(
            "namespace",
            Outcome::Unknown,
            format!("could not check namespace {ns:?}: {why}"),
        ),
    });
    match access {
        None => checks.push(Check::new(
            "permissions",
            Outcome::Unknown,
            "could not check permissions: the API server does not serve SelfSubjectAccessReview (authorization.k8s.io/v1)".into(),
        )),
        Some(list) => checks.extend(list.iter().map(|(p, a)| permission_check(p, a, ns))),
    }
    if let Observation::Reached { tenants, .. } = seen {
        checks.extend(tenants::checks(target, tenants));
    }
    Report { checks }
}

pub(crate) fn permission_check(p: &Permission, seen: &AccessSeen, ns: &str) -> Check {
    let resource = p.resource_name();
    let what = p.object();
    let mut c = match seen {
        AccessSeen::Allowed => Check::new(
            "permission",
            Outcome::Ok,
            format!("can {} {what} in namespace {ns:?}", p.verb),
        ),
        AccessSeen::Denied(_) => Check::new(
            "permission",
            Outcome::Failed,
            format!("cannot {} {what} in namespace {ns:?}", p.verb),
        )
        .fix(
            "apply the Role and RoleBinding in k8s/ (kubectl apply -k k8s) to the service account",
        ),
        AccessSeen::Unknown(why) => Check::new(
            "permission",
            Outcome::Unknown,
            format!(
                "could not check whether it may {} {what} in namespace {ns:?}: {why}",
                p.verb
            ),
        ),
    };
    c.verb = Some(p.verb);
    c.resource = Some(resource);
    c
}

/// A check whose state changed between two rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// Failed now, did not before (or this is the first round).
    Failing(&'a Check),
    /// Could not be checked now, could before (or this is the first round).
    Unknown(&'a Check),
    /// Failed or was unknown before, passes now.
    Recovered(&'a Check),
}

/// What changed from `before` (None: the first round) to `now`. A check
/// that keeps failing, even with other words (another connection error),
/// is not a change.
pub fn changes<'a>(before: Option<&Report>, now: &'a Report) -> Vec<Change<'a>> {
    let prev =
        |key: &str| before.and_then(|r| r.checks.iter().find(|c| c.key() == key).map(|c| c.result));
    let mut out = Vec::new();
    for c in &now.checks {
        let was = prev(&c.key());
        match (was, c.result) {
            (Some(Outcome::Failed), Outcome::Failed)
            | (Some(Outcome::Unknown), Outcome::Unknown) => {}
            (_, Outcome::Failed) => out.push(Change::Failing(c)),
            (_, Outcome::Unknown) => out.push(Change::Unknown(c)),
            (Some(Outcome::Failed | Outcome::Unknown), Outcome::Ok) => {
                out.push(Change::Recovered(c))
            }
            (_, Outcome::Ok) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
