//! Tenant namespaces: a rule's `namespace:` and `secret:` put its Jobs (and
//! their pods, Events) in that namespace with that Secret; the Job watch
//! covers every namespace a rule names; the operator API filters and shows
//! the namespace. A token holding the home Role and the tenant Role of one
//! namespace only (`k8s/role.yaml`, `k8s/tenant/role.yaml`, as the
//! simulator's `--token-rules` binds Roles with a namespace) runs that
//! namespace's Jobs and cannot touch the other's, and preflight names it;
//! a missing tenant namespace is named by `/ready` (degraded, not unready)
//! and by the answer to its deliveries. One task stays one Job when its
//! rule moves to another namespace.

mod api_support;
mod common;

use std::sync::Arc;

use api_support::*;
use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube_api_sim::authz::{rules_from_manifests, TokenGrant};
use kube_api_sim::{SimConfig, SimServer};
use orchestrator::cluster::dedup::{decode, key_hash, KEYS, SHARD_LABEL};
use orchestrator::cluster::permissions::{KUEUE, TENANT};
use orchestrator::sources::github::delivery_dedup_key;
use serde_json::{json, Value};

const PROMPT: &str = "    prompt: \"Implement {{ repository }}#{{ number }}\"\n";

/// A rule routing issues labeled `label` to `namespace` (with `secret`).
fn rule(name: &str, label: &str, namespace: Option<&str>, secret: Option<&str>) -> String {
    let mut r =
        format!("  - name: {name}\n    event: issues\n    label: {label}\n    kind: implement\n");
    if let Some(ns) = namespace {
        r.push_str(&format!("    namespace: {ns}\n"));
    }
    if let Some(s) = secret {
        r.push_str(&format!("    secret: {s}\n"));
    }
    r + PROMPT
}

/// A rules file of `rules` in a temporary directory (kept while the test runs).
struct RulesFile {
    _dir: tempfile::TempDir,
    path: String,
}

fn rules_file(rules: &[String]) -> RulesFile {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, format!("rules:\n{}", rules.concat())).expect("write rules");
    RulesFile {
        path: path.to_string_lossy().into_owned(),
        _dir: dir,
    }
}

async fn create_namespace(kube: &kube::Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    bounded(
        "create a namespace",
        WAIT,
        Api::<Namespace>::all(kube.clone()).create(&PostParams::default(), &ns),
    )
    .await
    .expect("create the namespace");
}

/// Job `name` in namespace `ns`, if it exists there.
async fn job_in(kube: &kube::Client, ns: &str, name: &str) -> Option<Job> {
    bounded(
        "get a job",
        WAIT,
        Api::<Job>::namespaced(kube.clone(), ns).get_opt(name),
    )
    .await
    .expect("get the job")
}

/// The managed Jobs of namespace `ns`, by name.
async fn names_in(kube: &kube::Client, ns: &str) -> Vec<String> {
    bounded(
        "list jobs",
        WAIT,
        Api::<Job>::namespaced(kube.clone(), ns).list(&ListParams::default().labels(MANAGED)),
    )
    .await
    .expect("list the jobs")
    .items
    .into_iter()
    .filter_map(|j| j.metadata.name)
    .collect()
}

