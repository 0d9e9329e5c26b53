//! The Job watch's store/index/demux layer at scale, without timing: the
//! work done per watch event (index entries visited, actor messages) does
//! not grow with the number of tracked Jobs, and no terminal state is lost
//! when a watcher's mailbox is full, when the scheduler's is, or when a
//! watcher panics.
//!
//! Synthetic Job events (real Job objects built by `build_job`, with pod
//! template and env, then given a status) go straight into the demux; the
//! scheduler is the real actor (not leader, so it admits nothing and makes
//! no API calls), resyncing from the store every 50 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use orchestrator::actors::Crash;
use orchestrator::actors::{Mailbox, Runtime};
use orchestrator::cluster::build_job;
use orchestrator::cluster::gate::KubeGate;
use orchestrator::cluster::kube_actor::KubeActor;
use orchestrator::cluster::lease::Leader;
use orchestrator::cluster::store::JobStore;
use orchestrator::config::Config;
use orchestrator::metrics::demux::DemuxStats;
use orchestrator::metrics::Metrics;
use orchestrator::scheduler::{self, Counts, Scheduler};
use orchestrator::task::{Task, TaskSource};
use orchestrator::watcher::{Demux, MAX_WATCHER_RESTARTS, WATCHER_MAILBOX};
use serde_json::json;

struct Rig {
    demux: Demux,
    store: JobStore,
    stats: Arc<DemuxStats>,
    scheduler: Mailbox<Scheduler>,
    metrics: Arc<Metrics>,
    template: Job,
    _sim: kube_api_sim::SimServer,
}

async fn rig() -> Rig {
    rig_with(scheduler::MAILBOX).await
}

/// A rig whose scheduler mailbox holds `capacity` messages.
async fn rig_with(capacity: usize) -> Rig {
    let (client, sim) = kube_api_sim::start().await.expect("simulator");
    let config = Arc::new(
        Config::from_lookup(|v| match v {
            "ALLOW_INSECURE_NO_SIGNATURE" => Some("true".to_string()),
            // What a lost notification leaves behind is re-read this often.
            "SCHEDULER_RESYNC_SECONDS" => Some("0.05".to_string()),
            _ => None,
        })
        .expect("config"),
    );
    let metrics = Metrics::new();
    let runtime = Runtime::new(metrics.clone());
    let gate = KubeGate::new(client, 100, 100, metrics.clone());
    let kube = runtime.start("kube", 64, KubeActor::new(gate, "default"));
    let store = JobStore::new();
    // Never leader: it admits nothing and calls no API.
    let leader = Leader::new("watch-scale-test");
    let scheduler = runtime.start(
        "scheduler",
        capacity,
        Scheduler::new(
            kube.clone(),
            config.clone(),
            store.clone(),
            leader,
            metrics.clone(),
            orchestrator::cluster::audit::Audit::new(kube, store.clone(), metrics.clone()),
        ),
    );
    let stats = Arc::new(DemuxStats::default());
    let demux = Demux::new(
        store.clone(),
        scheduler.clone(),
        runtime.clone(),
        metrics.clone(),
        stats.clone(),
    );
    let task = Task {
        source: TaskSource::Cli,
        kind: "fix".into(),
        repository: Some("acme/api".into()),
        issue_number: Some(1),
        pr_number: None,
        checkout: None,
        priority: 0,
        title: "A synthetic task".into(),
        prompt: "x".repeat(2000),
        url: None,
        delivery_id: None,
        dedup_key: "template".into(),
        requested_by: None,
        labels: Default::default(),
        created_at: chrono::Utc::now(),
    };
    let template = build_job(&task, &config).expect("job");
    Rig {
        demux,
        store,
        stats,
        scheduler,
        metrics,
        template,
        _sim: sim,
    }
}

#[derive(Clone, Copy)]
enum Phase {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl Rig {
    /// Applies Job `n`'s terminal change at resourceVersion `rv`: every
    /// `every`-th Job fails, the others succeed.
    fn finish(&mut self, n: usize, every: usize, rv: u64) {
        let end = if n % every == 0 {
            Phase::Failed
        } else {
            Phase::Succeeded
        };
        let job = self.job(n, end, rv);
        self.demux.apply(&job);
    }

