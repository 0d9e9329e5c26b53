//! The Kueue probes of a preflight round (`SCHEDULER=kueue`): discovery of
//! `kueue.x-k8s.io/v1beta1`, then one GET per LocalQueue and per
//! WorkloadPriorityClass the configuration names. Single attempts under the
//! gate's rate bound, like the other probes.

use futures::future::join_all;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;

use super::{bounded_kube, status_code};
use crate::cluster::describe::describe;
use crate::cluster::gate::KubeGate;
use crate::cluster::kueue::{API_GROUP, API_VERSION};
use crate::cluster::preflight::kueue::{ApiSeen, KueueSeen, ObjectSeen};
use crate::cluster::preflight::Tenant;
use crate::config::kueue::KueueSettings;

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: API_GROUP.into(),
        version: API_VERSION.into(),
        api_version: format!("{API_GROUP}/{API_VERSION}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn seen_of(answer: Result<Result<Option<DynamicObject>, kube::Error>, String>) -> ObjectSeen {
    match answer {
        Err(why) => ObjectSeen::Unknown(why),
        Ok(Ok(Some(_))) => ObjectSeen::Exists,
        Ok(Ok(None)) => ObjectSeen::Missing,
        Ok(Err(e)) if matches!(status_code(&e), Some(401 | 403)) => {
            ObjectSeen::Forbidden(describe(&e))
        }
        Ok(Err(e)) => ObjectSeen::Unknown(describe(&e)),
    }
}

/// Looks LocalQueue `q` up in namespace `ns`: (`ns`, `q`, what was seen).
async fn local_queue(
    gate: &KubeGate,
    lq: &ApiResource,
    ns: &str,
    q: &str,
) -> (String, String, ObjectSeen) {
    let get = |c| async move {
        Api::<DynamicObject>::namespaced_with(c, ns, lq)
            .get_opt(q)
            .await
    };
    (
        ns.to_string(),
        q.to_string(),
        seen_of(bounded_kube(gate, get).await),
    )
}

/// Runs the Kueue probes in `namespace` through `gate`, and the LocalQueue
/// lookups of the tenant namespaces (`tenants`: namespace and the names of
/// the rules naming it).
pub async fn observe(
    gate: &KubeGate,
    namespace: &str,
    settings: &KueueSettings,
    tenants: &[Tenant],
) -> KueueSeen {
    let group_version = format!("{API_GROUP}/{API_VERSION}");
    let discovered = bounded_kube(gate, |c| {
        let gv = group_version.clone();
        async move { c.list_api_group_resources(&gv).await }
    })
    .await;
    let api = match discovered {
        Err(why) => ApiSeen::Unknown(why),
        Ok(Ok(list)) if list.resources.iter().any(|r| r.name == "localqueues") => ApiSeen::Served,
        Ok(Ok(_)) => ApiSeen::Missing,
        Ok(Err(e)) if status_code(&e) == Some(404) => ApiSeen::Missing,
        Ok(Err(e)) => ApiSeen::Unknown(describe(&e)),
    };
    let mut seen = KueueSeen {
        namespace: namespace.to_string(),
        api,
        queues: Vec::new(),
        tenant_queues: Vec::new(),
        classes: Vec::new(),
    };
    if seen.api == ApiSeen::Missing {
        return seen;
    }
    let lq = resource("LocalQueue", "localqueues");
    let tenant_rules: Vec<String> = tenants.iter().flat_map(|t| t.rules.clone()).collect();
    let queues = settings
        .home_queues(&tenant_rules)
        .into_iter()
        .map(|q| local_queue(gate, &lq, namespace, q));
    let tenant_queues = tenants.iter().flat_map(|t| {
        settings
            .queues_of_rules(&t.rules)
            .into_iter()
            .map(|q| local_queue(gate, &lq, &t.namespace, q))
    });
    let pc = resource("WorkloadPriorityClass", "workloadpriorityclasses");
    let classes = settings.all_priority_classes().into_iter().map(|name| {
        let pc = pc.clone();
        async move {
            let get = |c| async move { Api::<DynamicObject>::all_with(c, &pc).get_opt(name).await };
            (name.to_string(), seen_of(bounded_kube(gate, get).await))
        }
    });
    let (queues, tenant_queues, classes) =
        futures::join!(join_all(queues), join_all(tenant_queues), join_all(classes));
    seen.queues = queues.into_iter().map(|(_, q, s)| (q, s)).collect();
    seen.tenant_queues = tenant_queues;
    seen.classes = classes;
    seen
}
