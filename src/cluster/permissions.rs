//! The Kubernetes API calls this service makes, as RBAC (verb, resource)
//! pairs: the one list the preflight checks ask the API server about and
//! the Role in `k8s/` grants. Add a pair here when the code starts making a
//! new kind of call.
//!
//! Where each pair comes from:
//! - `jobs.batch` create, get, list, watch, patch, delete: the Kube actor
//!   (create, cancel, admit, delete, look up, list) and the Job watch.
//! - `configmaps` create, get, patch, delete: a task's files, created before
//!   its Job, then owned by it (or taken back when the Job is refused).
//! - `configmaps` list, update (and create, get, delete): the dedup
//!   record's shards ([`super::dedup`]): listed (metadata) and read by every
//!   replica, written with the resourceVersion, expired ones deleted by
//!   the Lease holder.
//! - `pods` list and `pods/log` get: following a Job's log.
//! - `events` create: the audit trail, one Event per decision about a Job
//!   ([`super::audit`]). Only create: each decision is an Event of its
//!   own, never an update of an earlier one (no `patch`, least privilege).
//! - `leases.coordination.k8s.io` create, and get and update of the one
//!   Lease named [`LEASE_NAME`]: the scheduler Lease.
//! - [`KUEUE`]: `localqueues.kueue.x-k8s.io` get, for the preflight check
//!   that each LocalQueue Jobs are put in exists (`SCHEDULER=kueue`;
//!   checked by that check's own GET, not by an access review, so a
//!   cluster without Kueue is not asked about it).
//!
//! `k8s/role.yaml` grants exactly these (a test compares the two).
//!
//! In a tenant namespace (a rule's `namespace:`) the service runs Jobs
//! only: [`TENANT`] is the Job calls, the files' ConfigMaps, pods, logs and
//! Events there — no Lease and no dedup record (those stay in the service's
//! own namespace). `k8s/tenant/role.yaml` grants exactly these.

use std::fmt;

use super::lease::LEASE_NAME;

/// One RBAC permission the service needs in its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    /// The verb (`create`, `get`, `list`, `watch`, `patch`, `update`, `delete`).
    pub verb: &'static str,
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource plural.
    pub resource: &'static str,
    /// Subresource (`log` for `pods/log`), if any.
    pub subresource: Option<&'static str>,
    /// The one object the permission is for (RBAC `resourceNames`), if any.
    pub name: Option<&'static str>,
}

impl Permission {
    const fn new(verb: &'static str, group: &'static str, resource: &'static str) -> Self {
        Permission {
            verb,
            group,
            resource,
            subresource: None,
            name: None,
        }
    }

    const fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The resource as `kubectl auth can-i` and RBAC errors write it:
    /// `jobs.batch`, `configmaps`, `pods/log`,
    /// `leases.coordination.k8s.io`.
    pub fn resource_name(&self) -> String {
        let mut s = self.resource.to_string();
        if !self.group.is_empty() {
            s.push('.');
            s.push_str(self.group);
        }
        if let Some(sub) = self.subresource {
            s.push('/');
            s.push_str(sub);
        }
        s
    }
}

impl Permission {
    /// What the permission is on: [`Self::resource_name`], and the object's
    /// name in quotes for a named one (`leases.coordination.k8s.io
    /// "orchestrator-scheduler"`).
    pub fn object(&self) -> String {
        match self.name {
            Some(n) => format!("{} {n:?}", self.resource_name()),
            None => self.resource_name(),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.object())
    }
}

/// `get` on `pods/log` (following a Job's log), in both lists below.
const POD_LOGS: Permission = Permission {
    verb: "get",
    group: "",
    resource: "pods",
    subresource: Some("log"),
    name: None,
};

/// What Kueue mode needs beyond [`REQUIRED`] (granted by the same Role).
pub const KUEUE: &[Permission] = &[Permission::new("get", "kueue.x-k8s.io", "localqueues")];

/// Every permission the service needs, all in its own namespace
/// (`KUBERNETES_NAMESPACE`).
pub const REQUIRED: &[Permission] = &[
    Permission::new("create", "batch", "jobs"),
    Permission::new("get", "batch", "jobs"),
    Permission::new("list", "batch", "jobs"),
    Permission::new("watch", "batch", "jobs"),
    Permission::new("patch", "batch", "jobs"),
    Permission::new("delete", "batch", "jobs"),
    Permission::new("create", "", "configmaps"),
    Permission::new("get", "", "configmaps"),
    Permission::new("list", "", "configmaps"),
    Permission::new("patch", "", "configmaps"),
    Permission::new("update", "", "configmaps"),
    Permission::new("delete", "", "configmaps"),
    Permission::new("list", "", "pods"),
    Permission::new("create", "", "events"),
    POD_LOGS,
    Permission::new("create", "coordination.k8s.io", "leases"),
    Permission::new("get", "coordination.k8s.io", "leases").named(LEASE_NAME),
    Permission::new("update", "coordination.k8s.io", "leases").named(LEASE_NAME),
];

/// Every permission the service needs in a tenant namespace (see the
/// module docs).
pub const TENANT: &[Permission] = &[
    Permission::new("create", "batch", "jobs"),
    Permission::new("get", "batch", "jobs"),
    Permission::new("list", "batch", "jobs"),
    Permission::new("watch", "batch", "jobs"),
    Permission::new("patch", "batch", "jobs"),
    Permission::new("delete", "batch", "jobs"),
    Permission::new("create", "", "configmaps"),
    Permission::new("get", "", "configmaps"),
    Permission::new("patch", "", "configmaps"),
    Permission::new("delete", "", "configmaps"),
    Permission::new("list", "", "pods"),
    Permission::new("create", "", "events"),
    POD_LOGS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_like_rbac_errors() {
        let names: Vec<String> = REQUIRED.iter().map(ToString::to_string).collect();
        assert!(names.contains(&"create jobs.batch".to_string()));
        assert!(names.contains(&"create configmaps".to_string()));
        assert!(names.contains(&"get pods/log".to_string()));
        assert!(names
            .contains(&"update leases.coordination.k8s.io \"orchestrator-scheduler\"".to_string()));
    }

    #[test]
    fn no_pair_is_listed_twice() {
        for list in [REQUIRED, TENANT] {
            let mut seen = std::collections::HashSet::new();
            for p in list {
                assert!(seen.insert(*p), "{p} is listed twice");
            }
        }
    }

    #[test]
    fn a_tenant_namespace_needs_a_part_of_the_home_namespace_s_permissions() {
        for p in TENANT {
            assert!(REQUIRED.contains(p), "{p} is not needed at home");
        }
        assert!(!TENANT.iter().any(|p| p.group == "coordination.k8s.io"));
        assert!(!TENANT.iter().any(|p| p.verb == "update"));
    }
}
