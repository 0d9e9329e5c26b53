//! `SCHEDULER=kueue`: the Jobs go to Kueue (kueue.x-k8s.io) instead of the
//! service's own admission. The settings say which LocalQueue each Job is
//! put in (`KUEUE_QUEUE_NAME`, `KUEUE_QUEUES`) and which
//! WorkloadPriorityClass a task's priority maps to
//! (`KUEUE_PRIORITY_CLASSES`).
//!
//! All of them are read and checked whatever `SCHEDULER` says (a typo is
//! refused before anyone switches the mode on); they take effect only in
//! Kueue mode.

use std::collections::BTreeMap;

use super::parse::is_dns1123_subdomain;
use super::ConfigError;

/// The default `KUEUE_QUEUE_NAME`.
pub const DEFAULT_QUEUE: &str = "agents";

/// What a `KUEUE_QUEUES` entry selects, in order of precedence.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueueSelector {
    /// `rule:NAME` — tasks of the routing rule NAME (GitHub tasks).
    Rule(String),
    /// `repo:OWNER/NAME` — tasks of the repository (case ignored).
    Repository(String),
    /// `source:NAME` — tasks of the source (`github`, `grafana`, `cli`,
    /// `pm-agent`).
    Source(String),
}

/// The Kueue settings (present in [`super::SchedulerConfig::kueue`] only
/// with `SCHEDULER=kueue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KueueSettings {
    /// `KUEUE_QUEUE_NAME` — the LocalQueue (in `KUBERNETES_NAMESPACE`) of
    /// every Job no `KUEUE_QUEUES` entry selects. Default `agents`.
    pub default_queue: String,
    /// `KUEUE_QUEUES` — `rule:NAME=queue`, `repo:OWNER/NAME=queue` and
    /// `source:NAME=queue` entries; a rule's entry wins over its
    /// repository's, which wins over its source's.
    pub queues: Vec<(QueueSelector, String)>,
    /// `KUEUE_PRIORITY_CLASSES` — `N=class` pairs: a task whose priority is
    /// N or more (and below the next N) gets the WorkloadPriorityClass
    /// `class` (label `kueue.x-k8s.io/priority-class`); a priority below
    /// every N gets none (Kueue then uses the LocalQueue's default).
    pub priority_classes: BTreeMap<i32, String>,
}

impl Default for KueueSettings {
    fn default() -> Self {
        KueueSettings {
            default_queue: DEFAULT_QUEUE.to_string(),
            queues: Vec::new(),
            priority_classes: BTreeMap::new(),
        }
    }
}

/// A LocalQueue or WorkloadPriorityClass name: an object name that is
/// also a label value (a DNS-1123 subdomain of at most 63 characters).
pub fn is_kueue_name(s: &str) -> bool {
    s.len() <= 63 && is_dns1123_subdomain(s)
}

impl KueueSettings {
    /// The LocalQueue of a task: its rule's entry, else its repository's,
    /// else its source's, else [`Self::default_queue`].
    pub fn queue_for(&self, rule: Option<&str>, repository: Option<&str>, source: &str) -> &str {
        let find = |want: &QueueSelector| {
            self.queues
                .iter()
                .find(|(s, _)| s == want)
                .map(|(_, q)| q.as_str())
        };
        rule.and_then(|r| find(&QueueSelector::Rule(r.to_string())))
            .or_else(|| {
                repository.and_then(|r| find(&QueueSelector::Repository(r.to_ascii_lowercase())))
            })
            .or_else(|| find(&QueueSelector::Source(source.to_string())))
            .unwrap_or(&self.default_queue)
    }

    /// The WorkloadPriorityClass of a task of `priority` (see
    /// [`Self::priority_classes`]).
    pub fn priority_class_for(&self, priority: i32) -> Option<&str> {
        self.priority_classes
            .range(..=priority)
            .next_back()
            .map(|(_, c)| c.as_str())
    }

    /// Every LocalQueue a Job may be put in (the default first), each once.
    pub fn all_queues(&self) -> Vec<&str> {
        self.home_queues(&[])
    }

    /// The LocalQueues a Job in the service's own namespace may be put in
    /// (the default first), each once: all of them but the entries of
    /// `tenant_rules`, rules whose Jobs run in a tenant namespace (their
    /// queues are looked up there, [`Self::queues_of_rules`]).
    pub fn home_queues(&self, tenant_rules: &[String]) -> Vec<&str> {
        let mut out = vec![self.default_queue.as_str()];
        for (s, q) in &self.queues {
            if matches!(s, QueueSelector::Rule(r) if tenant_rules.contains(r)) {
                continue;
            }
            if !out.contains(&q.as_str()) {
                out.push(q);
            }
        }
        out
    }

