//! Fair shares, caps and budgets, black-box: tasks go in through
//! `POST /api/v1/tasks`, the simulator's store is watched for every
//! `spec.suspend` flip and Job condition, and the wait reasons are read
//! from `GET /api/v1/jobs/{name}` and `/metrics`.
//!
//! - 500 tasks of one repository and then 1 of another at the same
//!   priority, `MAX_CONCURRENT_JOBS=2`: the second repository's task is
//!   admitted within the next few admissions (at most 4: the ones already
//!   in flight when it came), not after the 500.
//! - `MAX_CONCURRENT_JOBS_PER_REPOSITORY=2`: no repository ever has more
//!   than 2 Jobs admitted and unfinished at once (every change of the
//!   simulator's store is seen), while another repository uses the rest.
//! - A repository over its daily minutes budget: its next task waits with
//!   the reason in the API and the metric, another repository's runs; on
//!   "the next day" (the scheduler's budget clock moved a day on through
//!   the `test-hooks` message `ShiftBudgetClock`) it runs.

mod api_support;
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_support::*;
use common::exposition::Exposition;
use common::*;
use futures::StreamExt;
use orchestrator::scheduler::ShiftBudgetClock;
use serde_json::Value;

/// Submits a task of `repo` and returns its Job name.
async fn queue(app: &TestApp, title: &str, repo: &str) -> String {
    let r = submit_task(app, &task(title, repo), None).await;
    assert_eq!(r.expect(202, "submit")["status"], "queued", "{}", r.text);
    job_of(&r)
}

/// Admitted (unsuspended) and not finished, per Job, from every change of
/// the simulator's store; the most of one group at once.
#[derive(Default)]
struct Active {
    now: HashSet<String>,
    /// Job → group (its repository), known before the Job is admitted.
    group: HashMap<String, String>,
    max_per_group: BTreeMap<String, usize>,
    max_total: usize,
    /// Names in the order they were first admitted.
    admitted: Vec<String>,
    lagged: bool,
}

fn watch_active(sim: &kube_api_sim::SimServer) -> Arc<Mutex<Active>> {
    use kube_api_sim::resources::JOBS;
    use kube_api_sim::store::EventType;
    let seen = Arc::new(Mutex::new(Active::default()));
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
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let finished = o["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["status"] == "True" && (c["type"] == "Complete" || c["type"] == "Failed")
                })
            });
            let admitted = o["spec"]["suspend"] == Value::Bool(false);
            let mut g = s.lock().expect("lock");
            if change.kind != EventType::Deleted && admitted && !finished {
                if g.now.insert(name.clone()) && !g.admitted.contains(&name) {
                    g.admitted.push(name.clone());
                }
            } else {
                g.now.remove(&name);
            }
            let mut per: HashMap<String, usize> = HashMap::new();
            for n in &g.now {
                let k = g.group.get(n).cloned().unwrap_or_else(|| "?".into());
                *per.entry(k).or_default() += 1;
            }
            for (k, n) in per {
                let m = g.max_per_group.entry(k).or_default();
                *m = (*m).max(n);
            }
            g.max_total = g.max_total.max(g.now.len());
        }
    });
    seen
}

