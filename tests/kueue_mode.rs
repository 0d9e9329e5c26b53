//! `SCHEDULER=kueue` against the simulator's Kueue emulation
//! (`SimConfig::kueue`), black-box: tasks go in through the task API and
//! GitHub webhooks, Kueue (emulated) admits, and what the service wrote to
//! the API server is read from the simulator's write log
//! (`SimServer::writes`), every Job change from its store.
//!
//! - 10 tasks, a ClusterQueue quota of 3: never more than 3 Jobs admitted
//!   and unfinished at once; the 7 that waited are admitted, and complete,
//!   in priority order (their WorkloadPriorityClass, from
//!   `KUEUE_PRIORITY_CLASSES`); the service never wrote `spec.suspend` nor
//!   the pod template (Kueue's flavor node selector is in every Job).
//! - Cancel deletes the Job (queued in Kueue or running), and the status
//!   comment still says cancelled.
//! - An eviction is reported ("evicted by Kueue, requeued": comment, Event,
//!   count on the Job, metric) and the Job completes after readmission.
//! - A spent budget holds a new Job back from Kueue (no queue label) until
//!   the budget day ends.
//! - No Kueue, a missing LocalQueue, a missing WorkloadPriorityClass:
//!   `/ready` is 503 naming each, with the fix.
//! - Back in built-in mode, a Job left in a Kueue LocalQueue is never
//!   unsuspended by the service (Kueue admits it).

mod api_support;
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_support::*;
use common::exposition::Exposition;
use common::*;
use github_api_sim::{GithubSimConfig, GithubSimServer};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, Patch, PatchParams};
use kube_api_sim::kueue::KueueConfig;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

const POOL: &str = "sim.example.com/pool";
const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
const CLASS_LABEL: &str = "kueue.x-k8s.io/priority-class";
const GITHUB_TOKEN: &str = "test-github-token";
const LIMIT: Duration = Duration::from_secs(60);

/// A ClusterQueue of `quota` Jobs on the `spot` flavor, the LocalQueue
/// `agents` feeding it, and three priority classes.
fn kueue(quota: u32) -> KueueConfig {
    KueueConfig::default()
        .flavor("spot", [(POOL, "spot")])
        .cluster_queue("team-cq", quota, Some("spot"))
        .local_queue("default", "agents", "team-cq")
        .priority_class("agents-high", 1000)
        .priority_class("agents-normal", 100)
        .priority_class("agents-low", 0)
}

/// A simulator emulating `kueue` whose pods run until a test shortens them
/// ([`finish`]).
fn sim_with(kueue: Option<KueueConfig>) -> Arc<SimServer> {
    init_logging();
    Arc::new(
        SimServer::start_local(SimConfig {
            default_run_seconds: 600.0,
            kueue,
            ..SimConfig::default()
        })
        .expect("the simulator starts"),
    )
}

const CLASSES: &str = "50=agents-high,10=agents-normal,0=agents-low";

fn kueue_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SCHEDULER", "kueue"),
        ("KUEUE_PRIORITY_CLASSES", CLASSES),
        ("API_TOKENS", API_TOKENS),
        // Ours would allow 10: Kueue's quota is what holds them back.
        ("MAX_CONCURRENT_JOBS", "10"),
        ("SCHEDULER_RESYNC_SECONDS", "0.2"),
        ("PREFLIGHT_INTERVAL_SECONDS", "0.2"),
    ]
}

async fn submit(app: &TestApp, title: &str, priority: i32) -> String {
    let mut body = task(title, "acme/api");
    body["priority"] = json!(priority);
    let r = submit_task(app, &body, None).await;
    assert_eq!(r.expect(202, "submit")["status"], "queued", "{}", r.text);
    job_of(&r)
}

fn suspended_job(j: &Job) -> bool {
    j.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

fn finished(j: &Job) -> bool {
    has_condition(j, "Complete") || has_condition(j, "Failed")
}

fn label<'a>(j: &'a Job, key: &str) -> Option<&'a str> {
    j.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Ends the running pods of Job `name` now (their run time becomes 0).
