//! Names a missing RBAC permission in the log once. When the API server
//! answers 403, its message says which verb on which resource was denied
//! (`… cannot create resource "jobs" in API group "batch" in the namespace
//! "x"`); the first denial of each verb/resource pair is logged as an error
//! that says what to grant, and later ones (retries, every next Job) are
//! not, so the log is not flooded while the Role is wrong.

use std::collections::HashSet;
use std::sync::Mutex;

/// The permission a 403 message says is missing: (verb, resource, group).
pub fn missing_permission(message: &str) -> Option<(String, String, String)> {
    let rest = message.split("cannot ").nth(1)?;
    let (verb, rest) = rest.split_once(" resource \"")?;
    let (resource, rest) = rest.split_once('"')?;
    let group = rest
        .split_once("in API group \"")
        .and_then(|(_, g)| g.split_once('"'))
        .map_or("", |(g, _)| g);
    Some((verb.to_string(), resource.to_string(), group.to_string()))
}

/// The 403 message inside a Job-watch error, if it is one.
pub fn watch_denial(e: &kube::runtime::watcher::Error) -> Option<String> {
    use kube::runtime::watcher::Error as W;
    let status = match e {
        W::InitialListFailed(kube::Error::Api(s))
        | W::WatchStartFailed(kube::Error::Api(s))
        | W::WatchFailed(kube::Error::Api(s)) => s.as_ref(),
        W::WatchError(s) => s.as_ref(),
        _ => return None,
    };
    (status.code == 403).then(|| status.message.clone())
}

/// The namespace a 403 message names (`… in the namespace "x"`), if any.
pub fn denied_namespace(message: &str) -> Option<&str> {
    let rest = message.split("in the namespace \"").nth(1)?;
    rest.split_once('"').map(|(ns, _)| ns)
}

/// The permissions already reported by this process (per namespace: one
/// tenant namespace's missing Role is not another's).
#[derive(Debug, Default)]
pub struct ForbiddenLog {
    seen: Mutex<HashSet<(String, String, String, String)>>,
}

impl ForbiddenLog {
    /// Logs the permission `message` (a 403 Status message) names, the first
    /// time it is seen. Returns whether it logged.
    pub fn report(&self, message: &str) -> bool {
        let (verb, resource, group) = missing_permission(message)
            .unwrap_or_else(|| (String::new(), message.to_string(), String::new()));
        let namespace = denied_namespace(message).unwrap_or_default().to_string();
        let key = (verb, resource, group, namespace);
        let first = self
            .seen
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(true);
        if first {
            let (verb, resource, group, namespace) = key;
            tracing::error!(
                verb = %verb,
                resource = %resource,
                api_group = %group,
                namespace = %namespace,
                denial = %message,
                "the service account is missing a permission: grant verb {verb:?} on resource {resource:?} (API group {group:?}) in its Role in namespace {namespace:?} (see k8s/role.yaml, or k8s/tenant/ for a tenant namespace); further denials of it are not logged"
            );
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_permission_from_kube_apiservers_message() {
        let m = r#"jobs.batch "x" is forbidden: User "system:serviceaccount:o:o" cannot create resource "jobs" in API group "batch" in the namespace "o""#;
        assert_eq!(
            missing_permission(m),
            Some(("create".into(), "jobs".into(), "batch".into()))
        );
        let m = r#"pods is forbidden: User "u" cannot get resource "pods/log" in API group "" in the namespace "d""#;
        assert_eq!(
            missing_permission(m),
            Some(("get".into(), "pods/log".into(), "".into()))
        );
        assert_eq!(missing_permission("Unauthorized"), None);
    }

    #[test]
    fn each_permission_is_reported_once() {
        let log = ForbiddenLog::default();
        let a = r#"jobs.batch "a" is forbidden: User "u" cannot patch resource "jobs" in API group "batch" in the namespace "d""#;
        let b = r#"jobs.batch "b" is forbidden: User "u" cannot patch resource "jobs" in API group "batch" in the namespace "d""#;
        let c = r#"leases.coordination.k8s.io "l" is forbidden: User "u" cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "d""#;
        assert!(log.report(a));
        assert!(!log.report(b), "another Job, same permission");
        assert!(log.report(c));
        assert!(!log.report(c));
        let other_ns = a.replace("namespace \"d\"", "namespace \"team-b\"");
        assert_eq!(denied_namespace(&other_ns), Some("team-b"));
        assert!(
            log.report(&other_ns),
            "the same permission in another namespace"
        );
    }
}
