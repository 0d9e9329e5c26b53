use super::*;
use crate::job::JobRecord;

fn rec(name: &str, state: JobState, created: i64, source: &str) -> JobRecord {
    JobRecord {
        uid: None,
        name: name.into(),
        namespace: "default".into(),
        rv: 1,
        state,
        created,
        created_at: None,
        source: Some(source.into()),
        kind: None,
        repository: Some("acme.api".into()),
        repository_name: Some("acme/api".into()),
        priority: 0,
        concurrency_key: Some(format!("key-{name}").into()),
        dedup_key: Some(format!("dedup:{name}").into()),
        url: None,
        cancelled_at: (state == JobState::Cancelled).then_some(created + 10),
        started_at: None,
        completed_at: None,
        conditions: Vec::new(),
        active: 0,
        succeeded: 0,
        failed: 0,
        task: None,
        report_mark: None,
        callback_url: None,
        callback_mark: None,
        kueue: None,
    }
}

fn names(page: &[Arc<JobRecord>]) -> Vec<&str> {
    page.iter().map(|r| &*r.name).collect()
}

#[test]
fn pages_come_newest_first_from_the_filtered_index_and_resume_after_a_position() {
    let s = JobStore::new();
    for i in 0..10 {
        let state = if i % 2 == 0 {
            JobState::Queued
        } else {
            JobState::Succeeded
        };
        s.apply(rec(
            &format!("j{i}"),
            state,
            i,
            if i < 5 { "cli" } else { "github" },
        ));
    }
    let queued = JobFilter {
        state: Some(JobState::Queued),
        ..Default::default()
    };
    let (page, more) = s.page(&queued, None, 3);
    assert_eq!(names(&page), ["j8", "j6", "j4"]);
    assert!(more);
    let (page, more) = s.page(&queued, Some((4, "j4")), 3);
    assert_eq!(names(&page), ["j2", "j0"]);
    assert!(!more);
    let both = JobFilter {
        state: Some(JobState::Queued),
        source: Some("cli"),
        ..Default::default()
    };
    assert_eq!(names(&s.page(&both, None, 10).0), ["j4", "j2", "j0"]);
    let none = JobFilter {
        source: Some("grafana"),
        ..Default::default()
    };
    assert!(s.page(&none, None, 10).0.is_empty());
}

#[test]
fn a_change_moves_the_job_between_indexes_and_a_delete_leaves_none_behind() {
    let s = JobStore::new();
    s.apply(rec("a", JobState::Queued, 1, "cli"));
    let applied = s.apply(rec("a", JobState::Cancelled, 1, "cli"));
    assert_eq!(applied.before, Some(JobState::Queued));
    assert_eq!(s.count_in(JobState::Queued), 0);
    assert_eq!(s.count_in(JobState::Cancelled), 1);
    assert_eq!(s.cancelled_before(10), Vec::<Arc<str>>::new());
    assert_eq!(s.cancelled_before(11), vec![Arc::<str>::from("a")]);
    assert_eq!(
        s.by_dedup_key("dedup:a").map(|r| r.state),
        Some(JobState::Cancelled)
    );
    s.delete("default", "a");
    assert!(s.is_empty());
    assert!(s.by_dedup_key("dedup:a").is_none());
    assert!(s.cancelled_before(i64::MAX).is_empty());
    let inner = s.read();
    assert!(inner.all.is_empty() && inner.by_source.is_empty() && inner.by_repo.is_empty());
    assert!(inner.by_namespace.is_empty());
}

#[test]
fn a_relist_removes_what_it_did_not_list_and_marks_the_store_ready() {
    let s = JobStore::new();
    assert!(!s.is_ready());
    s.apply(rec("kept", JobState::Running, 1, "cli"));
    s.apply(rec("gone", JobState::Queued, 2, "cli"));
    s.begin_relist("default");
    s.apply(rec("kept", JobState::Succeeded, 1, "cli"));
    let removed = s.finish_relist("default");
    assert_eq!(names(&removed), ["gone"]);
    assert!(!s.is_ready(), "ready once every namespace listed");
    s.mark_ready();
    assert!(s.is_ready());
    assert_eq!(s.len(), 1);
    assert!(s.live().is_empty(), "only queued and running Jobs are live");
}

fn in_ns(name: &str, namespace: &str, created: i64) -> JobRecord {
    JobRecord {
        namespace: namespace.into(),
        ..rec(name, JobState::Queued, created, "github")
    }
}

#[test]
fn namespaces_relist_apart_and_filter_pages() {
    let s = JobStore::new();
    s.apply(in_ns("a1", "team-a", 1));
    s.apply(in_ns("a2", "team-a", 2));
    s.apply(in_ns("b1", "team-b", 3));
    // A relist of team-a that lists only a1 removes a2, never b1 (listed
    // by team-b's own watch), even while team-b relists too.
    s.begin_relist("team-a");
    s.begin_relist("team-b");
    s.apply(in_ns("a1", "team-a", 1));
    s.apply(in_ns("b1", "team-b", 3));
    assert_eq!(names(&s.finish_relist("team-a")), ["a2"]);
    assert!(s.finish_relist("team-b").is_empty());
    assert_eq!(s.len(), 2);
    let team_b = JobFilter {
        namespace: Some("team-b"),
        ..Default::default()
    };
    assert_eq!(names(&s.page(&team_b, None, 10).0), ["b1"]);
    let none = JobFilter {
        namespace: Some("team-c"),
        ..Default::default()
    };
    assert!(s.page(&none, None, 10).0.is_empty());
    // A delete names its namespace: another namespace's Job of the same
    // name stays.
    assert!(s.delete("team-b", "a1").is_none());
    assert_eq!(s.len(), 2);
    assert!(s.delete("team-a", "a1").is_some());
    assert_eq!(names(&s.page(&Default::default(), None, 10).0), ["b1"]);
}

#[test]
fn dirty_marks_are_taken_once() {
    let s = JobStore::new();
    assert!(s.take_dirty().is_empty());
    s.mark_dirty("a".into());
    s.mark_dirty("a".into());
    assert_eq!(s.take_dirty(), vec![Arc::<str>::from("a")]);
    assert!(s.take_dirty().is_empty());
}
