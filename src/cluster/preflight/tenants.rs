//! The preflight checks of the tenant namespaces: for each namespace a rule
//! names (`namespace:` in the rules file), that it exists and that the
//! service may make each call of
//! [`crate::cluster::permissions::TENANT`] there. Each check carries its
//! namespace (`/ready`'s JSON, the log), and a failure's fix names the
//! rules that send Jobs there.

use super::{permission_check, AccessSeen, Check, NamespaceSeen, Outcome, Target};
use crate::cluster::permissions::Permission;

/// A tenant namespace to check, and the rules naming it (for the fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub namespace: String,
    pub rules: Vec<String>,
}

impl Tenant {
    /// The tenant namespaces `rules` name besides `home`, each with its rules.
    pub fn of_rules(rules: &crate::rules::Rules, home: &str) -> Vec<Tenant> {
        rules
            .tenant_namespaces(home)
            .into_iter()
            .map(|ns| Tenant {
                rules: rules
                    .rules()
                    .iter()
                    .filter(|r| r.namespace.as_deref() == Some(ns.as_str()))
                    .map(|r| r.name.clone())
                    .collect(),
                namespace: ns,
            })
            .collect()
    }
}

/// What the probes saw of one tenant namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSeen {
    pub namespace: String,
    pub seen: NamespaceSeen,
    /// `None`: permissions could not be checked (no
    /// `SelfSubjectAccessReview`).
    pub access: Option<Vec<(Permission, AccessSeen)>>,
}

/// The rules naming `ns`, quoted, for a fix.
fn named_by(target: &Target, ns: &str) -> String {
    let rules: Vec<String> = target
        .tenants
        .iter()
        .filter(|t| t.namespace == ns)
        .flat_map(|t| t.rules.iter().map(|r| format!("{r:?}")))
        .collect();
    match rules.len() {
        0 => "the rules naming it".to_string(),
        1 => format!("rule {}", rules[0]),
        _ => format!("rules {}", rules.join(", ")),
    }
}

/// The checks of the tenant namespaces seen.
pub fn checks(target: &Target, seen: &[TenantSeen]) -> Vec<Check> {
    let mut out = Vec::new();
    for t in seen {
        let ns = t.namespace.as_str();
        let mut exists = match &t.seen {
            NamespaceSeen::Exists => Check::new(
                "namespace",
                Outcome::Ok,
                format!("tenant namespace {ns:?} exists"),
            ),
            NamespaceSeen::Missing => Check::new(
                "namespace",
                Outcome::Failed,
                format!(
                    "tenant namespace {ns:?} does not exist (named by {})",
                    named_by(target, ns)
                ),
            )
            .fix(format!(
                "create it (kubectl create namespace {ns}) and apply k8s/tenant/ to it, or change {} in ORCHESTRATOR_RULES",
                named_by(target, ns)
            )),
            NamespaceSeen::Unknown(why) => Check::new(
                "namespace",
                Outcome::Unknown,
                format!("could not check tenant namespace {ns:?}: {why}"),
            ),
        };
        exists.namespace = Some(ns.to_string());
        out.push(exists);
        let Some(access) = &t.access else {
            let mut c = Check::new(
                "permissions",
                Outcome::Unknown,
                format!("could not check permissions in tenant namespace {ns:?}: the API server does not serve SelfSubjectAccessReview"),
            );
            c.namespace = Some(ns.to_string());
            out.push(c);
            continue;
        };
        for (p, a) in access {
            let mut c = permission_check(p, a, ns);
            if c.result == Outcome::Failed {
                c.fix = Some(format!(
                    "apply the tenant Role and RoleBinding in k8s/tenant/ to namespace {ns} (see the README, \"Tenant namespaces\")"
                ));
            }
            c.namespace = Some(ns.to_string());
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{changes, evaluate, Change, Observation};
    use super::*;
    use crate::cluster::permissions::{REQUIRED, TENANT};

    fn target() -> Target {
        Target {
            server: "https://10.0.0.1:443".into(),
            namespace: "orchestrator".into(),
            tenants: vec![
                Tenant {
                    namespace: "team-a".into(),
                    rules: vec!["a-issues".into()],
                },
                Tenant {
                    namespace: "team-b".into(),
                    rules: vec!["b-issues".into(), "b-reviews".into()],
                },
            ],
        }
    }

    fn all(list: &[Permission], denied: &[&str]) -> Vec<(Permission, AccessSeen)> {
        list.iter()
            .map(|p| {
                let a = if denied.contains(&p.to_string().as_str()) {
                    AccessSeen::Denied(String::new())
                } else {
                    AccessSeen::Allowed
                };
                (*p, a)
            })
            .collect()
    }

    fn seen(b: NamespaceSeen, b_denied: &[&str]) -> Observation {
        Observation::Reached {
            version: "v1.33.0".into(),
            namespace: NamespaceSeen::Exists,
            access: Some(all(REQUIRED, &[])),
            tenants: vec![
                TenantSeen {
                    namespace: "team-a".into(),
                    seen: NamespaceSeen::Exists,
                    access: Some(all(TENANT, &[])),
                },
                TenantSeen {
                    namespace: "team-b".into(),
                    seen: b,
                    access: Some(all(TENANT, b_denied)),
                },
            ],
        }
    }

    #[test]
    fn every_tenant_namespace_is_checked_with_its_own_permissions() {
        let r = evaluate(&target(), &seen(NamespaceSeen::Exists, &[]));
        assert!(r.passed());
        assert_eq!(r.checks.len(), 2 + REQUIRED.len() + 2 * (1 + TENANT.len()));
        let in_b = r
            .checks
            .iter()
            .filter(|c| c.namespace.as_deref() == Some("team-b"))
            .count();
        assert_eq!(in_b, 1 + TENANT.len());
    }

    #[test]
    fn a_missing_tenant_namespace_is_named_with_its_rules() {
        let r = evaluate(&target(), &seen(NamespaceSeen::Missing, &[]));
        let failed: Vec<&Check> = r.failures().collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(
            failed[0].message,
            r#"tenant namespace "team-b" does not exist (named by rules "b-issues", "b-reviews")"#
        );
        let fix = failed[0].fix.as_deref().unwrap_or_default();
        assert!(fix.contains("kubectl create namespace team-b"), "{fix}");
        assert!(fix.contains("k8s/tenant/"), "{fix}");
    }

    #[test]
    fn a_permission_denied_in_one_tenant_namespace_names_it_and_is_its_own_check() {
        let r = evaluate(
            &target(),
            &seen(NamespaceSeen::Exists, &["create jobs.batch"]),
        );
        let failed: Vec<&Check> = r.failures().collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(
            failed[0].message,
            r#"cannot create jobs.batch in namespace "team-b""#
        );
        assert!(failed[0]
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("k8s/tenant/")));
        // The same permission at home or in team-a is another check: only
        // team-b's starts failing.
        let before = evaluate(&target(), &seen(NamespaceSeen::Exists, &[]));
        let changed = changes(Some(&before), &r);
        assert_eq!(changed.len(), 1);
        assert!(
            matches!(changed[0], Change::Failing(c) if c.namespace.as_deref() == Some("team-b"))
        );
    }
}
