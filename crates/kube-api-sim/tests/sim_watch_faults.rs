//! `kube::runtime::watcher` against the simulator's watch faults: streams
//! closed every N seconds and history compacted under a running watcher
//! (forced 410). The watcher, with `default_backoff()`, must keep delivering
//! events and end with exactly the server's state: no final state missed
//! (deletions included), none repeated, none going back in time.

mod sim_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use kube_api_sim::faults::FaultSpec;
use serde_json::json;
use sim_support::*;

#[tokio::test]
async fn the_kube_watcher_with_default_backoff_keeps_delivering_events_across_forced_watch_closes()
{
    let server = start(FaultSpec {
        watch_close_after_seconds: Some(0.5),
        ..Default::default()
    });
    let jobs: Api<Job> = Api::default_namespaced(server.client().await.expect("client"));
    let mut events = watcher(jobs.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut seen = BTreeSet::new();
    let creator = async {
        for i in 0..6 {
            let name = format!("w{i}");
            jobs.create(&PostParams::default(), &job(&name))
                .await
                .expect("create");
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    };
    let watch_all = async {
        while seen.len() < 6 {
            match events.next().await {
                Some(Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j))) => {
                    seen.insert(j.metadata.name.unwrap_or_default());
                }
                Some(_) => {}
                None => panic!("the watcher stream ended"),
            }
        }
    };
    bounded(
        "all six jobs through the watcher",
        futures::future::join(creator, watch_all),
    )
    .await;
    let watches = count(&stats(&server).await, "watch", "jobs", 200);
    assert!(
        watches >= 3,
        "the watcher re-watched after closes; watches: {watches}"
    );
}

/// name → (uid, resourceVersion).
type State = BTreeMap<String, (String, u64)>;

/// What the watcher reported, folded as a reflector would fold it.
#[derive(Default)]
struct Seen {
    live: State,
    relisting: Option<State>,
    /// Highest resourceVersion seen per uid, to catch repeats and regressions.
    newest: HashMap<String, u64>,
    problems: Vec<String>,
    /// `410 Expired` error events (the forced compactions).
    expired: usize,
    relists: usize,
}

fn identity(j: &Job) -> (String, String, u64) {
    let m = &j.metadata;
    let rv = m.resource_version.as_deref().and_then(|r| r.parse().ok());
    (
        m.name.clone().unwrap_or_default(),
        m.uid.clone().unwrap_or_default(),
        rv.unwrap_or(0),
    )
}

impl Seen {
    fn fold(&mut self, item: Result<watcher::Event<Job>, watcher::Error>) {
        let event = match item {
            Ok(e) => e,
            Err(watcher::Error::WatchError(s)) if s.code == 410 => return self.expired += 1,
            // Any other error is not what this test provokes.
            Err(e) => return self.problems.push(format!("unexpected watcher error: {e}")),
        };
        match event {
            watcher::Event::Apply(j) | watcher::Event::Delete(j) if identity(&j).2 == 0 => {
                self.problems
                    .push(format!("event without resourceVersion: {j:?}"));
            }
            watcher::Event::Apply(j) => {
                let (name, uid, rv) = identity(&j);
                self.check_newer(&uid, rv, "Apply");
                self.live.insert(name, (uid, rv));
            }
            watcher::Event::Delete(j) => {
                let (name, uid, rv) = identity(&j);
                self.check_newer(&uid, rv, "Delete");
                if self.live.remove(&name).is_none_or(|(u, _)| u != uid) {
                    self.problems
                        .push(format!("Delete of {name} ({uid}) it did not hold"));
                }
            }
            watcher::Event::Init => {
                self.relists += 1;
                self.relisting = Some(State::new());
            }
            watcher::Event::InitApply(j) => {
                let (name, uid, rv) = identity(&j);
                let newest = self.newest.entry(uid.clone()).or_default();
                if rv < *newest {
                    self.problems
                        .push(format!("relist went back: {name} rv {rv} < {newest}"));
                }
                *newest = rv.max(*newest);
                self.relisting
                    .get_or_insert_default()
                    .insert(name, (uid, rv));
            }
            watcher::Event::InitDone => self.live = self.relisting.take().unwrap_or_default(),
        }
    }

    /// A watch event must be strictly newer than anything seen for the
    /// object: an equal resourceVersion is a repeat, a lower one a regression.
    fn check_newer(&mut self, uid: &str, rv: u64, what: &str) {
        let newest = self.newest.entry(uid.to_string()).or_default();
        if rv <= *newest {
            self.problems
                .push(format!("{what} of {uid} at rv {rv}, already saw {newest}"));
        }
        *newest = rv.max(*newest);
    }
}

