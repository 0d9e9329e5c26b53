//! Jobs in Kueue's hands (`SCHEDULER=kueue`): the labels that give a Job
//! to Kueue, what a Job shows of Kueue, and the Kueue API this service
//! reads (LocalQueues, WorkloadPriorityClasses, for the preflight checks).
//!
//! Only Job *metadata* labels are written (`kueue.x-k8s.io/queue-name`,
//! `kueue.x-k8s.io/priority-class`): never `spec.suspend`, and nothing in
//! the pod template — node selectors, tolerations and template labels are
//! Kueue's to set from the ResourceFlavor it admits the Job to.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;

use crate::config::kueue::KueueSettings;
use crate::job::{JobRecord, KueueRecord};

/// The label naming a Job's LocalQueue (Kueue manages the Jobs that
/// carry it).
pub const QUEUE_NAME_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The label naming a Job's WorkloadPriorityClass.
pub const PRIORITY_CLASS_LABEL: &str = "kueue.x-k8s.io/priority-class";
/// The annotation Kueue sets on a Job while it stops it (an eviction).
pub const STOPPING_ANNOTATION: &str = "kueue.x-k8s.io/stopping";
/// Annotation: how often Kueue evicted the Job (written by the scheduler
/// Lease holder when its watcher sees one).
pub const ANNOTATION_EVICTIONS: &str = "orchestrator.dev/kueue-evictions";
/// Kueue's API group and the version this service reads.
pub const API_GROUP: &str = "kueue.x-k8s.io";
pub const API_VERSION: &str = "v1beta1";

/// Where a task's Job goes in Kueue: its LocalQueue and, when its
/// priority maps to one, its WorkloadPriorityClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub queue: String,
    pub priority_class: Option<String>,
}

impl Placement {
    /// The placement of a task from its rule, repository (`owner/name`),
    /// source and priority.
    pub fn of(
        settings: &KueueSettings,
        rule: Option<&str>,
        repository: Option<&str>,
        source: &str,
        priority: i32,
    ) -> Placement {
        Placement {
            queue: settings.queue_for(rule, repository, source).to_string(),
            priority_class: settings.priority_class_for(priority).map(str::to_string),
        }
    }

    /// The placement of a stored Job (one made before Kueue mode, or held
    /// back): from the rule, repository, source and priority it shows.
    pub fn of_record(settings: &KueueSettings, r: &JobRecord) -> Placement {
        let rule = r
            .task
            .as_deref()
            .and_then(|t| t.labels.get("rule"))
            .map(String::as_str);
        Placement::of(
            settings,
            rule,
            r.repository_name.as_deref(),
            r.source.as_deref().unwrap_or(""),
            r.priority,
        )
    }

    /// The labels that hand a Job to Kueue.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([(QUEUE_NAME_LABEL.to_string(), self.queue.clone())]);
        if let Some(c) = &self.priority_class {
            out.insert(PRIORITY_CLASS_LABEL.to_string(), c.clone());
        }
        out
    }

    /// Puts the labels on a Job about to be created (its metadata only).
    pub fn apply(&self, job: &mut Job) {
        job.metadata
            .labels
            .get_or_insert_with(Default::default)
            .extend(self.labels());
    }
}

/// What `job` shows of Kueue; `None` if nothing.
pub fn record_of(
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) -> Option<KueueRecord> {
    let label = |k: &str| {
        labels
            .and_then(|l| l.get(k))
            .filter(|v| !v.is_empty())
            .map(|v| v.as_str().into())
    };
    let k = KueueRecord {
        queue: label(QUEUE_NAME_LABEL),
        priority_class: label(PRIORITY_CLASS_LABEL),
        stopping: annotations.is_some_and(|a| a.contains_key(STOPPING_ANNOTATION)),
        evictions: annotations
            .and_then(|a| a.get(ANNOTATION_EVICTIONS))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    };
    (k != KueueRecord::default()).then_some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placement_follows_the_settings_and_labels_only_the_job() {
        let settings = KueueSettings {
            default_queue: "agents".into(),
            queues: vec![(
                crate::config::kueue::QueueSelector::Source("grafana".into()),
                "ops".into(),
            )],
            priority_classes: [(10, "high".to_string())].into(),
        };
        let p = Placement::of(&settings, None, None, "grafana", 50);
        assert_eq!(p.queue, "ops");
        assert_eq!(p.priority_class.as_deref(), Some("high"));
        let mut job = Job::default();
        p.apply(&mut job);
        let labels = job.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(QUEUE_NAME_LABEL).map(String::as_str),
            Some("ops")
        );
        assert!(job.spec.is_none(), "nothing but metadata is touched");
        let low = Placement::of(&settings, None, None, "cli", 0);
        assert_eq!(low.labels().len(), 1, "no class below every threshold");
    }

    #[test]
    fn the_record_reads_the_queue_the_stopping_mark_and_the_evictions() {
        assert_eq!(record_of(None, None), None);
        let labels = BTreeMap::from([(QUEUE_NAME_LABEL.to_string(), "agents".to_string())]);
        let ann = BTreeMap::from([
            (STOPPING_ANNOTATION.to_string(), "true".to_string()),
            (ANNOTATION_EVICTIONS.to_string(), "2".to_string()),
        ]);
        let k = record_of(Some(&labels), Some(&ann)).expect("a Kueue record");
        assert_eq!(k.queue.as_deref(), Some("agents"));
        assert!(k.stopping && k.handed_over());
        assert_eq!(k.evictions, 2);
    }
}
