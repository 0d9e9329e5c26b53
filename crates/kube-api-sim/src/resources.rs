//! The resource types the simulator serves and the discovery documents that
//! describe them (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`).

use serde_json::{json, Value};

/// A served resource type.
#[derive(Debug)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Has a `/status` subresource: the main resource ignores `status`
    /// writes and `/status` writes touch only `status`.
    pub has_status: bool,
    /// Tracks `metadata.generation` (bumped when `spec` changes).
    pub has_generation: bool,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

pub const NAMESPACES: usize = 0;
pub const PODS: usize = 1;
pub const CONFIGMAPS: usize = 2;
pub const EVENTS: usize = 3;
pub const SECRETS: usize = 4;
pub const JOBS: usize = 5;
pub const LEASES: usize = 6;
/// Kueue's types (`kueue.x-k8s.io/v1beta1`), served read-only and only when
/// `SimConfig::kueue` is set (see [`crate::kueue`]).
pub const LOCALQUEUES: usize = 7;
pub const CLUSTERQUEUES: usize = 8;
pub const WORKLOADPRIORITYCLASSES: usize = 9;
pub const RESOURCEFLAVORS: usize = 10;

/// The group of Kueue's types.
pub const KUEUE_GROUP: &str = "kueue.x-k8s.io";

/// Every served type; the index is the type's id inside the store.
pub static RESOURCES: [Resource; 11] = [
    Resource {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        has_status: true,
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        has_status: true,
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        has_status: false,
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        has_status: false,
        has_generation: false,
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        has_status: false,
        has_generation: false,
    },
    Resource {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        has_status: true,
        has_generation: true,
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        has_status: false,
        has_generation: false,
    },
    Resource {
        group: KUEUE_GROUP,
        version: "v1beta1",
        kind: "LocalQueue",
        plural: "localqueues",
        singular: "localqueue",
        namespaced: true,
        short_names: &["queue", "queues", "lq"],
        has_status: true,
        has_generation: true,
    },
    Resource {
        group: KUEUE_GROUP,
        version: "v1beta1",
        kind: "ClusterQueue",
        plural: "clusterqueues",
        singular: "clusterqueue",
        namespaced: false,
        short_names: &["cq"],
        has_status: true,
        has_generation: true,
    },
    Resource {
        group: KUEUE_GROUP,
        version: "v1beta1",
        kind: "WorkloadPriorityClass",
        plural: "workloadpriorityclasses",
        singular: "workloadpriorityclass",
        namespaced: false,
        short_names: &[],
        has_status: false,
        has_generation: true,
    },
    Resource {
        group: KUEUE_GROUP,
        version: "v1beta1",
        kind: "ResourceFlavor",
        plural: "resourceflavors",
        singular: "resourceflavor",
        namespaced: false,
        short_names: &["flavor", "flavors", "rf"],
        has_status: false,
        has_generation: true,
    },
];

/// Whether a type is one of Kueue's (read-only, served only with
/// `SimConfig::kueue`).
pub fn is_kueue(res: usize) -> bool {
    RESOURCES.get(res).is_some_and(|r| r.group == KUEUE_GROUP)
}

/// Whether `r` is served: Kueue's types only when the emulation is on.
fn served(r: &Resource, kueue: bool) -> bool {
    kueue || r.group != KUEUE_GROUP
}

/// Finds a type by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The built-in group/versions (those with OpenAPI schemas), core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    served_group_versions(false)
}

/// The group/versions served (with Kueue's when `kueue`), core first.
pub fn served_group_versions(kueue: bool) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| served(r, kueue)) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The verbs of Kueue's read-only types.
const READ_ONLY_VERBS: [&str; 3] = ["get", "list", "watch"];

fn verbs(r: &Resource) -> &'static [&'static str] {
    if r.group == KUEUE_GROUP {
        &READ_ONLY_VERBS
    } else {
        &VERBS
    }
}

fn status_verbs(r: &Resource) -> &'static [&'static str] {
    if r.group == KUEUE_GROUP {
        &["get"]
    } else {
        &["get", "patch", "update"]
    }
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Discovery categories (`kubectl get all` lists the types in "all").
fn categories(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" | "jobs" => &["all"],
        "localqueues" | "clusterqueues" | "workloadpriorityclasses" | "resourceflavors" => {
            &["kueue"]
        }
        _ => &[],
    }
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`.
pub fn api_group_list(kueue: bool) -> Value {
    let groups: Vec<Value> = served_group_versions(kueue)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`.
pub fn api_group(group: &str, kueue: bool) -> Option<Value> {
    let (g, v) = served_group_versions(kueue)
        .into_iter()
        .find(|(g, _)| *g == group)?;
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv.clone()], "preferredVersion": gv}),
    )
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`.
pub fn api_resource_list(group: &str, version: &str, kueue: bool) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && served(r, kueue))
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
            "shortNames": r.short_names,
            "categories": categories(r.plural),
        }));
        if r.has_status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": status_verbs(r),
            }));
        }
        if r.plural == "pods" {
            resources.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The media type of aggregated discovery (`apidiscovery.k8s.io/v2`).
pub const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Aggregated discovery: `GET /api` (`core`) or `GET /apis` (the rest) as an
/// `APIGroupDiscoveryList`, what kubectl asks for first.
pub fn aggregated(core: bool, kueue: bool) -> Value {
    let items: Vec<Value> = served_group_versions(kueue)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, v)| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == g && r.version == v)
                .map(|r| {
                    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
                    let mut subs = Vec::new();
                    if r.has_status {
                        subs.push(json!({"subresource": "status", "responseKind": kind, "verbs": status_verbs(r)}));
                    }
                    if r.plural == "pods" {
                        subs.push(json!({"subresource": "log", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get"]}));
                    }
                    json!({
                        "resource": r.plural,
                        "responseKind": kind,
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": verbs(r),
                        "shortNames": r.short_names,
                        "categories": categories(r.plural),
                        "subresources": subs,
                    })
                })
                .collect();
            json!({
                "metadata": {"name": g, "creationTimestamp": null},
                "versions": [{"version": v, "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// True if `accept` asks for aggregated discovery v2 (before the legacy
/// documents, which are always acceptable).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        params.first() == Some(&"application/json")
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

/// Field paths a field selector may use besides `metadata.name/namespace`.
pub fn field_paths(res: usize) -> &'static [&'static str] {
    match res {
        PODS => &["status.phase", "spec.nodeName", "spec.restartPolicy"],
        JOBS => &["status.successful"],
        EVENTS => &[
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "reason",
            "type",
        ],
        SECRETS => &["type"],
        NAMESPACES => &["status.phase"],
        _ => &[],
    }
}