async fn server_state(jobs: &Api<Job>) -> State {
    let list = jobs.list(&ListParams::default()).await.expect("list jobs");
    list.items
        .iter()
        .map(identity)
        .map(|(name, uid, rv)| (name, (uid, rv)))
        .collect()
}

/// Waits until the watcher's view equals the server's (bounded).
async fn converge(seen: &Mutex<Seen>, jobs: &Api<Job>, what: &str) {
    let mut last = (State::new(), State::new());
    let done = tokio::time::timeout(WAIT, async {
        loop {
            let server = server_state(jobs).await;
            let watched = seen.lock().expect("seen").live.clone();
            if server == watched {
                return;
            }
            last = (server, watched);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "{what}: watcher never converged\n server:  {:?}\n watched: {:?}",
        last.0,
        last.1
    );
}

#[tokio::test]
async fn the_kube_watcher_recovers_from_forced_410s_and_dropped_streams_without_missing_or_repeating_a_final_state(
) {
    let server = start(FaultSpec {
        watch_close_after_seconds: Some(1.0),
        ..Default::default()
    });
    let client = server.client().await.expect("client");
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let folder = {
        let seen = seen.clone();
        let stream = watcher(jobs.clone(), watcher::Config::default()).default_backoff();
        tokio::spawn(stream.for_each(move |item| {
            seen.lock().expect("seen").fold(item);
            futures::future::ready(())
        }))
    };
    let pp = PostParams::default();
    let mut deleted = Vec::new();
    for i in 0..12 {
        bounded("create", jobs.create(&pp, &job(&format!("r{i}"))))
            .await
            .expect("create");
    }
    for round in 0..3 {
        let label = |v: String| Patch::Merge(json!({"metadata": {"labels": {"round": v}}}));
        for i in 0..12 {
            let name = format!("r{i}");
            if !deleted.contains(&name) {
                let patch = label(format!("{round}"));
                let r = bounded("patch", jobs.patch(&name, &PatchParams::default(), &patch)).await;
                r.expect("patch");
            }
        }
        converge(&seen, &jobs, "before compaction").await;

        // Force a 410: a write the Job watch does not see, then compaction,
        // so the watcher's next re-watch (after the forced close) is too old.
        let expired = seen.lock().expect("seen").expired;
        bounded("cm", cms.create(&pp, &config_map(&format!("bump{round}"))))
            .await
            .expect("cm");
        compact(&server).await;
        bounded("the watcher to hit 410", async {
            while seen.lock().expect("seen").expired == expired {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;

        // While it backs off and relists: deletions it can only learn from
        // the relist, modifications, a create, and a re-create (new uid).
        for i in [round * 2, round * 2 + 1] {
            let name = format!("r{i}");
            let r = bounded("delete", jobs.delete(&name, &DeleteParams::default())).await;
            r.expect("delete");
            deleted.push(name);
        }
        let patch = label(format!("{round}-late"));
        bounded("patch", jobs.patch("r11", &PatchParams::default(), &patch))
            .await
            .expect("patch");
        bounded("create", jobs.create(&pp, &job(&format!("new{round}"))))
            .await
            .expect("create");
        if round == 1 {
            bounded("re-create", jobs.create(&pp, &job("r0")))
                .await
                .expect("re-create r0");
            deleted.retain(|n| n != "r0");
        }
        // Let a plain stream close (no 410) happen with changes on both sides.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        bounded("patch", jobs.patch("r10", &PatchParams::default(), &patch))
            .await
            .expect("patch");
    }
    converge(&seen, &jobs, "at the end").await;
    folder.abort();

    let server_jobs = server_state(&jobs).await;
    assert_eq!(server_jobs.len(), 12 - deleted.len() + 3, "{server_jobs:?}");
    let seen = seen.lock().expect("seen");
    assert!(seen.problems.is_empty(), "{:#?}", seen.problems);
    for name in &deleted {
        assert!(
            !seen.live.contains_key(name),
            "missed the deletion of {name}"
        );
    }
    assert!(
        seen.expired >= 3,
        "three forced 410s; saw {} 410 errors",
        seen.expired
    );
    assert!(
        seen.relists >= 4,
        "initial list + one per 410; saw {}",
        seen.relists
    );
}
