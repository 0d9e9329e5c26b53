//! The simulator through the real `kube` client: CRUD of every served type,
//! optimistic concurrency, selectors, pagination, and the Job lifecycle.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::runtime::wait::{await_condition, Condition};
use kube::Client;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::json;

async fn start() -> (SimServer, Client) {
    let server = SimServer::start_local(SimConfig {
        default_run_seconds: 0.2,
        job_backoff_base: std::time::Duration::from_millis(20),
        ..SimConfig::default()
    })
    .expect("simulator starts");
    let client = server.client().await.expect("client");
    (server, client)
}

fn job(name: &str, annotations: serde_json::Value, spec_extra: serde_json::Value) -> Job {
    let mut spec = json!({
        "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "busybox:1.36", "command": ["echo"], "args": ["$(PROMPT)"],
             "env": [{"name": "PROMPT", "value": "hello"},
                     {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
        ]}}
    });
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "test"}, "annotations": annotations},
        "spec": spec,
    }))
    .expect("valid job")
}

fn condition(kind: &'static str) -> impl Condition<Job> {
    move |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
    }
}

async fn wait_for(jobs: &Api<Job>, name: &str, kind: &'static str, secs: u64) -> Job {
    tokio::time::timeout(
        Duration::from_secs(secs),
        await_condition(jobs.clone(), name, condition(kind)),
    )
    .await
    .unwrap_or_else(|_| panic!("job {name} did not reach {kind} within {secs}s"))
    .expect("watch works")
    .expect("job exists")
}

#[tokio::test]
async fn jobs_support_create_get_list_replace_patch_and_delete() {
    let (_s, client) = start().await;
    let jobs: Api<Job> = Api::default_namespaced(client);
    let created = jobs
        .create(
            &PostParams::default(),
            &job("crud", json!({}), json!({"suspend": true})),
        )
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.resource_version.is_some() && meta.creation_timestamp.is_some()
    );
    assert_eq!(meta.generation, Some(1));
    let got = jobs.get("crud").await.unwrap();
    assert_eq!(got.metadata.uid, meta.uid);
    assert_eq!(
        jobs.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    let mut replaced = got.clone();
    replaced
        .metadata
        .labels
        .get_or_insert_default()
        .insert("stage".into(), "two".into());
    let replaced = jobs
        .replace("crud", &PostParams::default(), &replaced)
        .await
        .unwrap();
    // resourceVersions are opaque strings to clients; this simulator's are
    // integers, compared as such ("9" sorts after "10" as a string).
    let rv = |j: &Job| -> u64 {
        let rv = j
            .metadata
            .resource_version
            .as_deref()
            .expect("a resourceVersion");
        rv.parse()
            .unwrap_or_else(|_| panic!("an integer resourceVersion: {rv:?}"))
    };
    assert!(
        rv(&replaced) > rv(&got),
        "a replace moves the resourceVersion forward: {} after {}",
        rv(&replaced),
        rv(&got)
    );

    // A replace with the old resourceVersion conflicts.
    let err = jobs
        .replace("crud", &PostParams::default(), &got)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    for (pp, patch) in [
        (
            PatchParams::default(),
            Patch::Merge(json!({"metadata": {"labels": {"m": "1"}}})),
        ),
        (
            PatchParams::default(),
            Patch::Strategic(json!({"metadata": {"labels": {"s": "1"}}})),
        ),
        (
            PatchParams::default(),
            Patch::Json::<serde_json::Value>(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/metadata/labels/j", "value": "1"}]),
                )
                .unwrap(),
            ),
        ),
    ] {
        jobs.patch("crud", &pp, &patch).await.unwrap();
    }
    let labels = jobs.get("crud").await.unwrap().metadata.labels.unwrap();
    for k in ["m", "s", "j", "stage", "app"] {
        assert!(labels.contains_key(k), "label {k} missing: {labels:?}");
    }

    jobs.delete("crud", &DeleteParams::background())
        .await
        .unwrap();
    let err = jobs.get("crud").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{err:?}"
    );
    let err = jobs
        .delete("crud", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );
}