#[tokio::test]
async fn one_task_of_another_repository_is_not_starved_by_five_hundred_queued() {
    let sim = start_sim(0.3);
    let app = spawn_app_on(
        sim.clone(),
        &[("API_TOKENS", API_TOKENS), ("MAX_CONCURRENT_JOBS", "2")],
    )
    .await;
    let active = watch_active(&sim);
    // 500 tasks of acme/big, 16 submissions at a time.
    let big: Vec<String> = futures::stream::iter(0..500)
        .map(|i| {
            let app = &app;
            async move { queue(app, &format!("big {i}"), "acme/big").await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(big.len(), 500);
    let before = active.lock().expect("lock").admitted.len();
    let small = queue(&app, "small", "acme/small").await;
    wait_for(
        "the small repository's task to be admitted",
        WAIT,
        || async {
            active
                .lock()
                .expect("lock")
                .admitted
                .contains(&small)
                .then_some(())
        },
    )
    .await;
    let g = active.lock().expect("lock");
    assert!(!g.lagged, "the watch of the store missed changes");
    let at = g
        .admitted
        .iter()
        .position(|n| *n == small)
        .expect("admitted");
    eprintln!(
        "acme/small: admission {} of {} so far; {before} of acme/big were admitted when it came",
        at + 1,
        g.admitted.len()
    );
    assert!(
        at <= before + 4,
        "acme/small was admission {} of {}; {before} were admitted when it came",
        at + 1,
        g.admitted.len()
    );
    assert!(
        g.max_total <= 2,
        "MAX_CONCURRENT_JOBS=2 held: {}",
        g.max_total
    );
    assert!(
        before < 490,
        "most of acme/big was still queued when acme/small came ({before} admitted)"
    );
}

#[tokio::test]
async fn the_per_repository_cap_is_never_exceeded_and_the_rest_goes_to_others() {
    let sim = start_sim(0.4);
    let app = spawn_app_on(
        sim.clone(),
        &[
            ("API_TOKENS", API_TOKENS),
            ("MAX_CONCURRENT_JOBS", "5"),
            ("MAX_CONCURRENT_JOBS_PER_REPOSITORY", "2"),
        ],
    )
    .await;
    let active = watch_active(&sim);
    let mut names = Vec::new();
    for i in 0..8 {
        for repo in ["acme/a", "acme/b"] {
            let n = queue(&app, &format!("{repo} {i}"), repo).await;
            active
                .lock()
                .expect("lock")
                .group
                .insert(n.clone(), repo.to_string());
            names.push(n);
        }
    }
    for i in 0..4 {
        let n = queue(&app, &format!("c {i}"), "acme/c").await;
        active
            .lock()
            .expect("lock")
            .group
            .insert(n.clone(), "acme/c".into());
        names.push(n);
    }
    // While acme/a is at its cap, a queued task of it says so.
    let reason = wait_for("a queued acme/a task to name the cap", WAIT, || async {
        for n in &names[..16] {
            let j = get_job(&app, n).await.json;
            if let Some(w) = j["waiting"].as_str() {
                if w.contains("at its cap 2/2") && j["position"].as_u64().is_some() {
                    return Some(w.to_string());
                }
            }
        }
        None
    })
    .await;
    assert!(reason.starts_with("repository acme/"), "{reason}");
    for n in &names {
        wait_state(&app, n, "succeeded", Duration::from_secs(60)).await;
    }
    let g = active.lock().expect("lock");
    assert!(!g.lagged, "the watch of the store missed changes");
    assert_eq!(g.admitted.len(), names.len(), "every task ran once");
    for repo in ["acme/a", "acme/b", "acme/c"] {
        let m = g.max_per_group.get(repo).copied().unwrap_or(0);
        assert!(m <= 2, "{repo} had {m} Jobs admitted at once (cap 2)");
    }
    assert!(
        g.max_total <= 5,
        "MAX_CONCURRENT_JOBS=5 held: {}",
        g.max_total
    );
    assert!(
        g.max_total >= 3,
        "the other repositories used the slots acme/a could not: {}",
        g.max_total
    );
}

#[tokio::test]
async fn a_repository_over_its_daily_minutes_waits_with_the_reason_until_the_next_day() {
    // 0.02 agent-minutes (1.2 s) a day; each pod runs 2 s.
    let sim = start_sim(2.0);
    let app = spawn_app_on(
        sim,
        &[
            ("API_TOKENS", API_TOKENS),
            ("MAX_CONCURRENT_JOBS", "4"),
            ("BUDGET_MINUTES_PER_REPOSITORY_PER_DAY", "0.02"),
            ("SCHEDULER_RESYNC_SECONDS", "0.2"),
            ("JOB_TTL_SECONDS", "86400"),
        ],
    )
    .await;
    let first = queue(&app, "spends the budget", "acme/spender").await;
    wait_state(&app, &first, "succeeded", WAIT).await;
    let next = queue(&app, "waits for tomorrow", "acme/spender").await;
    let other = queue(&app, "another repository", "acme/other").await;
    wait_state(&app, &other, "succeeded", WAIT).await;
    let j = wait_for("the reason to show in the API", WAIT, || async {
        let j = get_job(&app, &next).await.json;
        j["waiting"].is_string().then_some(j)
    })
    .await;
    assert_eq!(j["state"], "queued", "{j}");
    let why = j["waiting"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("daily budget of acme/spender spent (")
            && why.contains(" until ")
            && why.ends_with(" 00:00 UTC"),
        "{why}"
    );
    wait_for("the exhausted-budget gauge", WAIT, || async {
        let m = app.get("/metrics").await;
        let e = Exposition::parse(&m.text).expect("exposition");
        let spent = e.value("orchestrator_budget_exhausted", &[("scope", "repository")]);
        let waiting = e.value("orchestrator_jobs_waiting", &[("reason", "budget")]);
        // acme/other spent its own by running (2 s > 1.2 s) too.
        (spent == Some(2.0) && waiting == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(api_state(&app, &next).await, "queued", "still held back");
    // The audit trail tells the wait on the Job (once, not every resync).
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(app.kube.clone(), "default");
    let selector = format!("involvedObject.name={next}");
    let budget_waits = wait_for("a BudgetWait Event on the waiting Job", WAIT, || async {
        let list = events
            .list(&kube::api::ListParams::default().fields(&selector))
            .await
            .ok()?;
        let n = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("BudgetWait"))
            .count();
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(budget_waits, 1, "one Event when the reason was first seen");
    // The next UTC day.
    app.handles
        .scheduler
        .addr()
        .send(ShiftBudgetClock(chrono::Duration::days(1)))
        .await
        .expect("the scheduler answers");
    wait_state(&app, &next, "succeeded", WAIT).await;
    // Many resyncs later, still one: an Event per change, not per tick.
    let list = events
        .list(&kube::api::ListParams::default().fields(&selector))
        .await
        .expect("events listed");
    let reasons: Vec<&str> = list
        .items
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "BudgetWait").count(),
        1,
        "{reasons:?}"
    );
    assert!(reasons.contains(&"Admitted"), "{reasons:?}");
}