    /// A Job `n` in `phase` at resourceVersion `rv`.
    fn job(&self, n: usize, phase: Phase, rv: u64) -> Job {
        let mut job = self.template.clone();
        let name = format!("synthetic-{n}");
        job.metadata.name = Some(name.clone());
        job.metadata.resource_version = Some(rv.to_string());
        job.metadata.creation_timestamp = Some(
            serde_json::from_value(json!(format!(
                "2026-01-01T00:{:02}:{:02}Z",
                n / 60 % 60,
                n % 60
            )))
            .expect("time"),
        );
        let labels = job.metadata.labels.get_or_insert_default();
        labels.insert(
            "orchestrator.dev/concurrency-key".into(),
            format!("acme.api-{n}"),
        );
        job.metadata.annotations.get_or_insert_default().insert(
            "orchestrator.dev/dedup-key".into(),
            format!("synthetic:{n}"),
        );
        if let Some(spec) = job.spec.as_mut() {
            spec.suspend = Some(matches!(phase, Phase::Queued));
        }
        let status = match phase {
            Phase::Queued => json!({}),
            Phase::Running => json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}),
            Phase::Succeeded => json!({"succeeded": 1, "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:01:00Z"}]}),
            Phase::Failed => json!({"failed": 1, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": "2026-01-01T00:01:00Z"}]}),
        };
        job.status = Some(serde_json::from_value(status).expect("status"));
        job
    }

    async fn counts(&self) -> (usize, usize) {
        self.scheduler.addr().send(Counts).await.expect("scheduler")
    }

    /// Waits (bounded) until the scheduler counts `want` and no watcher is alive.
    async fn settle(&self, want: (usize, usize)) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.counts().await;
            let watchers = self.metrics.watchers().get();
            if got == want && (want.0 + want.1 > 0 || watchers == 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "scheduler counts {got:?}, want {want:?}; {watchers} watchers alive"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Work of one batch of events.
#[derive(Debug, Clone, Copy)]
struct Work {
    events: u64,
    visited: u64,
    to_watchers: u64,
    to_scheduler: u64,
}

impl Work {
    fn of(rig: &Rig) -> Work {
        Work {
            events: rig.stats.events.get(),
            visited: rig
                .store
                .stats()
                .visited
                .load(std::sync::atomic::Ordering::Relaxed),
            to_watchers: rig.stats.to_watchers.get(),
            to_scheduler: rig.stats.to_scheduler.get(),
        }
    }

    fn since(self, start: Work) -> (f64, f64, f64) {
        let events = (self.events - start.events) as f64;
        (
            (self.visited - start.visited) as f64 / events,
            (self.to_watchers - start.to_watchers) as f64 / events,
            (self.to_scheduler - start.to_scheduler) as f64 / events,
        )
    }
}

/// Finished Jobs already tracked, `from..to`.
fn fill(rig: &mut Rig, from: usize, to: usize) {
    for n in from..to {
        let job = rig.job(n, Phase::Succeeded, 1);
        rig.demux.apply(&job);
    }
}

/// 10,000 events: 2,500 Jobs each queued → running → running (a status
/// update) → finished, in waves of 250 so watchers come and go.
async fn lifecycle_batch(rig: &mut Rig, first: usize) -> (f64, f64, f64) {
    let start = Work::of(rig);
    for wave in 0..10 {
        let ids = (first + wave * 250)..(first + (wave + 1) * 250);
        for (step, phase) in [Phase::Queued, Phase::Running, Phase::Running]
            .into_iter()
            .enumerate()
        {
            for n in ids.clone() {
                let job = rig.job(n, phase, 10 + step as u64);
                rig.demux.apply(&job);
            }
            tokio::task::yield_now().await;
        }
        for n in ids {
            rig.finish(n, 7, 20);
        }
        rig.settle((0, 0)).await;
    }
    Work::of(rig).since(start)
}

#[actix_rt::test]
async fn work_per_watch_event_does_not_grow_with_the_number_of_jobs() {
    let mut rig = rig().await;
    fill(&mut rig, 0, 1_000);
    let small = lifecycle_batch(&mut rig, 1_000_000).await;
    fill(&mut rig, 1_000, 25_000);
    let large = lifecycle_batch(&mut rig, 2_000_000).await;
    assert_eq!(rig.store.len(), 25_000 + 2 * 2_500);
    assert_eq!(rig.demux.watchers(), 0, "no actor for a finished Job");
    // Per event: the same index work and the same messages at 30,000
    // tracked Jobs as at 1,000 (ratios, not times). How many state changes
    // a watcher reports depends on how far it lags, so the scheduler's
    // share may differ a little between runs, never with the Job count.
    assert!(
        large.0 <= small.0 * 1.1,
        "index entries visited per event grew: {small:?} → {large:?}"
    );
    assert!(
        large.1 <= small.1 * 1.05 && large.2 <= small.2 * 1.05,
        "messages per event grew: {small:?} → {large:?}"
    );
    assert!(
        small.0 < 40.0 && small.1 <= 1.0 && small.2 <= 1.0,
        "constant work per event: {small:?}"
    );
}

#[actix_rt::test]
async fn a_full_watcher_mailbox_loses_no_terminal_state_and_frees_every_slot() {
    let mut rig = rig().await;
    const JOBS: usize = 200;
    for n in 0..JOBS {
        let job = rig.job(n, Phase::Running, 1);
        rig.demux.apply(&job);
    }
    rig.settle((0, JOBS)).await;
    assert_eq!(rig.demux.watchers(), JOBS);
    // Many events per Job at once, without letting any watcher run: every
    // mailbox overflows, and the last event of each Job is terminal.
    let burst = WATCHER_MAILBOX * 3;
    for n in 0..JOBS {
        for i in 0..burst {
            let job = rig.job(n, Phase::Running, 2 + i as u64);
            rig.demux.apply(&job);
        }
        rig.finish(n, 2, 1_000);
    }
    assert!(
        rig.stats.overflows.get() >= (JOBS * burst / 2) as u64,
        "the burst filled the mailboxes ({} overflows)",
        rig.stats.overflows.get()
    );
    // Every Job's final state reached the scheduler: no slot is held and
    // every watcher ended.
    rig.settle((0, 0)).await;
    assert_eq!(rig.metrics.watchers().get(), 0);
    assert_eq!(rig.demux.watchers(), 0);
    for n in 0..JOBS {
        let r = rig.store.get(&format!("synthetic-{n}")).expect("stored");
        assert!(r.state.is_finished(), "{n}: {:?}", r.state);
    }
}

/// `orchestrator_actor_*{actor}` sample from the exposition.
fn actor_series(rig: &Rig, family: &str, actor: &str) -> f64 {
    let text = rig.metrics.encode();
    let prefix = format!("orchestrator_actor_{family}{{actor=\"{actor}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{prefix} in the exposition"))
}