#[tokio::test]
async fn pods_configmaps_and_leases_round_trip() {
    let (_s, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"generateName": "cm-"}, "data": {"a.md": "hi"}}),
    )
    .unwrap();
    let cm = cms.create(&PostParams::default(), &cm).await.unwrap();
    let name = cm.metadata.name.clone().unwrap();
    assert!(name.starts_with("cm-") && name.len() == 8, "{name}");
    cms.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"b.md": "x"}})),
    )
    .await
    .unwrap();
    assert_eq!(cms.get(&name).await.unwrap().data.unwrap().len(), 2);
    cms.delete(&name, &DeleteParams::default()).await.unwrap();

    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
    .unwrap();
    let lease = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut taken = lease.clone();
    taken.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("leader", &PostParams::default(), &taken)
        .await
        .unwrap();
    // The same stale object a second time loses the race.
    let err = leases
        .replace("leader", &PostParams::default(), &taken)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );

    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p1", "annotations": {"sim.orchestrator.dev/run-seconds": "0.1"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(pods.clone(), "p1", |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Succeeded")
        }),
    )
    .await
    .expect("pod finishes")
    .unwrap();
    assert!(done.is_some());
    let log = pods.logs("p1", &Default::default()).await.unwrap();
    assert!(log.contains("[sim] image: busybox"), "{log}");
    pods.delete("p1", &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_field_causes() {
    let (_s, client) = start().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let long = "a".repeat(64);
    let err = jobs
        .create(&PostParams::default(), &job(&long, json!({}), json!({})))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            // A real server reports the limit of the job-name template
            // labels the name turns into (the name is a valid subdomain).
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(
                s.message.contains("spec.template.labels")
                    && s.message.contains("must be no more than 63 characters"),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    let mut no_image = job("no-image", json!({}), json!({}));
    no_image
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = None;
    let err = jobs
        .create(&PostParams::default(), &no_image)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("spec.template.spec.containers[0].image")),
        "{err:?}"
    );
    let mut bad_label = job("bad-label", json!({}), json!({}));
    bad_label
        .metadata
        .labels
        .get_or_insert_default()
        .insert("x".into(), "not valid!".into());
    let err = jobs
        .create(&PostParams::default(), &bad_label)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("metadata.labels")),
        "{err:?}"
    );

    jobs.create(
        &PostParams::default(),
        &job("twice", json!({}), json!({"suspend": true})),
    )
    .await
    .unwrap();
    let err = jobs
        .create(
            &PostParams::default(),
            &job("twice", json!({}), json!({"suspend": true})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{err:?}"
    );

    let elsewhere: Api<Job> = Api::namespaced(client, "no-such-namespace");
    let err = elsewhere
        .create(&PostParams::default(), &job("x", json!({}), json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.message.contains("namespaces")),
        "{err:?}"
    );
}

#[tokio::test]
async fn selectors_and_pagination_select_and_page_like_kubernetes() {
    let (_s, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for i in 0..25 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i:02}"),
            "labels": {"tier": tier, "n": i.to_string()}}}))
            .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let count = |lp: ListParams| {
        let cms = cms.clone();
        async move { cms.list(&lp).await.unwrap().items.len() }
    };
    assert_eq!(count(ListParams::default().labels("tier=even")).await, 13);
    assert_eq!(count(ListParams::default().labels("tier!=even")).await, 12);
    assert_eq!(count(ListParams::default().labels("n in (1,2,3)")).await, 3);
    assert_eq!(
        count(ListParams::default().labels("n notin (1,2,3),tier")).await,
        22
    );
    assert_eq!(count(ListParams::default().labels("!tier")).await, 0);
    assert_eq!(
        count(ListParams::default().fields("metadata.name=cm-07")).await,
        1
    );
    assert_eq!(
        count(ListParams::default().fields("metadata.namespace=default")).await,
        25
    );

    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    loop {
        let page = cms.list(&lp).await.unwrap();
        assert!(page.items.len() <= 10);
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names.len(), 25);
    names.dedup();
    assert_eq!(names.len(), 25);

    // All namespaces.
    let all: Api<ConfigMap> = Api::all(client);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        25
    );
}