async fn finish(app: &TestApp, name: &str) {
    let pods = app.pods_of(name).await;
    assert!(!pods.is_empty(), "job {name} has a pod to finish");
    for p in pods {
        let pod = p.metadata.name.clone().unwrap_or_default();
        bounded(
            "patch the pod's run time",
            WAIT,
            app.pods_api().patch(
                &pod,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    "sim.orchestrator.dev/run-seconds": "0"}}})),
            ),
        )
        .await
        .expect("the pod is patched");
    }
}

/// Admitted (unsuspended) and unfinished Jobs, from every change of the
/// simulator's store: the most at once, and the order of first admission
/// and of completion.
#[derive(Default)]
struct Seen {
    running: std::collections::HashSet<String>,
    max_running: usize,
    admitted: Vec<String>,
    completed: Vec<String>,
    lagged: bool,
}

fn watch(sim: &SimServer) -> Arc<Mutex<Seen>> {
    use kube_api_sim::resources::JOBS;
    use kube_api_sim::store::EventType;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut rx = sim.store().subscribe();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    s.lock().expect("lock").lagged = true;
                    continue;
                }
                Err(_) => return,
            };
            if change.res != JOBS {
                continue;
            }
            let o = &change.object;
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            let done = o["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["status"] == "True" && (c["type"] == "Complete" || c["type"] == "Failed")
                })
            });
            let admitted = o["spec"]["suspend"] == false;
            let mut g = s.lock().expect("lock");
            if change.kind != EventType::Deleted && admitted && !done {
                if g.running.insert(name.clone()) && !g.admitted.contains(&name) {
                    g.admitted.push(name.clone());
                }
            } else {
                g.running.remove(&name);
            }
            if done && change.kind != EventType::Deleted && !g.completed.contains(&name) {
                g.completed.push(name.clone());
            }
            g.max_running = g.max_running.max(g.running.len());
        }
    });
    seen
}

/// The service's writes to Jobs that are not creates, with what they
/// touched: none may carry `spec.suspend` or anything of the pod template.
fn job_writes(sim: &SimServer) -> Vec<kube_api_sim::writes::Write> {
    sim.writes()
        .into_iter()
        .filter(|w| w.resource.starts_with("jobs") && w.verb != "create")
        .collect()
}

fn assert_no_suspend_or_template_writes(sim: &SimServer) {
    for w in job_writes(sim) {
        let spec = &w.body["spec"];
        assert!(
            spec.get("suspend").is_none() && spec.get("template").is_none(),
            "the service wrote {} {} {}: {}",
            w.verb,
            w.resource,
            w.name,
            w.body
        );
    }
}

