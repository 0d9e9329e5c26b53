//! The preflight checks of Kueue mode (`SCHEDULER=kueue`), pure: what the
//! probes saw ([`KueueSeen`], from `cluster::probe::kueue`) as checks for
//! `/ready`, the log and `orchestrator doctor`.
//!
//! - `kueue_api`: the API server serves `kueue.x-k8s.io/v1beta1` (read
//!   through discovery): without it Kueue is not installed, and a Job
//!   labelled for a queue would wait suspended forever.
//! - `kueue_local_queue`, one per LocalQueue the configuration names: it
//!   exists in the namespace (Kueue admits nothing put in a LocalQueue that
//!   does not exist).
//! - `kueue_local_queue` in each tenant namespace (rules with
//!   `namespace:`), one per LocalQueue its rules' Jobs are put in (the
//!   rule's `KUEUE_QUEUES` entry, else the `github` source's, else
//!   `KUEUE_QUEUE_NAME`): a LocalQueue is namespaced, and a Job names one
//!   in its own namespace. A failure there carries the namespace, so, like
//!   the tenant namespace's other checks, it degrades the service rather
//!   than making it unready.
//! - `kueue_priority_class`, one per WorkloadPriorityClass of
//!   `KUEUE_PRIORITY_CLASSES`: it exists (for a Job naming a class that
//!   does not, Kueue creates no Workload at all: the Job stays suspended,
//!   with a Warning Event and nothing else). Reading them needs a
//!   cluster-wide grant (`k8s/components/kueue`); without it the check
//!   cannot run and says so (it does not make the service unready).

use super::{Check, Outcome};

/// What one lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectSeen {
    Exists,
    Missing,
    /// Refused (401/403): the reason.
    Forbidden(String),
    /// Could not tell: the reason.
    Unknown(String),
}

/// What discovery said of `kueue.x-k8s.io/v1beta1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiSeen {
    /// Served, with LocalQueues among its resources.
    Served,
    /// Not served (404), or served without LocalQueues.
    Missing,
    /// Could not tell: the reason.
    Unknown(String),
}

/// The results of one round of Kueue probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KueueSeen {
    pub namespace: String,
    pub api: ApiSeen,
    /// Each LocalQueue the configuration names (empty when the API is not
    /// served: nothing to look up).
    pub queues: Vec<(String, ObjectSeen)>,
    /// Each LocalQueue of a tenant namespace: (namespace, queue, seen).
    pub tenant_queues: Vec<(String, String, ObjectSeen)>,
    /// Each WorkloadPriorityClass of `KUEUE_PRIORITY_CLASSES`.
    pub classes: Vec<(String, ObjectSeen)>,
}

/// The fix for a missing Kueue.
pub const INSTALL_FIX: &str = "install Kueue in the cluster (see the installation guide on kueue.sigs.k8s.io; kubectl api-resources --api-group=kueue.x-k8s.io then lists localqueues) or set SCHEDULER=builtin";

fn named(check: &'static str, result: Outcome, message: String, resource: String) -> Check {
    let mut c = Check::new(check, result, message);
    c.resource = Some(resource);
    c
}

/// The check of LocalQueue `q` in namespace `ns`; `tenant`: the tenant
/// namespace it belongs to (the check then carries it).
fn queue_check(ns: &str, q: &str, s: &ObjectSeen, tenant: Option<&str>) -> Check {
    let resource = format!("localqueues.kueue.x-k8s.io/{q}");
    let mut c = match s {
        ObjectSeen::Exists => named(
            "kueue_local_queue",
            Outcome::Ok,
            format!("LocalQueue {q:?} exists in namespace {ns:?}"),
            resource,
        ),
        ObjectSeen::Missing => named(
            "kueue_local_queue",
            Outcome::Failed,
            format!("LocalQueue {q:?} does not exist in namespace {ns:?}: Kueue admits none of the Jobs put in it (they stay suspended)"),
            resource,
        )
        .fix(format!(
            "create a LocalQueue named {q} in namespace {ns} whose spec.clusterQueue names a ClusterQueue (kubectl get clusterqueues lists them), or {} (kubectl get localqueues -n {ns})",
            if tenant.is_some() {
                format!("point the rules naming namespace {ns} at a LocalQueue that exists there (KUEUE_QUEUES rule:NAME=queue)")
            } else {
                "set KUEUE_QUEUE_NAME / KUEUE_QUEUES to a LocalQueue that exists".to_string()
            }
        )),
        ObjectSeen::Forbidden(_) => named(
            "kueue_local_queue",
            Outcome::Failed,
            format!("cannot get LocalQueue {q:?} in namespace {ns:?}: forbidden"),
            resource,
        )
        .fix(if tenant.is_some() {
            format!("apply the tenant Role and RoleBinding in k8s/tenant/ to namespace {ns}: it grants get on localqueues.kueue.x-k8s.io")
        } else {
            "apply the Role and RoleBinding in k8s/ (kubectl apply -k k8s): it grants get on localqueues.kueue.x-k8s.io".to_string()
        }),
        ObjectSeen::Unknown(why) => named(
            "kueue_local_queue",
            Outcome::Unknown,
            format!("could not check LocalQueue {q:?} in namespace {ns:?}: {why}"),
            resource,
        ),
    };
    c.namespace = tenant.map(str::to_string);
    c
}

