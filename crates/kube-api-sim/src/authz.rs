//! Authentication and authorization as a real API server does them, small:
//! bearer tokens map to users, and a token may carry an RBAC-style allow-list
//! (the `rules` of a Role). A request outside its token's allow-list is
//! answered `403 Forbidden` with kube-apiserver's message, e.g.
//! `jobs.batch "x" is forbidden: User "u" cannot delete resource "jobs" in API
//! group "batch" in the namespace "default"`.
//!
//! A token may also hold rules bound in one namespace each (a Role in that
//! namespace and a RoleBinding to it), as a service account bound to a
//! Role in several namespaces does: `--token-rules` reads them from the
//! Roles' `metadata.namespace`.
//!
//! A token without rules may do everything; with no token configured at all,
//! requests are anonymous and unrestricted. Discovery, `/version`, health and
//! the `/_sim/` admin paths are never restricted (as `system:discovery` and
//! `system:basic-user` allow them to every user in a real cluster).
//!
//! The self-review APIs answer from the same tables, so `kubectl auth can-i`
//! and `kubectl auth whoami` work: `SelfSubjectAccessReview` and
//! `SelfSubjectRulesReview` (`authorization.k8s.io/v1`) and
//! `SelfSubjectReview` (`authentication.k8s.io/v1`), see [`crate::reviews`].

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use k8s_openapi::api::rbac::v1::PolicyRule;

use super::error::ApiError;
use super::server::SimConfig;

/// An extra bearer token with its user and, optionally, what it may do.
#[derive(Debug, Clone, Default)]
pub struct TokenGrant {
    pub token: String,
    /// The user name reported in Forbidden messages and by `kubectl auth
    /// whoami`, e.g. `system:serviceaccount:orchestrator:orchestrator`.
    pub username: String,
    /// Groups besides `system:authenticated`.
    pub groups: Vec<String>,
    /// The allow-list; `None` allows everything.
    pub rules: Option<Vec<PolicyRule>>,
    /// Restricts the rules to one namespace, as a RoleBinding does; `None`
    /// applies them in every namespace. Cluster-wide requests (a list across
    /// all namespaces, cluster-scoped types) are denied when rules are set
    /// and this is set.
    pub namespace: Option<String>,
    /// Rules each bound in one namespace (a namespaced Role and a
    /// RoleBinding to it): allowed there, besides `rules`.
    pub namespaced: Vec<(String, Vec<PolicyRule>)>,
}

impl TokenGrant {
    /// A token for `username` limited to `rules` (in every namespace).
    pub fn with_rules(token: &str, username: &str, rules: Vec<PolicyRule>) -> Self {
        TokenGrant {
            token: token.into(),
            username: username.into(),
            rules: Some(rules),
            ..Default::default()
        }
    }

    /// A token for `username` holding the rules of the Roles and
    /// ClusterRoles in `text` (YAML or JSON, several documents): a Role
    /// with a `metadata.namespace` grants its rules in that namespace only
    /// (as a RoleBinding there would), the others everywhere.
    pub fn from_manifests(token: &str, username: &str, text: &str) -> Result<Self, String> {
        let mut everywhere = Vec::new();
        let mut namespaced: Vec<(String, Vec<PolicyRule>)> = Vec::new();
        for (ns, rules) in roles_in_manifests(text)? {
            match ns {
                None => everywhere.extend(rules),
                Some(ns) => match namespaced.iter_mut().find(|(n, _)| *n == ns) {
                    Some((_, r)) => r.extend(rules),
                    None => namespaced.push((ns, rules)),
                },
            }
        }
        Ok(TokenGrant {
            namespaced,
            ..TokenGrant::with_rules(token, username, everywhere)
        })
    }
}

/// Who made a request, as authentication found out.
#[derive(Debug, Clone)]
pub struct Identity {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub rules: Option<Vec<PolicyRule>>,
    pub namespace: Option<String>,
    /// Rules bound in one namespace each (see [`TokenGrant::namespaced`]).
    pub namespaced: Vec<(String, Vec<PolicyRule>)>,
}

/// The user of `SimConfig::token`.
pub const ADMIN_USER: &str = "orchestrator-sim:admin";

