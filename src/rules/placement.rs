//! Tenant namespaces: where a rule's Jobs run and which Secret their agent
//! gets.
//!
//! ```yaml
//! rules:
//!   - name: team-a-issues
//!     event: issues
//!     label: team-a
//!     kind: implement
//!     namespace: team-a          # its Jobs (and their files' ConfigMaps, Events, pods) live here
//!     secret: team-a-agent       # envFrom and the clone token; a Secret in team-a
//!     prompt: "…"
//! ```
//!
//! A rule without `namespace` runs its Jobs in the service's own namespace
//! (`KUBERNETES_NAMESPACE`, where the scheduler Lease and the dedup record
//! also live); without `secret`, its agents get `JOB_SECRET_NAME` (which
//! must then exist in the rule's namespace too: a pod reads Secrets of its
//! own namespace only). The service watches, lists and preflight-checks
//! every namespace a rule names, with one Role per namespace (`k8s/tenant/`).

/// Checks a rule's `namespace` (a DNS-1123 label, as namespace names are)
/// and `secret` (a DNS-1123 subdomain, as Secret names are).
pub fn check(namespace: Option<&str>, secret: Option<&str>) -> Result<(), String> {
    if let Some(ns) = namespace {
        if !crate::config::is_dns1123_label(ns) {
            return Err(format!(
                "namespace {ns:?} must be a DNS-1123 label (1-63 characters of [a-z0-9-], starting and ending with a letter or digit)"
            ));
        }
    }
    if let Some(s) = secret {
        if !crate::config::is_dns1123_subdomain(s) {
            return Err(format!(
                "secret {s:?} must be a Secret name (a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most 253)"
            ));
        }
    }
    Ok(())
}

impl super::Rules {
    /// The namespaces the rules name besides `home` (sorted, each once):
    /// the tenant namespaces the service watches and checks.
    pub fn tenant_namespaces(&self, home: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .rules()
            .iter()
            .filter_map(|r| r.namespace.clone())
            .filter(|ns| ns != home)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rules;

    fn rules(extra: &str) -> Result<Rules, String> {
        Rules::from_yaml(&format!(
            "rules:\n  - name: r\n    event: issues\n    label: x\n    kind: implement\n    prompt: hi\n{extra}"
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_rule_names_its_namespace_and_secret() {
        let r = rules("    namespace: team-a\n    secret: team-a.agent\n").expect("valid");
        let rule = r.get("r").expect("the rule");
        assert_eq!(rule.namespace.as_deref(), Some("team-a"));
        assert_eq!(rule.secret.as_deref(), Some("team-a.agent"));
        assert_eq!(r.tenant_namespaces("orchestrator"), vec!["team-a"]);
        assert!(r.tenant_namespaces("team-a").is_empty());
        // The defaults name none.
        assert!(Rules::builtin().tenant_namespaces("x").is_empty());
        assert_eq!(Rules::builtin().get("issue-agent").unwrap().namespace, None);
    }

    #[test]
    fn bad_namespaces_and_secrets_are_refused_naming_the_rule() {
        for (extra, want) in [
            (
                "    namespace: Team-A\n",
                "namespace \"Team-A\" must be a DNS-1123 label",
            ),
            ("    namespace: team_a\n", "must be a DNS-1123 label"),
            ("    namespace: -a\n", "must be a DNS-1123 label"),
            ("    namespace: \"\"\n", "must be a DNS-1123 label"),
            (
                &format!("    namespace: {}\n", "a".repeat(64)),
                "DNS-1123 label",
            ),
            (
                "    secret: Agent Secrets\n",
                "secret \"Agent Secrets\" must be a Secret name",
            ),
            ("    secret: a..b\n", "must be a Secret name"),
            ("    secrets: a\n", "unknown field `secrets`"),
            ("    namespace: [a]\n", "expected a string"),
        ] {
            let e = rules(extra).expect_err(extra);
            assert!(
                e.starts_with("rule 'r':") && e.contains(want),
                "{extra}: {e}"
            );
        }
    }
}