async fn kueue_jobs(app: &TestApp) -> BTreeMap<String, Job> {
    app.jobs()
        .await
        .into_iter()
        .filter_map(|j| j.metadata.name.clone().map(|n| (n, j)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_tasks_under_a_quota_of_three_run_three_at_a_time_in_priority_order() {
    let sim = sim_with(Some(kueue(3)));
    let seen = watch(&sim);
    let app = spawn_app_on(sim.clone(), &kueue_env()).await;
    // Three of low priority take the quota first.
    let mut first = Vec::new();
    for i in 0..3 {
        first.push(submit(&app, &format!("first {i}"), 0).await);
    }
    wait_for("the first three admitted", LIMIT, || async {
        (seen.lock().expect("lock").running.len() == 3).then_some(())
    })
    .await;
    // Seven more, of mixed priority, wait in Kueue's queue.
    let priorities = [10, 50, 0, 50, 10, 0, 50];
    let mut waiting = Vec::new();
    for (i, p) in priorities.iter().enumerate() {
        waiting.push((submit(&app, &format!("then {i}"), *p).await, *p));
    }
    let jobs = wait_for("ten Jobs, seven suspended in Kueue", LIMIT, || async {
        let jobs = kueue_jobs(&app).await;
        let queued = jobs
            .values()
            .filter(|j| suspended_job(j) && label(j, QUEUE_LABEL) == Some("agents"))
            .count();
        (jobs.len() == 10 && queued == 7).then_some(jobs)
    })
    .await;
    for (name, p) in &waiting {
        let want = match p {
            50 => "agents-high",
            10 => "agents-normal",
            _ => "agents-low",
        };
        assert_eq!(label(&jobs[name], CLASS_LABEL), Some(want), "{name}");
    }
    // Kueue's queue, not a place in ours.
    let j = get_job(&app, &waiting[0].0).await.json;
    assert_eq!(j["state"], "queued", "{j}");
    assert_eq!(j["waiting"], "queued in Kueue LocalQueue agents", "{j}");
    assert!(j.get("position").is_none(), "{j}");

    // One finishes at a time (the earliest admitted): each frees one slot.
    for round in 0..10 {
        let next = {
            let g = seen.lock().expect("lock");
            g.admitted
                .iter()
                .find(|n| g.running.contains(*n))
                .cloned()
                .unwrap_or_else(|| panic!("round {round}: a running Job"))
        };
        finish(&app, &next).await;
        let want = (10 - round - 1).min(3);
        wait_for(&format!("round {round}: {next} done"), LIMIT, || async {
            let g = seen.lock().expect("lock");
            (g.completed.contains(&next) && g.running.len() == want).then_some(())
        })
        .await;
    }
    {
        let g = seen.lock().expect("lock");
        assert!(!g.lagged, "every change of the store was seen");
        assert_eq!(g.max_running, 3, "never more than the quota");
        let mut by_priority = waiting.clone();
        // Higher first; among equals, first come (a stable sort keeps it).
        by_priority.sort_by_key(|(_, p)| -p);
        let expected: Vec<&String> = by_priority.iter().map(|(n, _)| n).collect();
        let after_first: Vec<&String> = g.admitted.iter().skip(3).collect();
        assert_eq!(after_first, expected, "admitted in priority order");
        let completed: Vec<&String> = g.completed.iter().skip(3).collect();
        assert_eq!(completed, expected, "completed in priority order");
        assert_eq!(g.completed.len(), 10);
    }
    // Kueue, not the service, started them, on the flavor's nodes.
    for j in kueue_jobs(&app).await.values() {
        let selector = j
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default();
        assert_eq!(selector.get(POOL).map(String::as_str), Some("spot"));
        assert!(has_condition(j, "Complete"));
    }
    assert_no_suspend_or_template_writes(&sim);
    let creates = sim
        .writes()
        .into_iter()
        .filter(|w| w.resource == "jobs" && w.verb == "create")
        .count();
    assert_eq!(creates, 10);
    let m = Exposition::parse(&app.get("/metrics").await.text).expect("exposition");
    assert_eq!(
        m.value("orchestrator_kueue_admissions_total", &[]),
        Some(10.0)
    );
    app.stop().await.expect("a clean stop");
}

fn fake_github() -> GithubSimServer {
    GithubSimServer::start_local(GithubSimConfig {
        tokens: vec![GITHUB_TOKEN.into()],
        ..Default::default()
    })
    .expect("the fake GitHub API starts")
}

async fn start_with_github(sim: Arc<SimServer>, fake: &GithubSimServer) -> TestApp {
    let url = fake.url();
    let mut vars = kueue_env();
    vars.push(("GITHUB_API_URL", &url));
    vars.push(("GITHUB_TOKEN", GITHUB_TOKEN));
    spawn_app_on(sim, &vars).await
}

/// The status comment of issue `issue` once it says `words`.
async fn comment_saying(fake: &GithubSimServer, issue: u64, words: &str) -> String {
    wait_for(
        &format!("the comment on #{issue} to say {words:?}"),
        LIMIT,
        || async {
            fake.snapshot()["comments"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| {
                    c["issue"] == issue && c["body"].as_str().is_some_and(|b| b.contains(words))
                })
                .and_then(|c| c["body"].as_str().map(str::to_string))
        },
    )
    .await
}

async fn deliver_labeled(app: &TestApp, issue: u64) -> String {
    let answer = app
        .deliver("issues", &delivery_id(), bytes(&issue_labeled_agent(issue)))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    answer.job().expect("a job")
}

async fn wait_job(app: &TestApp, name: &str, what: &str, f: impl Fn(&Job) -> bool) -> Job {
    wait_for(&format!("job {name} {what}"), LIMIT, || async {
        app.job(name).await.filter(|j| f(j))
    })
    .await
}

fn running(j: &Job) -> bool {
    !suspended_job(j) && !finished(j) && j.status.as_ref().and_then(|s| s.active) == Some(1)
}

/// The reasons and messages of the Events on Job `name`.
async fn events_of(app: &TestApp, name: &str) -> Vec<(String, String)> {
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(app.kube.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    bounded("list events", WAIT, api.list(&lp))
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_is_reported_and_the_job_completes_after_readmission() {
    let sim = sim_with(Some(kueue(1)));
    let fake = fake_github();
    let app = start_with_github(sim.clone(), &fake).await;
    let a = deliver_labeled(&app, 1).await;
    wait_job(&app, &a, "running", running).await;
    comment_saying(&fake, 1, "— running").await;
    let b = deliver_labeled(&app, 2).await;
    comment_saying(&fake, 2, "queued in Kueue LocalQueue agents").await;

    sim.kueue_evict("default", &a)
        .expect("the eviction is asked for");
    // A is requeued behind B, which takes the quota.
    wait_job(&app, &b, "running", running).await;
    let body = comment_saying(&fake, 1, "evicted by Kueue, requeued (eviction 1)").await;
    assert!(body.contains("— queued"), "{body}");
    assert!(
        body.contains("waiting: queued in Kueue LocalQueue agents"),
        "{body}"
    );
    let evicted = wait_job(&app, &a, "counted evicted", |j| {
        j.metadata
            .annotations
            .as_ref()
            .and_then(|x| x.get("orchestrator.dev/kueue-evictions"))
            .is_some_and(|n| n == "1")
    })
    .await;
    assert!(suspended_job(&evicted));
    let events = wait_for("the Evicted Event", LIMIT, || async {
        let e = events_of(&app, &a).await;
        e.iter().any(|(r, _)| r == "Evicted").then_some(e)
    })
    .await;
    let (_, message) = events
        .iter()
        .find(|(r, _)| r == "Evicted")
        .expect("Evicted");
    assert!(
        message.starts_with("evicted by Kueue, requeued in LocalQueue \"agents\" (eviction 1)"),
        "{message}"
    );
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Admitted" && m.contains("admitted by Kueue")),
        "{events:?}"
    );
    let m = Exposition::parse(&app.get("/metrics").await.text).expect("exposition");
    assert_eq!(
        m.value("orchestrator_kueue_evictions_total", &[]),
        Some(1.0)
    );

    // B ends; Kueue readmits A, which then completes.
    finish(&app, &b).await;
    comment_saying(&fake, 2, "— succeeded").await;
    wait_job(&app, &a, "running again", running).await;
    comment_saying(&fake, 1, "readmitted by Kueue after an eviction").await;
    finish(&app, &a).await;
    wait_job(&app, &a, "complete", |j| has_condition(j, "Complete")).await;
    comment_saying(&fake, 1, "— succeeded").await;
    assert_no_suspend_or_template_writes(&sim);
    assert!(
        !job_writes(&sim).is_empty(),
        "the report marks were written (the check above saw patches)"
    );
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_the_job_whether_queued_in_kueue_or_running() {
    let sim = sim_with(Some(kueue(1)));
    let fake = fake_github();
    let app = start_with_github(sim.clone(), &fake).await;
    let running_job = deliver_labeled(&app, 3).await;
    wait_job(&app, &running_job, "running", running).await;
    let queued_job = deliver_labeled(&app, 4).await;
    comment_saying(&fake, 4, "queued in Kueue LocalQueue agents").await;
    for (name, issue) in [(&queued_job, 4), (&running_job, 3)] {
        let r = call(&app, "DELETE", &format!("/api/v1/jobs/{name}"))
            .token(CLI_TOKEN)
            .send()
            .await;
        assert_eq!(r.expect(200, "cancel")["state"], "cancelled", "{}", r.text);
        wait_for(&format!("job {name} deleted"), LIMIT, || async {
            app.job(name).await.is_none().then_some(())
        })
        .await;
        wait_for(&format!("the pods of {name} gone"), LIMIT, || async {
            app.pods_of(name).await.is_empty().then_some(())
        })
        .await;
        // Deleted at once, and still reported.
        comment_saying(&fake, issue, "— cancelled").await;
        let deletes = sim
            .writes()
            .into_iter()
            .filter(|w| w.verb == "delete" && w.resource == "jobs" && &w.name == name)
            .count();
        assert_eq!(deletes, 1, "{name}");
        wait_for(&format!("the Cancelled Event of {name}"), LIMIT, || async {
            events_of(&app, name)
                .await
                .iter()
                .any(|(r, m)| r == "Cancelled" && m.contains("through the API"))
                .then_some(())
        })
        .await;
    }
    // Nothing requeued them.
    assert!(app.jobs().await.is_empty());
    assert_no_suspend_or_template_writes(&sim);
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_holds_new_jobs_back_from_kueue_until_the_day_ends() {
    let sim = sim_with(Some(kueue(3)));
    let mut vars = kueue_env();
    // 0.02 agent-minutes (1.2 s) a day for the CLI's tasks.
    vars.push(("BUDGET_MINUTES_PER_SOURCE_PER_DAY", "cli=0.02"));
    vars.push(("JOB_TTL_SECONDS", "86400"));
    let app = spawn_app_on(sim.clone(), &vars).await;
    let spender = submit(&app, "spends the budget", 0).await;
    let ran = wait_job(&app, &spender, "running", running).await;
    assert_eq!(label(&ran, QUEUE_LABEL), Some("agents"));
    // Once it has run 3 s by its start time (whole seconds, as the API
    // server keeps times; well past the 1.2 s) it is ended.
    let started = ran
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.as_second())
        .expect("a start time");
    wait_for("3 s of running", LIMIT, || async {
        (chrono::Utc::now().timestamp() >= started + 3).then_some(())
    })
    .await;
    finish(&app, &spender).await;
    wait_job(&app, &spender, "complete", |j| has_condition(j, "Complete")).await;
    wait_for("the budget spent", LIMIT, || async {
        let m = Exposition::parse(&app.get("/metrics").await.text).ok()?;
        (m.value("orchestrator_budget_exhausted", &[("scope", "source")]) == Some(1.0))
            .then_some(())
    })
    .await;
    let held = submit(&app, "waits for tomorrow", 0).await;
    let j = wait_for("the reason in the API", LIMIT, || async {
        let j = get_job(&app, &held).await.json;
        j["waiting"].is_string().then_some(j)
    })
    .await;
    assert!(
        j["waiting"]
            .as_str()
            .is_some_and(|w| w.starts_with("daily budget of source cli spent")),
        "{j}"
    );
    let job = app.job(&held).await.expect("the held Job");
    assert!(suspended_job(&job));
    assert_eq!(label(&job, QUEUE_LABEL), None, "Kueue does not see it");
    // A resync counted it waiting for the budget (the same pass would have
    // handed it over): still held.
    wait_for("the budget wait counted", LIMIT, || async {
        let m = Exposition::parse(&app.get("/metrics").await.text).ok()?;
        (m.value("orchestrator_jobs_waiting", &[("reason", "budget")]) == Some(1.0)).then_some(())
    })
    .await;
    let still = app.job(&held).await.expect("the held Job");
    assert_eq!(label(&still, QUEUE_LABEL), None);
    // The next UTC day: handed to Kueue, which admits it.
    app.handles
        .scheduler
        .addr()
        .send(orchestrator::scheduler::ShiftBudgetClock(
            chrono::Duration::days(1),
        ))
        .await
        .expect("the scheduler answers");
    let handed = wait_job(&app, &held, "running", running).await;
    assert_eq!(label(&handed, QUEUE_LABEL), Some("agents"));
    wait_for("the hand-over on the audit trail", LIMIT, || async {
        events_of(&app, &held)
            .await
            .iter()
            .any(|(r, _)| r == "QueuedInKueue")
            .then_some(())
    })
    .await;
    assert_no_suspend_or_template_writes(&sim);
    app.stop().await.expect("a clean stop");
}

/// `/ready` once it is 503 and its checks include one named `check` that
/// failed; that check.
async fn failing_check(app: &TestApp, check: &str) -> Value {
    wait_for(&format!("/ready 503 naming {check}"), LIMIT, || async {
        let r = app.get("/ready").await;
        if r.status != 503 {
            return None;
        }
        r.json["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["check"] == check && c["result"] == "failed")
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_kueue_a_missing_local_queue_or_priority_class_make_ready_503_with_the_fix() {
    // Kueue is not installed at all.
    let app = start_app_on(sim_with(None), &kueue_env()).await;
    let c = failing_check(&app, "kueue_api").await;
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not serve kueue.x-k8s.io/v1beta1")),
        "{c}"
    );
    assert!(
        c["fix"]
            .as_str()
            .is_some_and(|f| f.contains("install Kueue") && f.contains("SCHEDULER=builtin")),
        "{c}"
    );
    app.stop().await.expect("a clean stop");

    // Installed, but the LocalQueue and a priority class are missing.
    let other = KueueConfig::default()
        .cluster_queue("team-cq", 3, None)
        .local_queue("default", "other", "team-cq")
        .priority_class("agents-high", 1000)
        .priority_class("agents-low", 0);
    let sim = sim_with(Some(other));
    let app = start_app_on(sim.clone(), &kueue_env()).await;
    let c = failing_check(&app, "kueue_local_queue").await;
    assert_eq!(
        c["message"],
        "LocalQueue \"agents\" does not exist in namespace \"default\": Kueue admits none of the Jobs put in it (they stay suspended)",
        "{c}"
    );
    assert!(
        c["fix"].as_str().is_some_and(|f| f
            .contains("create a LocalQueue named agents in namespace default")
            && f.contains("KUEUE_QUEUE_NAME")),
        "{c}"
    );
    let c = failing_check(&app, "kueue_priority_class").await;
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"agents-normal\"") && m.contains("creates no Workload")),
        "{c}"
    );
    app.stop().await.expect("a clean stop");

    // Pointed at the queue that exists (the class mapping without the
    // missing one): ready.
    let mut vars = kueue_env();
    vars.push(("KUEUE_QUEUE_NAME", "other"));
    vars.push(("KUEUE_PRIORITY_CLASSES", "50=agents-high,0=agents-low"));
    let app = spawn_app_on(sim, &vars).await;
    let r = app.get("/ready").await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_in_builtin_mode_a_job_left_in_kueue_is_never_unsuspended_by_the_service() {
    let sim = sim_with(Some(kueue(1)));
    let app = spawn_app_on(sim.clone(), &kueue_env()).await;
    let a = submit(&app, "runs", 0).await;
    wait_job(&app, &a, "running", running).await;
    let b = submit(&app, "waits in Kueue", 0).await;
    wait_job(&app, &b, "queued in Kueue", |j| {
        suspended_job(j) && label(j, QUEUE_LABEL) == Some("agents")
    })
    .await;
    app.stop().await.expect("a clean stop");

    // The built-in scheduler, free slots and all: B stays Kueue's.
    let app = spawn_app_on(
        sim.clone(),
        &[
            ("API_TOKENS", API_TOKENS),
            ("SCHEDULER_RESYNC_SECONDS", "0.2"),
        ],
    )
    .await;
    // The leader's queue took B up (queued, or admitting: counted running)
    // and let it go when the admission was refused: A running, none queued.
    wait_for(
        "the leader's scheduler to try B and let it go",
        LIMIT,
        || async {
            let m = Exposition::parse(&app.get("/metrics").await.text).ok()?;
            (m.value("orchestrator_leader", &[]) == Some(1.0)
                && m.value("orchestrator_jobs", &[("state", "running")]) == Some(1.0)
                && m.value("orchestrator_jobs", &[("state", "queued")]) == Some(0.0))
            .then_some(())
        },
    )
    .await;
    let still = app.job(&b).await.expect("B");
    assert!(suspended_job(&still), "B waits for Kueue");
    finish(&app, &a).await;
    // Kueue admits B once A is done.
    wait_job(&app, &b, "running", running).await;
    finish(&app, &b).await;
    wait_job(&app, &b, "complete", |j| has_condition(j, "Complete")).await;
    assert_no_suspend_or_template_writes(&sim);
    app.stop().await.expect("a clean stop");
}

/// `/ready` once `f` holds of it.
async fn ready_where(app: &TestApp, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, LIMIT, || async {
        let r = app.get("/ready").await;
        (r.status == 200 && f(&r.json)).then_some(r.json)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_namespace_s_local_queue_is_checked_there_and_degrades_only_its_rule() {
    // Rule team-a sends its Jobs to namespace team-a, in LocalQueue
    // team-a-q (KUEUE_QUEUES); that queue exists in no namespace yet.
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: team-a\n    event: issues\n    label: team-a\n    kind: implement\n    namespace: team-a\n    prompt: \"Implement {{ repository }}#{{ number }}\"\n",
    )
    .expect("write rules");
    let rules = rules.to_string_lossy().into_owned();
    let mut vars = kueue_env();
    vars.push(("ORCHESTRATOR_RULES", &rules));
    vars.push(("KUEUE_QUEUES", "rule:team-a=team-a-q"));
    let with_namespace = |k: KueueConfig| async move {
        let sim = sim_with(Some(k));
        let admin = sim.client().await.expect("client");
        let ns = k8s_openapi::api::core::v1::Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some("team-a".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        // (A LocalQueue configured in team-a brings the namespace along.)
        match bounded(
            "create namespace team-a",
            LIMIT,
            kube::Api::all(admin).create(&kube::api::PostParams::default(), &ns),
        )
        .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create the namespace: {e}"),
        }
        sim
    };

    let app = spawn_app_on(with_namespace(kueue(3)).await, &vars).await;
    let missing = "LocalQueue \"team-a-q\" does not exist in namespace \"team-a\": Kueue admits none of the Jobs put in it (they stay suspended)";
    let r = ready_where(&app, "/ready to name team-a's missing LocalQueue", |j| {
        j["degraded"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m == missing))
    })
    .await;
    // Ready (200): the home namespace's queue exists, and team-a-q is not
    // asked for there (only team-a's Jobs go to it); only team-a's queue
    // is degraded.
    assert_eq!(r["degraded"].as_array().map(Vec::len), Some(1), "{r}");
    app.stop().await.expect("a clean stop");

    // With the queue in team-a: nothing degraded.
    let sim = with_namespace(kueue(3).local_queue("team-a", "team-a-q", "team-cq")).await;
    let app = spawn_app_on(sim, &vars).await;
    // (The first 200 comes after a whole round, the Kueue checks in it.)
    let r = ready_where(&app, "/ready with team-a's LocalQueue found", |_| true).await;
    assert!(r["degraded"].as_array().is_none_or(|d| d.is_empty()), "{r}");
    app.stop().await.expect("a clean stop");
}