impl Identity {
    fn anonymous() -> Self {
        Identity {
            username: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            rules: None,
            namespace: None,
            namespaced: Vec::new(),
        }
    }

    fn admin() -> Self {
        Identity {
            username: ADMIN_USER.into(),
            uid: uid_of(ADMIN_USER),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            rules: None,
            namespace: None,
            namespaced: Vec::new(),
        }
    }

    fn of(g: &TokenGrant) -> Self {
        let mut groups = g.groups.clone();
        groups.push("system:authenticated".into());
        Identity {
            username: g.username.clone(),
            uid: uid_of(&g.username),
            groups,
            rules: g.rules.clone(),
            namespace: g.namespace.clone(),
            namespaced: g.namespaced.clone(),
        }
    }
}

/// A stable, made-up uid per user name (a UUID v5-like rendering of a hash).
fn uid_of(name: &str) -> String {
    let h = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        .to_be_bytes();
    uuid::Builder::from_random_bytes([
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[7], h[6], h[5], h[4], h[3], h[2], h[1],
        h[0],
    ])
    .into_uuid()
    .to_string()
}

/// Finds the caller from the `Authorization` header: 401 when a token is
/// required and the header names none we know.
pub fn authenticate(config: &SimConfig, headers: &HeaderMap) -> Result<Arc<Identity>, ApiError> {
    if config.token.is_none() && config.grants.is_empty() {
        return Ok(Arc::new(Identity::anonymous()));
    }
    let got = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .as_bytes();
    if let Some(t) = &config.token {
        if constant_time_eq(got, t.as_bytes()) {
            return Ok(Arc::new(Identity::admin()));
        }
    }
    // Compare against every grant (no early exit on a match position).
    let mut found = None;
    for g in &config.grants {
        if constant_time_eq(got, g.token.as_bytes()) && found.is_none() {
            found = Some(g);
        }
    }
    match found {
        Some(g) => Ok(Arc::new(Identity::of(g))),
        None => Err(ApiError::unauthorized()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    !a.is_empty() && a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// What a resource request asks to do, in RBAC's terms.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    /// Plural name, e.g. `jobs`.
    pub resource: String,
    /// e.g. `status`, `log`; empty for the resource itself.
    pub subresource: String,
    /// Empty for cluster-wide requests.
    pub namespace: String,
    /// Empty for collections and creates.
    pub name: String,
}

impl Attributes {
    fn full_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// Whether `who` may do `a`, and the rule or reason that decided.
pub fn decide(who: &Identity, a: &Attributes) -> Result<String, String> {
    if who.rules.is_none() && who.namespaced.is_empty() {
        return Ok("no allow-list configured for this user".into());
    }
    for (ns, rules) in &who.namespaced {
        if a.namespace == *ns {
            if let Some(i) = rules.iter().position(|r| rule_allows(r, a)) {
                return Ok(format!(
                    "allowed by rule {i} of the Role bound in namespace {ns:?}"
                ));
            }
        }
    }
    let Some(rules) = &who.rules else {
        return Err(String::new());
    };
    if let Some(ns) = &who.namespace {
        if a.namespace != *ns {
            return Err(format!("the allow-list applies only in namespace {ns:?}"));
        }
    }
    match rules.iter().position(|r| rule_allows(r, a)) {
        Some(i) => Ok(format!("allowed by rule {i} of the allow-list")),
        None => Err(String::new()),
    }
}

/// Answers the request's authorization: `Ok(())` or the 403 to send.
pub fn authorize(who: &Identity, a: &Attributes) -> Result<(), ApiError> {
    match decide(who, a) {
        Ok(_) => Ok(()),
        Err(_) => Err(forbidden(&who.username, a)),
    }
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// RBAC's rule matching: verbs, API groups, resources (`*`, `res/sub`,
/// `*/sub`) and resource names.
pub fn rule_allows(r: &PolicyRule, a: &Attributes) -> bool {
    let groups = r.api_groups.as_deref().unwrap_or_default();
    let resources = r.resources.as_deref().unwrap_or_default();
    let names = r.resource_names.as_deref().unwrap_or_default();
    let full = a.full_resource();
    let resource_ok = resources.iter().any(|x| {
        x == "*"
            || *x == full
            || (!a.subresource.is_empty() && *x == format!("*/{}", a.subresource))
    });
    has(&r.verbs, &a.verb)
        && has(groups, &a.group)
        && resource_ok
        && (names.is_empty() || (!a.name.is_empty() && names.contains(&a.name)))
}

/// kube-apiserver's Forbidden `Status` for a denied resource request.
pub fn forbidden(user: &str, a: &Attributes) -> ApiError {
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    let why = format!(
        "User {user:?} cannot {} resource {:?} in API group {:?} {scope}",
        a.verb,
        a.full_resource(),
        a.group
    );
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {:?} is forbidden: {why}", a.name)
    };
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        name: (!a.name.is_empty()).then(|| a.name.clone()),
        group: Some(a.group.clone()),
        kind: Some(a.resource.clone()),
        causes: Vec::new(),
        retry_after: None,
    }
}

/// The rules of every `Role` and `ClusterRole` in a (multi-document) YAML or
/// JSON text, e.g. `kubectl kustomize k8s` output or a Role manifest.
pub fn rules_from_manifests(text: &str) -> Result<Vec<PolicyRule>, String> {
    Ok(roles_in_manifests(text)?
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect())
}

/// A Role's namespace (`None`: everywhere) and its rules.
type RoleRules = (Option<String>, Vec<PolicyRule>);

/// Each `Role` and `ClusterRole` of a manifest text: its namespace (a
/// Role's `metadata.namespace`, if set) and its rules.
fn roles_in_manifests(text: &str) -> Result<Vec<RoleRules>, String> {
    use serde::Deserialize;
    let mut roles = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = serde_json::Value::deserialize(doc).map_err(|e| format!("invalid YAML: {e}"))?;
        let kind = v["kind"].as_str();
        if !matches!(kind, Some("Role" | "ClusterRole")) {
            continue;
        }
        let ns = match kind {
            Some("Role") => v
                .pointer("/metadata/namespace")
                .and_then(|n| n.as_str())
                .map(str::to_string),
            _ => None,
        };
        let rules = match v.get("rules").filter(|r| !r.is_null()) {
            Some(r) => serde_json::from_value(r.clone())
                .map_err(|e| format!("invalid rules in a {}: {e}", v["kind"]))?,
            None => Vec::new(),
        };
        roles.push((ns, rules));
    }
    if roles.is_empty() {
        return Err("no Role or ClusterRole found".into());
    }
    Ok(roles)
}

/// Every rule a user holds, as `SelfSubjectRulesReview` reports them.
pub fn effective_rules(who: &Identity) -> Vec<PolicyRule> {
    match &who.rules {
        Some(r) => r.clone(),
        None if !who.namespaced.is_empty() => Vec::new(),
        None => vec![PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..Default::default()
        }],
    }
}