#[actix_rt::test]
async fn a_watcher_that_panics_is_restarted_counted_and_its_job_still_reaches_its_final_state() {
    let mut rig = rig().await;
    const JOBS: usize = 20;
    for n in 0..JOBS {
        let job = rig.job(n, Phase::Running, 1);
        rig.demux.apply(&job);
    }
    rig.settle((0, JOBS)).await;
    // Half the watchers panic handling their Job's terminal change: that
    // message is lost with the panic.
    for n in (0..JOBS).step_by(2) {
        let w = rig
            .demux
            .watcher(&format!("synthetic-{n}"))
            .expect("a watcher");
        w.tell(Crash).expect("room for the fault");
    }
    for n in 0..JOBS {
        rig.finish(n, 4, 2);
    }
    // The restarted watchers re-read their Jobs from the store: every
    // final state reached the scheduler and every watcher ended.
    rig.settle((0, 0)).await;
    assert_eq!(
        actor_series(&rig, "restarts_total", "job_watcher"),
        (JOBS / 2) as f64
    );
    assert_eq!(rig.metrics.watchers().get(), 0, "every watcher ended");
    // The watcher kind has the metrics of every actor.
    assert!(actor_series(&rig, "messages_total", "job_watcher") >= (2 * JOBS) as f64);
    assert_eq!(actor_series(&rig, "mailbox_depth", "job_watcher"), 0.0);
    assert!(rig
        .metrics
        .encode()
        .contains("orchestrator_actor_handling_seconds_count{actor=\"job_watcher\"}"));
}

#[actix_rt::test]
async fn a_watcher_that_keeps_panicking_hands_its_job_to_the_scheduler_and_ends() {
    let mut rig = rig().await;
    let job = rig.job(0, Phase::Running, 1);
    rig.demux.apply(&job);
    rig.settle((0, 1)).await;
    let w = rig.demux.watcher("synthetic-0").expect("a watcher");
    // Each fault makes one change panic, and each restart re-reads the Job
    // (a change): more faults than restarts allowed.
    for _ in 0..MAX_WATCHER_RESTARTS + 3 {
        w.tell(Crash).expect("room for the faults");
    }
    let job = rig.job(0, Phase::Succeeded, 2);
    rig.demux.apply(&job);
    // The watcher gave up after its last restart and left the terminal
    // state to the scheduler's resync.
    rig.settle((0, 0)).await;
    assert_eq!(rig.metrics.watchers().get(), 0, "the watcher ended");
    assert_eq!(
        actor_series(&rig, "restarts_total", "job_watcher"),
        f64::from(MAX_WATCHER_RESTARTS + 1)
    );
}

#[actix_rt::test]
async fn a_full_scheduler_mailbox_is_counted_and_loses_no_terminal_state() {
    // Room for four notifications: the watchers' reports overflow it.
    let mut rig = rig_with(4).await;
    const JOBS: usize = 300;
    for n in 0..JOBS {
        let job = rig.job(n, Phase::Running, 1);
        rig.demux.apply(&job);
    }
    // Dropped reports are marked dirty and re-read on the resync.
    rig.settle((0, JOBS)).await;
    let after_start = actor_series(&rig, "mailbox_overflow_total", "scheduler");
    assert!(after_start > 0.0, "the scheduler's mailbox overflowed");
    for n in 0..JOBS {
        rig.finish(n, 3, 2);
    }
    rig.settle((0, 0)).await;
    assert!(
        actor_series(&rig, "mailbox_overflow_total", "scheduler") > after_start,
        "terminal reports overflowed too"
    );
    assert!(rig.stats.overflows.get() > 0);
    assert_eq!(rig.metrics.watchers().get(), 0);
}