/// Every Secret a Job's containers read: `envFrom` Secrets and the
/// `secretKeyRef`s of their env (the clone token), each once.
fn secrets_of(job: &Job) -> Vec<String> {
    let v = serde_json::to_value(job).expect("job JSON");
    let mut out: Vec<String> = Vec::new();
    let pod = &v["spec"]["template"]["spec"];
    for list in ["initContainers", "containers"] {
        for c in pod[list].as_array().cloned().unwrap_or_default() {
            for e in c["envFrom"].as_array().cloned().unwrap_or_default() {
                out.extend(e["secretRef"]["name"].as_str().map(str::to_string));
            }
            for e in c["env"].as_array().cloned().unwrap_or_default() {
                out.extend(
                    e["valueFrom"]["secretKeyRef"]["name"]
                        .as_str()
                        .map(str::to_string),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `issues/labeled.json` labeled `label` on issue `issue`.
fn labeled(label: &str, issue: u64) -> Vec<u8> {
    let mut v = issue_labeled_agent(issue);
    set(&mut v, "/label/name", label.into());
    bytes(&v)
}

/// Delivers an `issues` event and expects it queued: the Job's name.
async fn queued(app: &TestApp, delivery: &str, body: Vec<u8>) -> String {
    let a = app.deliver("issues", delivery, body).await;
    assert_eq!((a.status, a.status_field()), (202, "queued"), "{}", a.text);
    a.job().expect("the answer names the Job")
}

/// `GET /api/v1/jobs?…` with the CLI token: the names listed.
async fn listed(app: &TestApp, query: &str) -> (u16, Vec<String>, Value) {
    let r = call(app, "GET", &format!("/api/v1/jobs?{query}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    let names = r.json["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|j| j["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (r.status, names, r.json)
}

#[tokio::test]
async fn two_rules_with_two_namespaces_run_their_jobs_there_each_with_its_secret() {
    // Pods run long: the Jobs are seen running, then one is cancelled.
    let sim = start_sim(600.0);
    let admin = sim.client().await.expect("client");
    create_namespace(&admin, "team-a").await;
    create_namespace(&admin, "team-b").await;
    let rules = rules_file(&[
        rule("team-a", "team-a", Some("team-a"), Some("team-a-agent")),
        rule("team-b", "team-b", Some("team-b"), Some("team-b-agent")),
    ]);
    let app = spawn_app_on(
        sim.clone(),
        &[
            ("ORCHESTRATOR_RULES", &rules.path),
            ("JOB_SECRET_NAME", "agent-secrets"),
            ("API_TOKENS", API_TOKENS),
        ],
    )
    .await;
    let delivery_a = delivery_id();
    let a = queued(&app, &delivery_a, labeled("team-a", 1)).await;
    let b = queued(&app, &delivery_id(), labeled("team-b", 2)).await;
    // The built-in rule: the service's own namespace, JOB_SECRET_NAME.
    let home = queued(&app, &delivery_id(), labeled("agent", 3)).await;

    for (job, ns, secret) in [
        (&a, "team-a", "team-a-agent"),
        (&b, "team-b", "team-b-agent"),
        (&home, "default", "agent-secrets"),
    ] {
        let found = job_in(&admin, ns, job)
            .await
            .unwrap_or_else(|| panic!("{job} in {ns}"));
        assert_eq!(secrets_of(&found), [secret], "{job}: its agent's Secret");
        for other in ["team-a", "team-b", "default"].iter().filter(|o| **o != ns) {
            assert!(
                job_in(&admin, other, job).await.is_none(),
                "{job} only in {ns}, not in {other}"
            );
        }
    }
    // Admitted (unsuspended in its namespace) and seen running by the watch
    // of its namespace.
    for job in [&a, &b, &home] {
        let v = wait_state(&app, job, "running", WAIT).await;
        let want = if job == &a {
            "team-a"
        } else if job == &b {
            "team-b"
        } else {
            "default"
        };
        assert_eq!(v["namespace"], want, "{v}");
    }
    // The audit trail is on each Job in its namespace.
    let events: Vec<Event> = bounded(
        "list events",
        WAIT,
        Api::<Event>::namespaced(admin.clone(), "team-a").list(&ListParams::default()),
    )
    .await
    .expect("list events")
    .items;
    let on_a: Vec<&str> = events
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(a.as_str()))
        .filter_map(|e| e.reason.as_deref())
        .collect();
    assert!(
        on_a.contains(&"Accepted") && on_a.contains(&"Admitted"),
        "{on_a:?}"
    );

    // The operator API filters by namespace and shows it.
    let (status, names, page) = listed(&app, "namespace=team-a").await;
    assert_eq!((status, names), (200, vec![a.clone()]), "{page}");
    assert_eq!(page["items"][0]["namespace"], "team-a", "{page}");
    let (_, names, _) = listed(&app, "namespace=team-b&state=running").await;
    assert_eq!(names, [b.as_str()]);
    let (_, names, _) = listed(&app, "namespace=default").await;
    assert_eq!(names, [home.as_str()]);
    let (_, names, _) = listed(&app, "namespace=team-c").await;
    assert!(names.is_empty());
    let (status, _, bad) = listed(&app, "namespace=Team_B").await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .is_some_and(|m| m.contains("namespace")),
        "{bad}"
    );
    // Logs come from the pod in the Job's namespace.
    let logs = call(&app, "GET", &format!("/api/v1/jobs/{b}/logs"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(logs.status, 200, "{}", logs.text);

    // A redelivery is the same Job, in the same namespace.
    let again = app
        .deliver("issues", &delivery_a, labeled("team-a", 1))
        .await;
    assert_eq!(
        (again.status, again.status_field(), again.job()),
        (200, "duplicate", Some(a.clone())),
        "{}",
        again.text
    );
    assert_eq!(names_in(&admin, "team-a").await, [a.as_str()]);

    // A cancel reaches the Job in its namespace.
    let r = call(&app, "DELETE", &format!("/api/v1/jobs/{a}"))
        .token(CLI_TOKEN)
        .send()
        .await;
    assert_eq!(
        (r.status, &r.json["state"]),
        (200, &json!("cancelled")),
        "{}",
        r.text
    );
    let cancelled = job_in(&admin, "team-a", &a).await.expect("still there");
    assert_eq!(
        cancelled.spec.and_then(|s| s.suspend),
        Some(true),
        "suspended by the cancel"
    );
    app.stop().await.expect("a clean stop");
}

/// Whether the dedup record in `default` holds `key`.
async fn recorded(kube: &kube::Client, key: &str) -> bool {
    let shards = bounded(
        "list dedup shards",
        WAIT,
        Api::<ConfigMap>::namespaced(kube.clone(), "default")
            .list(&ListParams::default().labels(SHARD_LABEL)),
    )
    .await
    .expect("list the dedup shards")
    .items;
    let h = key_hash(key);
    shards.iter().any(|cm| {
        cm.binary_data
            .as_ref()
            .and_then(|d| d.get(KEYS))
            .is_some_and(|b| decode(&b.0).contains(&h))
    })
}

#[tokio::test]
async fn a_task_stays_one_job_when_its_rule_moves_to_another_namespace() {
    let sim = start_sim(0.3);
    let admin = sim.client().await.expect("client");
    create_namespace(&admin, "team-a").await;
    create_namespace(&admin, "team-b").await;
    let delivery = delivery_id();
    let body = labeled("team-a", 7);

    // First the rule runs its Jobs in team-a.
    let v1 = rules_file(&[rule("team-a", "team-a", Some("team-a"), None)]);
    let app = spawn_app_on(sim.clone(), &[("ORCHESTRATOR_RULES", &v1.path)]).await;
    let job = queued(&app, &delivery, body.clone()).await;
    assert!(job_in(&admin, "team-a", &job).await.is_some());
    let key = delivery_dedup_key(&delivery);
    wait_for("the dedup record to hold the task", WAIT, || async {
        recorded(&admin, &key).await.then_some(())
    })
    .await;
    app.stop().await.expect("a clean stop");

    // The rule now names team-b, and team-a is still watched (another
    // rule names it): the redelivery finds the Job there, a duplicate.
    let v2 = rules_file(&[
        rule("team-a", "team-a", Some("team-b"), None),
        rule("legacy", "legacy", Some("team-a"), None),
    ]);
    let app = spawn_app_on(sim.clone(), &[("ORCHESTRATOR_RULES", &v2.path)]).await;
    let again = app.deliver("issues", &delivery, body.clone()).await;
    assert_eq!(
        (again.status, again.status_field(), again.job()),
        (200, "duplicate", Some(job.clone())),
        "{}",
        again.text
    );
    assert!(names_in(&admin, "team-b").await.is_empty(), "no second Job");
    app.stop().await.expect("a clean stop");

    // team-a no longer watched at all: the dedup record (in the service's
    // own namespace, whatever the rules) still knows the task.
    let v3 = rules_file(&[rule("team-a", "team-a", Some("team-b"), None)]);
    let app = spawn_app_on(sim.clone(), &[("ORCHESTRATOR_RULES", &v3.path)]).await;
    let third = app.deliver("issues", &delivery, body).await;
    assert_eq!(
        (third.status, third.status_field(), third.job()),
        (200, "duplicate", Some(job.clone())),
        "{}",
        third.text
    );
    assert!(names_in(&admin, "team-b").await.is_empty(), "no second Job");
    assert_eq!(names_in(&admin, "team-a").await, [job]);
    // A new event of the moved rule runs in team-b.
    let moved = queued(&app, &delivery_id(), labeled("team-a", 8)).await;
    assert!(job_in(&admin, "team-b", &moved).await.is_some());
    app.stop().await.expect("a clean stop");
}

const SA_TOKEN: &str = "service-account-token-of-the-tenant-test";

/// A manifest file's text with `namespace: ns` added to its metadata, as
/// `kubectl kustomize` renders it for that namespace.
fn in_namespace(path: &str, ns: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + path)
        .expect("manifest");
    text.replacen("metadata:\n", &format!("metadata:\n  namespace: {ns}\n"), 1)
}

#[test]
fn the_tenant_role_grants_exactly_what_preflight_checks_there() {
    let rules = rules_from_manifests(&in_namespace("k8s/tenant/role.yaml", "x")).expect("Role");
    let mut granted: Vec<String> = Vec::new();
    for r in &rules {
        for g in r.api_groups.as_deref().unwrap_or_default() {
            for res in r.resources.as_deref().unwrap_or_default() {
                for v in &r.verbs {
                    granted.push(format!("{v} {g}/{res}"));
                }
            }
        }
        assert!(
            r.resource_names.is_none(),
            "no named objects in a tenant Role"
        );
    }
    // TENANT, and in Kueue mode the LocalQueue lookup (KUEUE) there too.
    let mut checked: Vec<String> = TENANT
        .iter()
        .chain(KUEUE)
        .map(|p| {
            let res = match p.subresource {
                Some(sub) => format!("{}/{sub}", p.resource),
                None => p.resource.to_string(),
            };
            format!("{} {}/{res}", p.verb, p.group)
        })
        .collect();
    granted.sort();
    checked.sort();
    assert_eq!(granted, checked, "k8s/tenant/role.yaml vs TENANT");
}

#[tokio::test]
async fn a_token_holding_one_tenant_namespace_s_role_cannot_touch_the_other() {
    // The service account's Roles as `--token-rules` reads them: the home
    // Role in `default`, the tenant Role in team-a only.
    let manifests = format!(
        "{}\n---\n{}",
        in_namespace("k8s/role.yaml", "default"),
        in_namespace("k8s/tenant/role.yaml", "team-a")
    );
    let grant = TokenGrant::from_manifests(
        SA_TOKEN,
        "system:serviceaccount:default:orchestrator",
        &manifests,
    )
    .expect("the Roles");
    let sim = Arc::new(
        SimServer::start_local(SimConfig {
            token: Some("admin-token-of-the-tenant-test".into()),
            grants: vec![grant],
            default_run_seconds: 0.3,
            ..SimConfig::default()
        })
        .expect("the simulator starts"),
    );
    let admin = sim.client().await.expect("client");
    create_namespace(&admin, "team-a").await;
    create_namespace(&admin, "team-b").await;
    let rules = rules_file(&[
        rule("team-a", "team-a", Some("team-a"), None),
        rule("team-b", "team-b", Some("team-b"), None),
    ]);
    let kubeconfig = sim.kubeconfig_for_token(Some(SA_TOKEN));
    let app = spawn_app_with_kubeconfig(
        sim.clone(),
        kubeconfig,
        &[
            ("ORCHESTRATOR_RULES", &rules.path),
            ("API_TOKENS", API_TOKENS),
            ("PREFLIGHT_INTERVAL_SECONDS", "0.2"),
        ],
    )
    .await;

    // Ready (team-b fails only its own rule), naming what team-b lacks.
    let denied = "cannot create jobs.batch in namespace \"team-b\"";
    let r = wait_for("/ready to name team-b's missing Role", WAIT, || async {
        let r = app.get("/ready").await;
        let named = r.json["degraded"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m == denied));
        (r.status == 200 && named).then_some(r)
    })
    .await;
    let degraded = r.json["degraded"].as_array().cloned().unwrap_or_default();
    assert!(
        degraded
            .iter()
            .all(|m| m.as_str().is_some_and(|m| m.contains("\"team-b\""))),
        "only team-b: {}",
        r.text
    );
    assert!(
        degraded.len() >= TENANT.len(),
        "every tenant permission in team-b: {}",
        r.text
    );

    // team-a's Job runs there through to the end; team-b's is refused.
    let a = queued(&app, &delivery_id(), labeled("team-a", 1)).await;
    wait_state(&app, &a, "succeeded", WAIT).await;
    assert_eq!(names_in(&admin, "team-a").await, [a]);
    let b = app
        .deliver("issues", &delivery_id(), labeled("team-b", 2))
        .await;
    b.assert_json();
    assert_eq!(b.status, 503, "{}", b.text);
    assert!(b.text.contains("permission"), "{}", b.text);
    assert!(
        names_in(&admin, "team-b").await.is_empty(),
        "nothing in team-b"
    );
    // The home namespace's own work goes on: a built-in rule's task.
    let home = queued(&app, &delivery_id(), labeled("agent", 3)).await;
    wait_state(&app, &home, "succeeded", WAIT).await;
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn preflight_names_a_missing_tenant_namespace_and_its_tasks_wait_for_it() {
    let sim = start_sim(0.3);
    let admin = sim.client().await.expect("client");
    create_namespace(&admin, "team-a").await;
    let rules = rules_file(&[
        rule("team-a", "team-a", Some("team-a"), None),
        rule("team-c", "team-c", Some("team-c"), None),
    ]);
    let app = spawn_app_on(
        sim.clone(),
        &[
            ("ORCHESTRATOR_RULES", &rules.path),
            ("API_TOKENS", API_TOKENS),
            ("PREFLIGHT_INTERVAL_SECONDS", "0.2"),
        ],
    )
    .await;
    let missing = "tenant namespace \"team-c\" does not exist (named by rule \"team-c\")";
    wait_for("/ready to name the missing namespace", WAIT, || async {
        let r = app.get("/ready").await;
        (r.status == 200 && r.json["degraded"] == json!([missing])).then_some(())
    })
    .await;
    // Its task is answered 503 naming it; the other tenant's runs.
    let delivery_c = delivery_id();
    let c = app
        .deliver("issues", &delivery_c, labeled("team-c", 1))
        .await;
    c.assert_json();
    assert_eq!(
        (c.status, c.json["error"].as_str()),
        (503, Some("namespace_missing")),
        "{}",
        c.text
    );
    assert!(c.text.contains("team-c"), "{}", c.text);
    let a = queued(&app, &delivery_id(), labeled("team-a", 2)).await;
    wait_state(&app, &a, "succeeded", WAIT).await;

    // Created: ready without a word, and the retried delivery runs there.
    create_namespace(&admin, "team-c").await;
    wait_for("/ready to drop the degraded check", WAIT, || async {
        let r = app.get("/ready").await;
        (r.status == 200 && r.json.get("degraded").is_none()).then_some(())
    })
    .await;
    let c = queued(&app, &delivery_c, labeled("team-c", 1)).await;
    wait_state(&app, &c, "succeeded", WAIT).await;
    assert_eq!(names_in(&admin, "team-c").await, [c]);
    app.stop().await.expect("a clean stop");
}
