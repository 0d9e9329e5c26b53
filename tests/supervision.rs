//! Component test of supervision: the Kube actor, the scheduler and a source
//! actor run under actix supervisors against the embedded simulator; each
//! one is stopped, comes back, is counted in metrics, and the pipeline keeps
//! turning tasks into Jobs that get admitted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Supervisor;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::reflector;
use kube_api_sim::{SimConfig, SimServer};
use orchestrator::admission::{DedupCache, RateLimits};
use orchestrator::cluster::kube_actor::{KubeActor, KubeSettings};
use orchestrator::config::Config;
use orchestrator::metrics::{Metrics, Restart};
use orchestrator::scheduler::{Enqueued, Leadership, Scheduler};
use orchestrator::sources::actor::{SourceActor, Submit};
use orchestrator::task::{Task, TaskSource};

fn task(n: u64) -> Box<Task> {
    Box::new(Task {
        source: TaskSource::Cli,
        kind: "task".into(),
        priority: 0,
        repository: None,
        issue_number: None,
        pr_number: None,
        checkout: None,
        title: format!("task {n}"),
        prompt: "do it".into(),
        url: None,
        delivery_id: None,
        dedup_key: format!("supervision-test:{n}"),
        requested_by: Some("test".into()),
        labels: Default::default(),
        created_at: chrono::Utc::now(),
    })
}

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[actix_rt::test]
async fn stopped_actors_are_restarted_counted_and_the_pipeline_keeps_working() {
    let sim = SimServer::start_local(SimConfig {
        default_run_seconds: 0.2,
        ..SimConfig::default()
    })
    .expect("simulator");
    let kc = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig()).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let config = Arc::new(
        Config::from_lookup(|v| (v == "ALLOW_INSECURE_NO_SIGNATURE").then(|| "true".to_string()))
            .expect("config"),
    );
    let metrics = Metrics::new();
    let settings = KubeSettings {
        namespace: "default".into(),
        qps: 100,
        burst: 100,
    };
    let (c, m) = (client.clone(), metrics.clone());
    let kube = Supervisor::start(move |_| KubeActor::new(c, &settings, m));
    let (reader, writer) = reflector::store::<Job>();
    let (k, cfg, m, r) = (
        kube.clone(),
        config.clone(),
        metrics.clone(),
        reader.clone(),
    );
    let scheduler = Supervisor::start(move |_| Scheduler::new(k, cfg, r, m));
    let synced = Arc::new(AtomicBool::new(false));
    actix_rt::spawn(orchestrator::watcher::run(
        Api::namespaced(client.clone(), "default"),
        writer,
        scheduler.clone(),
        synced.clone(),
        metrics.clone(),
    ));
    let (s, m) = (scheduler.clone(), metrics.clone());
    let dedup = DedupCache::new(Duration::from_secs(60));
    let limits = Arc::new(RateLimits::new(0, 0));
    let source = Supervisor::start(move |_| {
        SourceActor::new(
            TaskSource::Cli,
            dedup.clone(),
            limits.clone(),
            s.clone(),
            m.clone(),
        )
    });
    scheduler.do_send(Leadership(true));
    wait_until("the watch to sync", async || synced.load(Ordering::SeqCst)).await;

    let submit = |n: u64| {
        source.send(Submit {
            task: task(n),
            extras: Default::default(),
            deadline: Instant::now() + Duration::from_secs(10),
        })
    };
    let first = submit(1).await.expect("delivered").expect("accepted");
    assert!(matches!(first, Enqueued::Queued(_)), "{first:?}");

    for (actor, name) in [
        (source.clone().recipient::<Restart>(), "cli"),
        (scheduler.clone().recipient::<Restart>(), "scheduler"),
        (kube.clone().recipient::<Restart>(), "kube"),
    ] {
        actor.do_send(Restart);
        let m = metrics.clone();
        wait_until(&format!("{name} to be restarted"), async || {
            m.restarts(name) == 1
        })
        .await;
    }
    // The restarted scheduler is told it leads again by the Lease loop in
    // the service; here the test says it.
    scheduler.do_send(Leadership(true));

    let second = submit(2).await.expect("delivered").expect("accepted");
    let Enqueued::Queued(name) = second else {
        panic!("{second:?}")
    };
    let again = submit(2).await.expect("delivered").expect("accepted");
    assert_eq!(again, Enqueued::Duplicate(name.clone()));

    let jobs: Api<Job> = Api::namespaced(client, "default");
    wait_until("both jobs to complete after the restarts", async || {
        let list = jobs.list(&Default::default()).await.unwrap().items;
        list.len() == 2
            && list.iter().all(|j| {
                j.status
                    .as_ref()
                    .and_then(|s| s.succeeded)
                    .is_some_and(|n| n == 1)
            })
    })
    .await;
}