/// The checks of one round.
pub fn evaluate(seen: &KueueSeen) -> Vec<Check> {
    let ns = &seen.namespace;
    let mut out = vec![match &seen.api {
        ApiSeen::Served => Check::new(
            "kueue_api",
            Outcome::Ok,
            "the API server serves kueue.x-k8s.io/v1beta1 (Kueue is installed)".into(),
        ),
        ApiSeen::Missing => Check::new(
            "kueue_api",
            Outcome::Failed,
            "SCHEDULER=kueue, but the API server does not serve kueue.x-k8s.io/v1beta1 LocalQueues: Kueue is not installed, and queued Jobs would never be admitted".into(),
        )
        .fix(INSTALL_FIX),
        ApiSeen::Unknown(why) => Check::new(
            "kueue_api",
            Outcome::Unknown,
            format!("could not ask the API server whether it serves kueue.x-k8s.io/v1beta1: {why}"),
        ),
    }];
    for (q, s) in &seen.queues {
        out.push(queue_check(ns, q, s, None));
    }
    for (tns, q, s) in &seen.tenant_queues {
        out.push(queue_check(tns, q, s, Some(tns)));
    }
    for (c, s) in &seen.classes {
        let resource = format!("workloadpriorityclasses.kueue.x-k8s.io/{c}");
        out.push(match s {
            ObjectSeen::Exists => named(
                "kueue_priority_class",
                Outcome::Ok,
                format!("WorkloadPriorityClass {c:?} exists"),
                resource,
            ),
            ObjectSeen::Missing => named(
                "kueue_priority_class",
                Outcome::Failed,
                format!("WorkloadPriorityClass {c:?} (KUEUE_PRIORITY_CLASSES) does not exist: Kueue creates no Workload for a Job naming it, so those Jobs stay suspended"),
                resource,
            )
            .fix(format!(
                "create it (kind WorkloadPriorityClass, apiVersion kueue.x-k8s.io/v1beta1, name {c}, with a value) or change KUEUE_PRIORITY_CLASSES"
            )),
            ObjectSeen::Forbidden(_) => named(
                "kueue_priority_class",
                Outcome::Unknown,
                format!("could not check WorkloadPriorityClass {c:?}: reading it needs get on workloadpriorityclasses.kueue.x-k8s.io cluster-wide (the ClusterRole in k8s/components/kueue)"),
                resource,
            ),
            ObjectSeen::Unknown(why) => named(
                "kueue_priority_class",
                Outcome::Unknown,
                format!("could not check WorkloadPriorityClass {c:?}: {why}"),
                resource,
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kueue_or_queue_fails_with_a_fix_and_a_class_it_may_not_read_is_unknown() {
        let seen = KueueSeen {
            namespace: "agents-ns".into(),
            api: ApiSeen::Missing,
            queues: vec![],
            tenant_queues: vec![],
            classes: vec![],
        };
        let checks = evaluate(&seen);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].result, Outcome::Failed);
        assert!(checks[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("install Kueue"));
        let seen = KueueSeen {
            namespace: "agents-ns".into(),
            api: ApiSeen::Served,
            queues: vec![
                ("agents".into(), ObjectSeen::Exists),
                ("ops".into(), ObjectSeen::Missing),
            ],
            tenant_queues: vec![],
            classes: vec![("high".into(), ObjectSeen::Forbidden("403".into()))],
        };
        let checks = evaluate(&seen);
        let failed: Vec<&Check> = checks
            .iter()
            .filter(|c| c.result == Outcome::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "{checks:?}");
        assert!(failed[0]
            .message
            .contains(r#"LocalQueue "ops" does not exist in namespace "agents-ns""#));
        assert!(failed[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("KUEUE_QUEUE_NAME"));
        assert_eq!(checks[3].result, Outcome::Unknown);
        // Each queue is a check of its own across rounds.
        assert_ne!(checks[1].key(), checks[2].key());
    }

    #[test]
    fn a_tenant_namespace_s_missing_queue_is_a_check_of_that_namespace() {
        let seen = KueueSeen {
            namespace: "home".into(),
            api: ApiSeen::Served,
            queues: vec![("agents".into(), ObjectSeen::Exists)],
            tenant_queues: vec![
                ("team-a".into(), "agents".into(), ObjectSeen::Missing),
                ("team-b".into(), "agents".into(), ObjectSeen::Exists),
            ],
            classes: vec![],
        };
        let checks = evaluate(&seen);
        assert_eq!(checks.len(), 4);
        let a = &checks[2];
        assert_eq!(a.result, Outcome::Failed);
        assert_eq!(a.namespace.as_deref(), Some("team-a"));
        assert!(a
            .message
            .contains(r#"LocalQueue "agents" does not exist in namespace "team-a""#));
        assert!(a
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("create a LocalQueue named agents in namespace team-a"));
        assert!(a.fix.as_deref().unwrap_or("").contains("rule:NAME=queue"));
        // The same queue name in another namespace is another check.
        assert_ne!(checks[1].key(), a.key());
        assert_ne!(a.key(), checks[3].key());
        assert_eq!(checks[3].namespace.as_deref(), Some("team-b"));
        // A tenant namespace's failure degrades; it does not fail the report.
        let report = crate::cluster::preflight::Report { checks };
        assert!(report.passed());
        assert_eq!(report.degraded().count(), 1);
    }
}
