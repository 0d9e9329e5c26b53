//! Pods and namespaces that take time to go, scheduling and the kubelet's
//! events.
//!
//! Sources (Kubernetes repository and documentation):
//! - "Termination of Pods" (kubernetes.io/docs/concepts/workloads/pods/
//!   pod-lifecycle/): a deleted pod gets a `deletionTimestamp` and stays,
//!   Terminating, for at most its grace period (30 s by default) while the
//!   kubelet stops it; `--grace-period=0` removes it at once. The grace
//!   period is `gracePeriodSeconds` or the pod's
//!   `terminationGracePeriodSeconds`, 0 for a pod never scheduled or already
//!   finished (`CheckGracefulDelete`, pkg/registry/core/pod/strategy.go).
//! - Namespaces: a deleted namespace is `Terminating` (`status.phase`,
//!   `deletionTimestamp`) until the namespace controller has deleted its
//!   contents (pkg/controller/namespace); a create in it is refused by the
//!   NamespaceLifecycle admission plugin with `403 Forbidden` "unable to
//!   create new content in namespace X because it is being terminated" and a
//!   `NamespaceTerminating` cause at `metadata.namespace`
//!   (plugin/pkg/admission/namespace/lifecycle). Finalizers keep an object
//!   (and so its namespace) until they are removed.
//! - Events: `Scheduled` "Successfully assigned ns/pod to node"
//!   (pkg/scheduler/schedule_one.go); `Pulled` `Container image "…" already
//!   present on machine` (pkg/kubelet/images); `Created` "Created container:
//!   c", `Started` "Started container c", `Killing` "Stopping container c"
//!   (pkg/kubelet/kuberuntime/kuberuntime_container.go).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use super::kubectl_support::Cluster;

/// Polls `check` (bounded) until it returns `Some`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn pod(name: &str, grace: i64, termination_seconds: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {
            "sim.orchestrator.dev/run-seconds": "600",
            "sim.orchestrator.dev/termination-seconds": termination_seconds}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }))
    .expect("pod")
}

async fn running(pods: &Api<Pod>, name: &str) -> Pod {
    until(&format!("{name} running"), || async {
        let p = pods.get(name).await.ok()?;
        let phase = p.status.as_ref()?.phase.as_deref()?;
        (phase == "Running").then_some(p)
    })
    .await
}