    /// The LocalQueues the Jobs of `rules` (GitHub routing rules, by name)
    /// are put in when no `repo:` entry places them: each rule's entry,
    /// else the `github` source's, else [`Self::default_queue`]; each
    /// once. What a tenant namespace must hold for its rules' Jobs.
    pub fn queues_of_rules<'a>(&'a self, rules: &[String]) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for r in rules {
            let q = self.queue_for(Some(r), None, "github");
            if !out.contains(&q) {
                out.push(q);
            }
        }
        out
    }

    /// Every WorkloadPriorityClass named, each once.
    pub fn all_priority_classes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in self.priority_classes.values() {
            if !out.contains(&c.as_str()) {
                out.push(c);
            }
        }
        out
    }

    /// The rule names `KUEUE_QUEUES` selects (checked against the rules
    /// once they are loaded).
    pub fn rules(&self) -> impl Iterator<Item = &str> {
        self.queues.iter().filter_map(|(s, _)| match s {
            QueueSelector::Rule(r) => Some(r.as_str()),
            _ => None,
        })
    }

    /// Reads `SCHEDULER` and the `KUEUE_*` variables: `Some` in Kueue
    /// mode.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<KueueSettings>, ConfigError> {
        let kueue = match get("SCHEDULER").as_deref().map(str::trim) {
            None | Some("builtin") => false,
            Some("kueue") => true,
            Some(other) => {
                return Err(ConfigError {
                    var: "SCHEDULER",
                    message: format!("expected builtin or kueue, got {other:?}"),
                })
            }
        };
        let default_queue = match get("KUEUE_QUEUE_NAME") {
            None => DEFAULT_QUEUE.to_string(),
            Some(q) if is_kueue_name(q.trim()) => q.trim().to_string(),
            Some(q) => {
                return Err(ConfigError {
                    var: "KUEUE_QUEUE_NAME",
                    message: format!(
                        "expected a LocalQueue name (lower-case letters, digits, '-' and '.', at most 63), got {q:?}"
                    ),
                })
            }
        };
        let settings = KueueSettings {
            default_queue,
            queues: queues(get)?,
            priority_classes: priority_classes(get)?,
        };
        Ok(kueue.then_some(settings))
    }
}

/// `KUEUE_QUEUES`.
fn queues(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<(QueueSelector, String)>, ConfigError> {
    const VAR: &str = "KUEUE_QUEUES";
    let mut out: Vec<(QueueSelector, String)> = Vec::new();
    let Some(v) = get(VAR) else {
        return Ok(out);
    };
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: String| {
            ConfigError {
            var: VAR,
            message: format!(
                "expected entries like rule:NAME=queue, repo:OWNER/NAME=queue or source:NAME=queue, comma-separated; {why}"
            ),
        }
        };
        let Some((selector, queue)) = entry.rsplit_once('=') else {
            return Err(bad(format!("got {entry:?}")));
        };
        let (kind, name) = selector
            .trim()
            .split_once(':')
            .ok_or_else(|| bad(format!("got {entry:?}")))?;
        let name = name.trim();
        let selector = match kind.trim() {
            "rule" if !name.is_empty() => QueueSelector::Rule(name.to_string()),
            "repo" if crate::task::git::is_valid_repository(name) => {
                QueueSelector::Repository(name.to_ascii_lowercase())
            }
            "repo" => return Err(bad(format!("{name:?} is not OWNER/NAME"))),
            "source" if super::scheduler::SOURCES.contains(&name) => {
                QueueSelector::Source(name.to_string())
            }
            "source" => {
                return Err(bad(format!(
                    "unknown source {name:?} (sources: {})",
                    super::scheduler::SOURCES.join(", ")
                )))
            }
            _ => return Err(bad(format!("got {entry:?}"))),
        };
        let queue = queue.trim();
        if !is_kueue_name(queue) {
            return Err(bad(format!(
                "{queue:?} is not a LocalQueue name (lower-case letters, digits, '-' and '.', at most 63)"
            )));
        }
        if out.iter().any(|(s, _)| *s == selector) {
            return Err(bad(format!("{selector:?} is named twice")));
        }
        out.push((selector, queue.to_string()));
    }
    Ok(out)
}