#[tokio::test]
async fn a_watch_sees_added_modified_and_deleted_in_order() {
    let (_s, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().labels("w=1"), &rv)
        .await
        .unwrap()
        .boxed();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "w", "labels": {"w": "1"}}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    // Leaving the selection is a DELETED for this watch.
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"w": "2"}}})),
    )
    .await
    .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        kinds.push(match ev {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        });
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn a_job_runs_to_complete_and_its_pod_logs_what_it_was_given() {
    let (_s, client) = start().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(
        &PostParams::default(),
        &job(
            "ok",
            json!({"sim.orchestrator.dev/run-seconds": "0.3"}),
            json!({}),
        ),
    )
    .await
    .unwrap();
    let done = wait_for(&jobs, "ok", "Complete", 10).await;
    let st = done.status.unwrap();
    assert_eq!(st.succeeded, Some(1));
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    let pods: Api<Pod> = Api::default_namespaced(client);
    let list = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=ok"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let pod = &list.items[0];
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
    let log = pods
        .logs(pod.metadata.name.as_ref().unwrap(), &Default::default())
        .await
        .unwrap();
    // argv as the container would get it: `$(PROMPT)` expanded.
    assert!(log.contains(r#"[sim] args: ["hello"]"#), "{log}");
    let env_line = log
        .lines()
        .find(|l| l.starts_with("[sim] env: "))
        .unwrap_or_default();
    assert_eq!(env_line, "[sim] env: PROMPT, TOKEN (from secret)", "{log}");
}

#[tokio::test]
async fn a_failing_job_retries_up_to_its_backoff_limit_then_fails() {
    let (_s, client) = start().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let ann =
        json!({"sim.orchestrator.dev/run-seconds": "0.1", "sim.orchestrator.dev/exit-code": "3"});
    jobs.create(
        &PostParams::default(),
        &job("bad", ann, json!({"backoffLimit": 2})),
    )
    .await
    .unwrap();
    let failed = wait_for(&jobs, "bad", "Failed", 15).await;
    let st = failed.status.unwrap();
    assert_eq!(st.failed, Some(3), "one try plus two retries");
    let cond = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("BackoffLimitExceeded"));
    let pods: Api<Pod> = Api::default_namespaced(client);
    assert_eq!(
        pods.list(&ListParams::default().labels("job-name=bad"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
}

#[tokio::test]
async fn a_job_past_its_active_deadline_fails_with_deadline_exceeded() {
    let (_s, client) = start().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({"sim.orchestrator.dev/run-seconds": "30"}),
            json!({"activeDeadlineSeconds": 1}),
        ),
    )
    .await
    .unwrap();
    let failed = wait_for(&jobs, "slow", "Failed", 10).await;
    let cond = failed
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("DeadlineExceeded"));
    // The deadline kills the running pod: it is terminating at once (a
    // deletionTimestamp), then gone after its containers stopped.
    let pods: Api<Pod> = Api::default_namespaced(client);
    let lp = ListParams::default().labels("job-name=slow");
    let left = pods.list(&lp).await.unwrap().items;
    assert!(
        left.iter().all(|p| p.metadata.deletion_timestamp.is_some()),
        "{left:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pods.list(&lp).await.unwrap().items.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the pod never went");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_suspended_job_has_no_pods_until_unsuspended() {
    let (_s, client) = start().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(
        &PostParams::default(),
        &job(
            "later",
            json!({"sim.orchestrator.dev/run-seconds": "0.1"}),
            json!({"suspend": true}),
        ),
    )
    .await
    .unwrap();
    let suspended = wait_for(&jobs, "later", "Suspended", 5).await;
    assert_eq!(suspended.status.unwrap().active.unwrap_or(0), 0);
    let pods: Api<Pod> = Api::default_namespaced(client);
    assert!(pods
        .list(&ListParams::default().labels("job-name=later"))
        .await
        .unwrap()
        .items
        .is_empty());
    jobs.patch(
        "later",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    wait_for(&jobs, "later", "Complete", 10).await;
}

#[tokio::test]
async fn finished_jobs_are_deleted_after_their_ttl_with_their_pods() {
    let (_s, client) = start().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(
        &PostParams::default(),
        &job(
            "ttl",
            json!({"sim.orchestrator.dev/run-seconds": "0.1"}),
            json!({"ttlSecondsAfterFinished": 1}),
        ),
    )
    .await
    .unwrap();
    wait_for(&jobs, "ttl", "Complete", 10).await;
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if jobs.get_opt("ttl").await.unwrap().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "TTL deletion within 10s");
    let pods: Api<Pod> = Api::default_namespaced(client);
    assert!(pods
        .list(&ListParams::default().labels("job-name=ttl"))
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn deleting_a_job_cascades_per_propagation_policy() {
    let (_s, client) = start().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let run = json!({"sim.orchestrator.dev/run-seconds": "60"});
    for (name, policy) in [
        ("bg", Some(PropagationPolicy::Background)),
        ("fg", Some(PropagationPolicy::Foreground)),
        ("orphan", None),
    ] {
        let j = jobs
            .create(&PostParams::default(), &job(name, run.clone(), json!({})))
            .await
            .unwrap();
        let owned: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("{name}-files"), "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": j.metadata.uid.clone().unwrap(), "controller": true}]}})).unwrap();
        cms.create(&PostParams::default(), &owned).await.unwrap();
        let sel = ListParams::default().labels(&format!("job-name={name}"));
        tokio::time::timeout(Duration::from_secs(5), async {
            while pods.list(&sel).await.unwrap().items.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("pod created");
        let dp = DeleteParams {
            propagation_policy: policy.clone(),
            ..DeleteParams::default()
        };
        jobs.delete(name, &dp).await.unwrap();
        if policy.is_some() {
            // Dependents are deleted (pods gracefully: they terminate
            // first); a Foreground owner stays until they are gone.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let left_job = jobs.get_opt(name).await.unwrap();
                let left_pods = pods.list(&sel).await.unwrap().items;
                let left_cm = cms.get_opt(&format!("{name}-files")).await.unwrap();
                if let (Some(j), false) = (&left_job, left_pods.is_empty()) {
                    assert!(j.metadata.deletion_timestamp.is_some(), "{name}");
                }
                if left_job.is_none() && left_pods.is_empty() && left_cm.is_none() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name}: dependents collected"
                );
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        } else {
            assert!(jobs.get_opt(name).await.unwrap().is_none());
            let left_pods = pods.list(&sel).await.unwrap().items;
            let left_cm = cms.get_opt(&format!("{name}-files")).await.unwrap();
            // batch/v1 Jobs orphan their dependents unless asked otherwise.
            assert_eq!(left_pods.len(), 1, "{name}");
            assert!(left_pods[0]
                .metadata
                .owner_references
                .as_ref()
                .is_none_or(|r| r.is_empty()));
            assert!(left_cm.is_some());
        }
    }
}

