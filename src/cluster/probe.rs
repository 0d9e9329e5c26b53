//! The API calls of one preflight round: the server's version, the
//! namespace, and one `SelfSubjectAccessReview` per required permission;
//! then the same for each tenant namespace (its permissions being
//! [`TENANT`]).
//! Each call is a single attempt bounded by a timeout (the next round is the
//! retry); the answers become an [`Observation`] for [`crate::cluster::preflight::evaluate`].

use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::cluster::describe::describe;
use crate::cluster::gate::KubeGate;
use crate::cluster::permissions::{Permission, REQUIRED, TENANT};
use crate::cluster::preflight::{AccessSeen, NamespaceSeen, Observation, TenantSeen};

pub mod kueue;

/// How long one probe call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the probes in `namespace` and the `tenants` namespaces through
/// `gate`: every call waits for its turn under the gate's request-rate
/// bound and is counted in its metrics (`verb="preflight"`).
pub async fn observe(gate: &KubeGate, namespace: &str, tenants: &[String]) -> Observation {
    let version = match bounded(gate, |c| async move { c.apiserver_version().await }).await {
        Ok(v) => v.git_version,
        Err(why) => return Observation::Unreachable(why),
    };
    let home = futures::future::join(
        namespace_exists(gate, namespace, Probe::Lease),
        access(gate, namespace, REQUIRED),
    );
    let others = join_all(tenants.iter().map(|ns| async move {
        let (seen, access) = futures::join!(
            namespace_exists(gate, ns, Probe::ConfigMap),
            access(gate, ns, TENANT)
        );
        TenantSeen {
            namespace: ns.clone(),
            seen,
            access,
        }
    }));
    let ((namespace_seen, access), tenants) = futures::join!(home, others);
    Observation::Reached {
        version,
        namespace: namespace_seen,
        access,
        tenants,
    }
}

/// What a dry-run create asks for to learn whether a namespace exists: a
/// Lease in the service's own namespace, a ConfigMap in a tenant namespace
/// (what the service may create there).
#[derive(Clone, Copy)]
enum Probe {
    Lease,
    ConfigMap,
}

/// One call under the rate limit and [`CALL_TIMEOUT`]; errors as one line.
async fn bounded<T, Fut>(
    gate: &KubeGate,
    call: impl FnOnce(kube::Client) -> Fut,
) -> Result<T, String>
where
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    bounded_kube(gate, call).await?.map_err(|e| describe(&e))
}

/// Like [`bounded`], but hands back the client's error for inspection.
async fn bounded_kube<T, Fut>(
    gate: &KubeGate,
    call: impl FnOnce(kube::Client) -> Fut,
) -> Result<Result<T, kube::Error>, String>
where
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + CALL_TIMEOUT;
    gate.probe(deadline, "preflight", call)
        .await
        .ok_or_else(|| format!("no answer within {} s", CALL_TIMEOUT.as_secs()))
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// True for the API server's "the namespace does not exist" answer.
pub fn is_namespace_missing(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404
        && s.details.as_ref().is_some_and(|d| d.kind == "namespaces"))
}

/// Asks for a dry-run create of a Lease (or, in a tenant namespace, a
/// ConfigMap) in the namespace (the service may create those; the API
/// server refuses a create in a namespace that does not exist). If that is
/// forbidden (in a real cluster the Role cannot exist in a missing
/// namespace either), reads the namespace instead.
async fn namespace_exists(gate: &KubeGate, ns: &str, what: Probe) -> NamespaceSeen {
    let metadata = ObjectMeta {
        generate_name: Some("orchestrator-preflight-".into()),
        ..Default::default()
    };
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let create = |c| async move {
        match what {
            Probe::Lease => {
                let leases: Api<Lease> = Api::namespaced(c, ns);
                let probe = Lease {
                    metadata,
                    spec: None,
                };
                leases.create(&pp, &probe).await.map(|_| ())
            }
            Probe::ConfigMap => {
                let cms: Api<ConfigMap> = Api::namespaced(c, ns);
                let probe = ConfigMap {
                    metadata,
                    ..Default::default()
                };
                cms.create(&pp, &probe).await.map(|_| ())
            }
        }
    };
    let refused = match bounded_kube(gate, create).await {
        Err(why) => return NamespaceSeen::Unknown(why),
        Ok(Ok(_)) => return NamespaceSeen::Exists,
        Ok(Err(e)) if is_namespace_missing(&e) => return NamespaceSeen::Missing,
        Ok(Err(e)) if matches!(status_code(&e), Some(401 | 403)) => describe(&e),
        Ok(Err(e)) => return NamespaceSeen::Unknown(describe(&e)),
    };
    let read = |c| async move { Api::<Namespace>::all(c).get_opt(ns).await };
    match bounded_kube(gate, read).await {
        Err(why) => NamespaceSeen::Unknown(why),
        Ok(Ok(Some(_))) => NamespaceSeen::Exists,
        Ok(Ok(None)) => NamespaceSeen::Missing,
        Ok(Err(e)) => NamespaceSeen::Unknown(format!(
            "a dry-run Lease create in it was refused ({refused}) and so was reading it ({})",
            describe(&e)
        )),
    }
}

/// Asks about every permission of `list` in `ns`; `None` if the API
/// server does not serve `SelfSubjectAccessReview`.
async fn access(
    gate: &KubeGate,
    ns: &str,
    list: &'static [Permission],
) -> Option<Vec<(Permission, AccessSeen)>> {
    let asks = list.iter().map(|p| async move {
        let review = SelfSubjectAccessReview {
            metadata: ObjectMeta::default(),
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.to_string()),
                    verb: Some(p.verb.to_string()),
                    group: Some(p.group.to_string()),
                    resource: Some(p.resource.to_string()),
                    subresource: p.subresource.map(str::to_string),
                    name: p.name.map(str::to_string),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            },
            status: None,
        };
        let create = |c| async move {
            let reviews: Api<SelfSubjectAccessReview> = Api::all(c);
            reviews.create(&PostParams::default(), &review).await
        };
        let answer = bounded_kube(gate, create).await;
        (*p, answer)
    });
    let mut out = Vec::with_capacity(list.len());
    for (p, answer) in join_all(asks).await {
        let seen = match answer {
            Err(why) => AccessSeen::Unknown(why),
            Ok(Err(e)) if status_code(&e) == Some(404) => return None,
            Ok(Err(e)) => AccessSeen::Unknown(describe(&e)),
            Ok(Ok(r)) => match r.status {
                Some(s) if s.allowed => AccessSeen::Allowed,
                Some(s) => AccessSeen::Denied(s.reason.unwrap_or_default()),
                None => AccessSeen::Unknown("the review came back without a status".into()),
            },
        };
        out.push((p, seen));
    }
    Some(out)
}