/// `KUEUE_PRIORITY_CLASSES`.
fn priority_classes(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<i32, String>, ConfigError> {
    const VAR: &str = "KUEUE_PRIORITY_CLASSES";
    let mut out = BTreeMap::new();
    let Some(v) = get(VAR) else {
        return Ok(out);
    };
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |why: String| {
            ConfigError {
            var: VAR,
            message: format!(
                "expected priority=class pairs (a task of that priority or more, up to the next one, gets the WorkloadPriorityClass), like 50=agents-high,0=agents-normal; {why}"
            ),
        }
        };
        let Some((n, class)) = pair.split_once('=') else {
            return Err(bad(format!("got {pair:?}")));
        };
        let n = crate::task::parse_priority(n.trim())
            .ok_or_else(|| bad(format!("{:?} is not a priority", n.trim())))?;
        let class = class.trim();
        if !is_kueue_name(class) {
            return Err(bad(format!(
                "{class:?} is not a WorkloadPriorityClass name (lower-case letters, digits, '-' and '.', at most 63)"
            )));
        }
        if out.insert(n, class.to_string()).is_some() {
            return Err(bad(format!("priority {n} is named twice")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_tenant_rule_s_queue_is_looked_up_in_its_namespace_only() {
        let settings = KueueSettings {
            default_queue: "agents".into(),
            queues: vec![
                (QueueSelector::Rule("team-a".into()), "team-a-q".into()),
                (QueueSelector::Rule("home".into()), "home-q".into()),
                (QueueSelector::Source("github".into()), "gh".into()),
                (QueueSelector::Repository("acme/api".into()), "api".into()),
            ],
            priority_classes: BTreeMap::new(),
        };
        let tenant = vec!["team-a".to_string()];
        assert_eq!(
            settings.home_queues(&tenant),
            vec!["agents", "home-q", "gh", "api"]
        );
        assert_eq!(
            settings.all_queues(),
            vec!["agents", "team-a-q", "home-q", "gh", "api"]
        );
        // team-a's entry; a tenant rule without one gets the github
        // source's queue.
        assert_eq!(
            settings.queues_of_rules(&["team-a".into(), "team-b".into(), "team-c".into()]),
            vec!["team-a-q", "gh"]
        );
    }

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Option<KueueSettings>, ConfigError> {
        KueueSettings::from_lookup(&|k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn builtin_is_the_default_and_kueue_reads_the_queue_settings() {
        assert_eq!(load(&[]).unwrap(), None);
        assert_eq!(load(&[("SCHEDULER", "builtin")]).unwrap(), None);
        let k = load(&[("SCHEDULER", "kueue")]).unwrap().unwrap();
        assert_eq!(k, KueueSettings::default());
        assert_eq!(k.queue_for(Some("r"), Some("a/b"), "github"), "agents");
        assert_eq!(k.priority_class_for(100), None);
    }

    #[test]
    fn a_rule_wins_over_its_repository_which_wins_over_its_source() {
        let k = load(&[
            ("SCHEDULER", "kueue"),
            ("KUEUE_QUEUE_NAME", "team"),
            (
                "KUEUE_QUEUES",
                "source:grafana=ops, repo:Acme/API=api-q,rule:pr-review=review",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            k.queue_for(Some("pr-review"), Some("acme/api"), "github"),
            "review"
        );
        assert_eq!(
            k.queue_for(Some("other"), Some("ACME/api"), "github"),
            "api-q"
        );
        assert_eq!(k.queue_for(None, Some("acme/web"), "grafana"), "ops");
        assert_eq!(k.queue_for(None, None, "cli"), "team");
        assert_eq!(k.all_queues(), ["team", "ops", "api-q", "review"]);
        assert_eq!(k.rules().collect::<Vec<_>>(), ["pr-review"]);
    }

    #[test]
    fn a_priority_maps_to_the_class_of_the_highest_threshold_at_or_below_it() {
        let k = load(&[
            ("SCHEDULER", "kueue"),
            ("KUEUE_PRIORITY_CLASSES", "50=high, 0=normal,-10=low"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(k.priority_class_for(100), Some("high"));
        assert_eq!(k.priority_class_for(50), Some("high"));
        assert_eq!(k.priority_class_for(49), Some("normal"));
        assert_eq!(k.priority_class_for(0), Some("normal"));
        assert_eq!(k.priority_class_for(-10), Some("low"));
        assert_eq!(k.priority_class_for(-11), None);
        assert_eq!(k.all_priority_classes(), ["low", "normal", "high"]);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, bad) in [
            ("SCHEDULER", "volcano"),
            ("KUEUE_QUEUE_NAME", "Agents"),
            ("KUEUE_QUEUE_NAME", "a_b"),
            ("KUEUE_QUEUES", "team"),
            ("KUEUE_QUEUES", "repo:acme=q"),
            ("KUEUE_QUEUES", "source:gitlab=q"),
            ("KUEUE_QUEUES", "label:x=q"),
            ("KUEUE_QUEUES", "rule:a=q,rule:a=r"),
            ("KUEUE_QUEUES", "rule:a=Q"),
            ("KUEUE_PRIORITY_CLASSES", "high"),
            ("KUEUE_PRIORITY_CLASSES", "x=high"),
            ("KUEUE_PRIORITY_CLASSES", "1=a,1=b"),
            ("KUEUE_PRIORITY_CLASSES", "1=not valid"),
        ] {
            // Checked in either mode.
            assert_eq!(load(&[(var, bad)]).unwrap_err().var, var, "{bad}");
        }
    }
}