#[tokio::test]
async fn deletecollection_deletes_only_the_selected_objects() {
    let (_s, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let deleted = cms
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=x"),
        )
        .await
        .unwrap();
    let names: Vec<String> = deleted
        .left()
        .expect("the deleted objects")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn unknown_resources_unsupported_bodies_and_methods_get_kubernetes_status_errors() {
    let (s, _client) = start().await;
    let http = reqwest::Client::new();
    let url = s.url();
    let cases = [
        (
            http.get(format!("{url}/apis/batch/v1/namespaces/default/cronjobs")),
            404,
            "NotFound",
        ),
        (
            http.patch(format!("{url}/api/v1/namespaces/default/configmaps/x"))
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "UnsupportedMediaType",
        ),
        (
            http.post(format!("{url}/api/v1/namespaces/default/configmaps"))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "BadRequest",
        ),
        (
            http.post(format!("{url}/apis/batch/v1/jobs"))
                .json(&json!({})),
            405,
            "MethodNotAllowed",
        ),
        (
            http.get(format!("{url}/api/v1/namespaces/nope/pods/p")),
            404,
            "NotFound",
        ),
    ];
    for (req, code, reason) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), code);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], reason, "{body}");
        assert_eq!(body["code"], code);
    }
}

#[tokio::test]
async fn a_running_pod_prints_progress_lines_at_the_configured_interval() {
    let server = SimServer::start_local(SimConfig {
        log_every: Some(Duration::from_millis(40)),
        ..SimConfig::default()
    })
    .expect("simulator starts");
    let client = server.client().await.expect("client");
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(
        &PostParams::default(),
        &job(
            "ticks",
            json!({"sim.orchestrator.dev/run-seconds": "1.5"}),
            json!({}),
        ),
    )
    .await
    .expect("create");
    wait_for(&jobs, "ticks", "Complete", 30).await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let list = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=ticks"))
        .await
        .expect("list");
    let log = pods
        .logs(
            list.items[0].metadata.name.as_deref().expect("a name"),
            &Default::default(),
        )
        .await
        .expect("log");
    let ticks: Vec<u64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("[sim] working: tick "))
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert!(ticks.len() >= 2, "progress lines while it ran: {log}");
    assert!(
        ticks.windows(2).all(|w| w[0] < w[1]),
        "each tick once, in order: {ticks:?}"
    );
    let last_tick = log.rfind("[sim] working").expect("a tick");
    let exit = log.find("[sim] container exited").expect("the exit line");
    assert!(last_tick < exit, "no progress after the exit: {log}");
}

#[tokio::test]
async fn a_log_follow_keeps_its_place_when_the_log_buffer_wraps() {
    let server = SimServer::start_local(SimConfig {
        log_every: Some(Duration::from_millis(5)),
        limits: kube_api_sim::store::Limits {
            log_lines_per_pod: 20,
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .expect("simulator starts");
    let client = server.client().await.expect("client");
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(
        &PostParams::default(),
        &job(
            "wraps",
            json!({"sim.orchestrator.dev/run-seconds": "1.5"}),
            json!({}),
        ),
    )
    .await
    .expect("create");
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let list = pods
                .list(&ListParams::default().labels("batch.kubernetes.io/job-name=wraps"))
                .await
                .expect("list");
            let running = list
                .items
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
            if let Some(p) = running {
                break p.metadata.name.expect("a name");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the pod runs");
    let stream = pods
        .log_stream(
            &pod,
            &kube::api::LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .expect("follow");
    use futures::AsyncBufReadExt;
    let mut lines = stream.lines();
    let mut got = Vec::new();
    while let Some(line) = lines.next().await {
        got.push(line.expect("a line"));
    }
    let ticks = got
        .iter()
        .filter(|l| l.starts_with("[sim] working: tick "))
        .count();
    assert!(
        ticks > 20,
        "the follow read past the 20 lines the buffer keeps: {ticks} ticks"
    );
    assert!(
        got.last()
            .is_some_and(|l| l.starts_with("[sim] container exited")),
        "the follow ends with the exit line: {:?}",
        got.last()
    );
}