#[tokio::test]
async fn a_deleted_pod_terminates_within_its_grace_period_then_goes() {
    let (client, _sim) = kube_api_sim::start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    // A container that ignores SIGTERM: it is killed when 1 s of grace ends.
    pods.create(&PostParams::default(), &pod("slow", 1, "600"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("other", 30, "0"))
        .await
        .unwrap();
    let (slow, other) = (running(&pods, "slow").await, running(&pods, "other").await);
    let (s, o) = (slow.status.unwrap(), other.status.unwrap());
    assert_eq!(slow.spec.unwrap().node_name.as_deref(), Some("sim-node"));
    assert_eq!(s.host_ip, o.host_ip);
    assert!(s.pod_ip.is_some() && s.pod_ip != o.pod_ip, "{s:?} {o:?}");
    assert_eq!(s.pod_ips.unwrap()[0].ip, s.pod_ip.unwrap());

    let deleted = pods
        .delete("slow", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("a graceful delete answers with the pod");
    assert!(deleted.metadata.deletion_timestamp.is_some());
    assert_eq!(deleted.metadata.deletion_grace_period_seconds, Some(1));
    // Still there, Terminating, then gone.
    assert!(pods.get("slow").await.is_ok());
    until("slow gone", || async {
        pods.get_opt("slow").await.unwrap().is_none().then_some(())
    })
    .await;

    // gracePeriodSeconds=0 removes it at once.
    pods.delete("other", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("other").await.unwrap().is_none());

    let events: Api<Event> = Api::default_namespaced(client);
    let lp = ListParams::default().fields("involvedObject.name=slow");
    let seen = until("the Killing event", || async {
        let evs = events.list(&lp).await.ok()?.items;
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("Killing"))
            .then_some(evs)
    })
    .await;
    let said: Vec<(String, String)> = seen
        .iter()
        .map(|e| (e.reason.clone().unwrap(), e.message.clone().unwrap()))
        .collect();
    for (reason, message) in [
        (
            "Scheduled",
            "Successfully assigned default/slow to sim-node",
        ),
        (
            "Pulled",
            "Container image \"busybox:1.36\" already present on machine",
        ),
        ("Created", "Created container: c"),
        ("Started", "Started container c"),
        ("Killing", "Stopping container c"),
    ] {
        assert!(
            said.contains(&(reason.to_string(), message.to_string())),
            "{reason}: {said:?}"
        );
    }
    let started = seen
        .iter()
        .find(|e| e.reason.as_deref() == Some("Started"))
        .unwrap();
    assert_eq!(
        started.involved_object.field_path.as_deref(),
        Some("spec.containers{c}")
    );
    assert_eq!(
        started.source.as_ref().unwrap().component.as_deref(),
        Some("kubelet")
    );
}

#[tokio::test]
async fn a_deleted_namespace_is_terminating_until_its_contents_and_finalizers_are_gone() {
    let (client, _sim) = kube_api_sim::start().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "doomed");
    let kept: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "kept", "finalizers": ["example.com/keep"]}}))
    .unwrap();
    cms.create(&PostParams::default(), &kept).await.unwrap();
    pods.create(&PostParams::default(), &pod("p", 30, "0.2"))
        .await
        .unwrap();
    running(&pods, "p").await;

    let answer = namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the namespace, Terminating");
    assert_eq!(answer.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(answer.metadata.deletion_timestamp.is_some());

    let new: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "new"}})).unwrap();
    let Err(kube::Error::Api(status)) = cms.create(&PostParams::default(), &new).await else {
        panic!("a create in a Terminating namespace must fail");
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "configmaps \"new\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    let cause = &status.details.unwrap().causes[0];
    assert_eq!(
        (
            cause.reason.as_str(),
            cause.field.as_str(),
            cause.message.as_str()
        ),
        (
            "NamespaceTerminating",
            "metadata.namespace",
            "namespace doomed is being terminated"
        )
    );

    // The pod goes; the finalized ConfigMap and so the namespace stay.
    until("the pod gone", || async {
        pods.get_opt("p").await.unwrap().is_none().then_some(())
    })
    .await;
    let cm = cms.get("kept").await.unwrap();
    assert!(cm.metadata.deletion_timestamp.is_some());
    assert!(namespaces.get("doomed").await.is_ok());
    cms.patch(
        "kept",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    until("the namespace gone", || async {
        namespaces
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[test]
fn kubectl_sees_terminating_pods_and_namespaces() {
    let cluster = Cluster::start();
    cluster.ok(&["create", "namespace", "old"]);
    // The pod ignores SIGTERM; a finalizer holds the namespace until the
    // test lets it go.
    let manifest = cluster.file(
        "objects.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: old\n  annotations:\n    \
         sim.orchestrator.dev/run-seconds: \"600\"\n    \
         sim.orchestrator.dev/termination-seconds: \"600\"\nspec:\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: busybox:1.36\n\
         ---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  namespace: old\n  \
         finalizers: [example.com/keep]\n",
    );
    cluster.ok(&["apply", "-f", &manifest]);
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/p",
        "-n",
        "old",
        "--timeout=20s",
    ]);
    // `-o wide` shows the pod's own IP and its node.
    let wide = cluster.ok(&["get", "pod", "p", "-n", "old", "-o", "wide"]);
    assert!(
        wide.contains(" 10.244.") && wide.contains(" sim-node "),
        "{wide}"
    );
    let out = cluster.ok(&["delete", "namespace", "old", "--wait=false"]);
    assert_eq!(out.trim(), "namespace \"old\" deleted");
    let phase = cluster.ok(&["get", "namespace", "old", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Terminating");
    let listed = cluster.ok(&["get", "pods", "-n", "old"]);
    assert!(listed.contains("Terminating"), "{listed}");
    let err = cluster.fails(&["create", "configmap", "x", "-n", "old"]);
    assert!(
        err.contains("configmaps \"x\" is forbidden: unable to create new content in namespace old because it is being terminated"),
        "{err}"
    );
    // kubectl delete of the pod waits until its grace period is over.
    let out = cluster.ok(&["delete", "pod", "p", "-n", "old", "--timeout=20s"]);
    assert_eq!(out.trim(), "pod \"p\" deleted");
    let err = cluster.fails(&["get", "pod", "p", "-n", "old"]);
    assert!(err.contains("pods \"p\" not found"), "{err}");
    cluster.ok(&[
        "patch",
        "configmap",
        "keep",
        "-n",
        "old",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    cluster.ok(&["wait", "--for=delete", "namespace/old", "--timeout=20s"]);
    let err = cluster.fails(&["get", "namespace", "old"]);
    assert!(err.contains("namespaces \"old\" not found"), "{err}");
}

/// Job pods carry the `batch.kubernetes.io/job-tracking` finalizer until the
/// Job controller has counted them; a pod deleted by someone else counts as
/// failed and is replaced at once (the default `podReplacementPolicy:
/// TerminatingOrFailed`; pkg/controller/job `isPodFailed`, the Job
/// concept page's "Job tracking with finalizers" and "Delayed creation of
/// replacement pods"); deleting the Job (Background) takes its pods along.
#[tokio::test]
async fn job_pods_are_tracked_with_a_finalizer_and_a_deleted_one_counts_as_failed() {
    use k8s_openapi::api::batch::v1::Job;
    let config = kube_api_sim::SimConfig {
        job_backoff_base: Duration::from_millis(10),
        ..Default::default()
    };
    let (client, _sim) = kube_api_sim::start_with(config).await.unwrap();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "j", "annotations": {"sim.orchestrator.dev/run-seconds": "600"}},
        "spec": {"backoffLimit": 3, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox:1.36"}]}}},
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let lp = ListParams::default().labels("job-name=j");
    let first = until("the first pod", || async {
        pods.list(&lp).await.ok()?.items.into_iter().next()
    })
    .await;
    assert_eq!(
        first.metadata.finalizers.as_deref(),
        Some(&["batch.kubernetes.io/job-tracking".to_string()][..])
    );
    let name = first.metadata.name.clone().unwrap();
    running(&pods, &name).await;
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let status = until("the deleted pod counted and replaced", || async {
        let s = jobs.get("j").await.ok()?.status?;
        (s.failed == Some(1) && s.active == Some(1)).then_some(s)
    })
    .await;
    assert_eq!(status.succeeded, None);
    until("the deleted pod gone", || async {
        pods.get_opt(&name).await.unwrap().is_none().then_some(())
    })
    .await;
    jobs.delete("j", &DeleteParams::background()).await.unwrap();
    until("the Job's pods gone", || async {
        pods.list(&lp).await.ok()?.items.is_empty().then_some(())
    })
    .await;
}