/// The rules a user holds in namespace `ns` (those bound there included).
pub fn effective_rules_in(who: &Identity, ns: &str) -> Vec<PolicyRule> {
    let mut rules = match &who.namespace {
        Some(bound) if bound != ns => Vec::new(),
        _ => effective_rules(who),
    };
    for (n, r) in &who.namespaced {
        if n == ns {
            rules.extend(r.iter().cloned());
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            verbs: v(verbs),
            ..Default::default()
        }
    }

    fn attrs(verb: &str, group: &str, res: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn rules_match_like_rbac() {
        let r = rule(&["batch"], &["jobs"], &["get", "create"]);
        assert!(rule_allows(
            &r,
            &attrs("get", "batch", "jobs", "", "d", "x")
        ));
        assert!(!rule_allows(
            &r,
            &attrs("delete", "batch", "jobs", "", "d", "x")
        ));
        assert!(!rule_allows(&r, &attrs("get", "", "jobs", "", "d", "x")));
        assert!(!rule_allows(
            &r,
            &attrs("get", "batch", "jobs", "status", "d", "x")
        ));
        let logs = rule(&[""], &["pods/log"], &["get"]);
        assert!(rule_allows(
            &logs,
            &attrs("get", "", "pods", "log", "d", "p")
        ));
        assert!(!rule_allows(&logs, &attrs("get", "", "pods", "", "d", "p")));
        let any_status = rule(&["*"], &["*/status"], &["*"]);
        assert!(rule_allows(
            &any_status,
            &attrs("patch", "batch", "jobs", "status", "d", "x")
        ));
        let mut named = rule(&["coordination.k8s.io"], &["leases"], &["get"]);
        named.resource_names = Some(vec!["leader".into()]);
        assert!(rule_allows(
            &named,
            &attrs("get", "coordination.k8s.io", "leases", "", "d", "leader")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("get", "coordination.k8s.io", "leases", "", "d", "other")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("list", "coordination.k8s.io", "leases", "", "d", "")
        ));
    }

    #[test]
    fn forbidden_reads_like_kube_apiserver() {
        let e = forbidden(
            "system:serviceaccount:o:o",
            &attrs("create", "batch", "jobs", "", "default", "x"),
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            r#"jobs.batch "x" is forbidden: User "system:serviceaccount:o:o" cannot create resource "jobs" in API group "batch" in the namespace "default""#
        );
        let e = forbidden("u", &attrs("list", "", "pods", "log", "", ""));
        assert_eq!(
            e.message,
            r#"pods is forbidden: User "u" cannot list resource "pods/log" in API group "" at the cluster scope"#
        );
    }

    #[test]
    fn namespace_bound_grants_stay_in_their_namespace() {
        let who = Identity::of(&TokenGrant {
            token: "t".into(),
            username: "u".into(),
            rules: Some(vec![rule(&[""], &["configmaps"], &["get"])]),
            namespace: Some("orchestrator".into()),
            ..Default::default()
        });
        assert!(decide(
            &who,
            &attrs("get", "", "configmaps", "", "orchestrator", "c")
        )
        .is_ok());
        assert!(decide(&who, &attrs("get", "", "configmaps", "", "other", "c")).is_err());
    }

    #[test]
    fn roles_with_a_namespace_grant_their_rules_there_only() {
        let text = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: home, namespace: orchestrator}\nrules:\n- apiGroups: [coordination.k8s.io]\n  resources: [leases]\n  verbs: [get]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: tenant, namespace: team-a}\nrules:\n- apiGroups: [batch]\n  resources: [jobs]\n  verbs: [create]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: all}\nrules:\n- apiGroups: [\"\"]\n  resources: [namespaces]\n  verbs: [get]\n";
        let g = TokenGrant::from_manifests("t", "u", text).unwrap();
        let who = Identity::of(&g);
        let can =
            |verb, group, res, ns| decide(&who, &attrs(verb, group, res, "", ns, "x")).is_ok();
        assert!(can("create", "batch", "jobs", "team-a"));
        assert!(!can("create", "batch", "jobs", "team-b"));
        assert!(!can("create", "batch", "jobs", "orchestrator"));
        assert!(can("get", "coordination.k8s.io", "leases", "orchestrator"));
        assert!(!can("get", "coordination.k8s.io", "leases", "team-a"));
        assert!(
            can("get", "", "namespaces", ""),
            "a ClusterRole applies everywhere"
        );
        let in_a = effective_rules_in(&who, "team-a");
        assert_eq!(in_a.len(), 2, "{in_a:?}");
        assert_eq!(effective_rules_in(&who, "team-b").len(), 1);
        // Namespaced rules alone are an allow-list too.
        let only = TokenGrant {
            rules: None,
            ..g.clone()
        };
        let who = Identity::of(&only);
        assert!(decide(&who, &attrs("create", "batch", "jobs", "", "team-a", "x")).is_ok());
        assert!(decide(&who, &attrs("get", "", "namespaces", "", "", "x")).is_err());
    }

    #[test]
    fn rules_come_from_roles_in_manifests() {
        let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\nrules:\n- apiGroups: [batch]\n  resources: [jobs]\n  verbs: [get, list]\n";
        let rules = rules_from_manifests(text).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].verbs, vec!["get", "list"]);
        assert!(rules_from_manifests("kind: ConfigMap\n").is_err());
        assert!(rules_from_manifests(": : :").is_err());
    }
}
