//! The store's bounds: Events, and the watch history window.

use super::*;
use crate::resources::CONFIGMAPS;
use crate::selector::{FieldSelector, LabelSelector};

fn event(n: usize) -> Value {
    json!({
        "metadata": {"name": format!("job-{n}.1"), "namespace": "default"},
        "involvedObject": {"kind": "Job", "apiVersion": "batch/v1", "namespace": "default",
            "name": format!("job-{n}"), "uid": "u-1"},
        "reason": "Suspended", "message": "Job suspended", "type": "Normal",
        "source": {"component": "job-controller"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1,
    })
}

fn names(store: &Store, res: usize) -> Vec<String> {
    let page = store
        .list(
            res,
            Some("default"),
            &LabelSelector::default(),
            &FieldSelector::default(),
            None,
            None,
        )
        .expect("list");
    page.items.iter().map(|o| o.name.to_string()).collect()
}

#[test]
fn past_the_events_bound_the_oldest_event_is_deleted_and_watches_see_it_go() {
    let store = Store::new(Limits {
        max_events: 3,
        ..Limits::default()
    });
    let mut rx = store.subscribe();
    for n in 0..5 {
        store
            .create(EVENTS, "default", event(n), false)
            .expect("event created");
    }
    assert_eq!(names(&store, EVENTS), ["job-2.1", "job-3.1", "job-4.1"]);
    let mut deleted = Vec::new();
    while let Ok(c) = rx.try_recv() {
        if c.kind == EventType::Deleted {
            deleted.push(c.object.stored().name.to_string());
            assert_eq!(c.object["reason"], "Suspended", "the last state is sent");
        }
    }
    assert_eq!(deleted, ["job-0.1", "job-1.1"]);
}

#[test]
fn a_watch_from_a_version_that_left_the_history_window_is_told_410() {
    let store = Store::new(Limits {
        history: 3,
        ..Limits::default()
    });
    let first = store.current_rv();
    for n in 0..5 {
        let cm = json!({"metadata": {"name": format!("cm-{n}")}, "data": {"k": "v"}});
        store
            .create(CONFIGMAPS, "default", cm, false)
            .expect("configmap created");
    }
    let Err(e) = store.watch(CONFIGMAPS, Some("default"), Some(first)) else {
        panic!("a watch from a compacted version started");
    };
    assert_eq!((e.code, e.reason), (410, "Expired"));
    // Within the window: replayed from the history, decoded on demand.
    let Ok((WatchStart::Replay(changes), _)) =
        store.watch(CONFIGMAPS, Some("default"), Some(store.current_rv() - 2))
    else {
        panic!("a watch from a retained version did not replay");
    };
    let replayed: Vec<&str> = changes
        .iter()
        .map(|c| c.object["metadata"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(replayed, ["cm-3", "cm-4"]);
}

#[test]
fn an_object_reads_back_as_written_and_its_owner_index_follows_updates() {
    let store = Store::new(Limits::default());
    let owned = |uid: &str| {
        json!({"metadata": {"name": "cm", "ownerReferences": [{"apiVersion": "v1",
            "kind": "ConfigMap", "name": "owner", "uid": uid}]}, "data": {"k": "v"}})
    };
    let created = store
        .create(CONFIGMAPS, "default", owned("u-1"), false)
        .expect("created");
    let read = store.get(CONFIGMAPS, "default", "cm").expect("read");
    assert_eq!(read, created);
    assert!(store.lock().has_dependents("u-1"));
    store
        .update(CONFIGMAPS, "default", "cm", owned("u-2"), false, false)
        .expect("updated");
    let g = store.lock();
    assert!(!g.has_dependents("u-1") && g.has_dependents("u-2"));
}
