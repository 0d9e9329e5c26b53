//! Daily budgets: agent-minutes per repository and per source, and the
//! cost the agents reported per repository, per UTC calendar day.
//!
//! Counted from the Jobs themselves (the watch store), never from a
//! counter of this process, so every replica and a restarted one reach the
//! same answer: a Job's minutes are the part of its run (`started_at` to
//! `completed_at`, the time it was cancelled or failed, or now while it
//! runs) that falls in today; its cost is the `cost_usd` of its report mark
//! (`orchestrator.dev/report`, written when its GitHub report read the
//! agent's final JSON result), counted on the day it finished. Only Jobs
//! that still exist count: `JOB_TTL_SECONDS` below a day lets finished
//! Jobs, and their minutes, go before the day ends (the service warns at
//! start-up).
//!
//! The day is the UTC calendar day, not a rolling 24 hours: a spent budget
//! then has one clear end everyone can read ("until 00:00 UTC"), where a
//! rolling window would free minutes bit by bit at times nobody can tell
//! in advance.
//!
//! A budget is checked at admission: a running Job is never stopped by it,
//! so the Jobs running when it runs out may overrun it (by at most the
//! repository's running Jobs times their timeout).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, Utc};

use crate::config::SchedulerConfig;
use crate::job::{JobRecord, JobState};
use crate::report::comment::Mark;

/// What a day's Jobs used.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Usage {
    /// Repository key → (agent-seconds, reported USD).
    pub repositories: HashMap<String, (f64, f64)>,
    /// Source → agent-seconds.
    pub sources: HashMap<String, f64>,
}

/// The spent budgets: key → what was spent, in words.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Spent {
    pub repositories: HashMap<String, String>,
    pub sources: HashMap<String, String>,
}

impl Spent {
    pub fn repository_keys(&self) -> HashSet<Arc<str>> {
        self.repositories
            .keys()
            .map(|k| Arc::from(k.as_str()))
            .collect()
    }

    pub fn source_keys(&self) -> HashSet<Arc<str>> {
        self.sources.keys().map(|k| Arc::from(k.as_str())).collect()
    }
}

/// Whether any budget is set.
pub fn any(c: &SchedulerConfig) -> bool {
    c.minutes_per_repository > 0.0 || c.usd_per_repository > 0.0 || !c.minutes_per_source.is_empty()
}

/// The UTC day `now` falls in: [start, end).
pub fn day_of(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    (start, start + Duration::days(1))
}

/// When a finished (or cancelled) Job stopped running.
fn ended(r: &JobRecord) -> Option<DateTime<Utc>> {
    if let Some(t) = r.completed_at {
        return Some(t);
    }
    if let Some(c) = r.cancelled_at {
        return DateTime::from_timestamp(c, 0);
    }
    r.conditions
        .iter()
        .filter(|c| c.status == "True" && matches!(c.kind.as_str(), "Failed" | "Complete"))
        .find_map(|c| c.last_transition_time.as_deref())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// What the Jobs used in the day of `now` (up to `now`). Costs are read
/// only `with_cost` (they need the report mark's JSON).
pub fn usage<'a>(
    records: impl IntoIterator<Item = &'a Arc<JobRecord>>,
    now: DateTime<Utc>,
    with_cost: bool,
) -> Usage {
    let (start, _) = day_of(now);
    let mut u = Usage::default();
    for r in records {
        let Some(began) = r.started_at else {
            continue;
        };
        let end = match r.state {
            JobState::Running | JobState::Queued => Some(now),
            _ => ended(r),
        };
        let Some(end) = end.map(|e| e.min(now)) else {
            continue;
        };
        if end < start {
            continue;
        }
        let secs = (end - began.max(start)).num_milliseconds().max(0) as f64 / 1000.0;
        let cost = if with_cost && r.state.is_finished() {
            Mark::of(r).cost_usd.unwrap_or(0.0)
        } else {
            0.0
        };
        let repo = r.repository_key();
        if !repo.is_empty() {
            let e = u.repositories.entry(repo).or_default();
            e.0 += secs;
            e.1 += cost;
        }
        if let Some(s) = r.source.as_deref() {
            *u.sources.entry(s.to_string()).or_default() += secs;
        }
    }
    u
}

fn minutes(x: f64) -> String {
    let m = x / 60.0;
    if m >= 10.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    }
}

/// The budgets `usage` has spent.
pub fn spent(u: &Usage, c: &SchedulerConfig) -> Spent {
    let mut out = Spent::default();
    for (repo, (secs, usd)) in &u.repositories {
        let mins = c.minutes_per_repository;
        if mins > 0.0 && *secs >= mins * 60.0 {
            out.repositories.insert(
                repo.clone(),
                format!("{}/{} agent-minutes", minutes(*secs), minutes(mins * 60.0)),
            );
        } else if c.usd_per_repository > 0.0 && *usd >= c.usd_per_repository {
            out.repositories.insert(
                repo.clone(),
                format!("${usd:.2}/${:.2} reported", c.usd_per_repository),
            );
        }
    }
    for (source, limit) in &c.minutes_per_source {
        let used = u.sources.get(source).copied().unwrap_or(0.0);
        if used >= limit * 60.0 {
            out.sources.insert(
                source.clone(),
                format!("{}/{} agent-minutes", minutes(used), minutes(limit * 60.0)),
            );
        }
    }
    out
}

/// The end of the day, as shown.
pub fn until_text(now: DateTime<Utc>) -> String {
    day_of(now).1.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ConditionView;

    fn rec(
        name: &str,
        repo: &str,
        state: JobState,
        from: &str,
        to: Option<&str>,
    ) -> Arc<JobRecord> {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        Arc::new(JobRecord {
            name: name.into(),
            namespace: "default".into(),
            rv: 1,
            state,
            created: 0,
            created_at: None,
            source: Some("github".into()),
            kind: None,
            repository: None,
            repository_name: Some(repo.into()),
            priority: 0,
            concurrency_key: None,
            dedup_key: None,
            url: None,
            cancelled_at: None,
            started_at: Some(t(from)),
            completed_at: to.map(t),
            conditions: Vec::<ConditionView>::new(),
            active: 0,
            succeeded: 0,
            failed: 0,
            task: None,
            report_mark: Some(r#"{"state":"succeeded","cost_usd":1.5}"#.into()),
            callback_url: None,
            callback_mark: None,
            kueue: None,
            uid: None,
        })
    }

    #[test]
    fn minutes_are_counted_within_the_utc_day_and_costs_on_the_day_they_end() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let jobs = [
            // 30 min yesterday, 30 min today.
            rec(
                "a",
                "Acme/API",
                JobState::Succeeded,
                "2026-12-06T23:30:00Z",
                Some("2026-12-07T00:30:00Z"),
            ),
            // Running for 60 min now.
            rec(
                "b",
                "acme/api",
                JobState::Running,
                "2026-12-07T11:00:00Z",
                None,
            ),
            // All yesterday: nothing today.
            rec(
                "c",
                "acme/api",
                JobState::Succeeded,
                "2026-12-06T10:00:00Z",
                Some("2026-12-06T11:00:00Z"),
            ),
            rec(
                "d",
                "acme/web",
                JobState::Succeeded,
                "2026-12-07T10:00:00Z",
                Some("2026-12-07T10:10:00Z"),
            ),
        ];
        let u = usage(&jobs, now, true);
        let (secs, usd) = u.repositories["acme/api"];
        assert_eq!(secs, 90.0 * 60.0);
        assert_eq!(usd, 1.5, "the cost of a Job that ended today");
        assert_eq!(u.sources["github"], 100.0 * 60.0);
        let c = SchedulerConfig {
            minutes_per_repository: 90.0,
            minutes_per_source: [("github".to_string(), 200.0)].into(),
            ..SchedulerConfig::default()
        };
        let s = spent(&u, &c);
        assert_eq!(s.repositories["acme/api"], "90/90 agent-minutes");
        assert!(!s.repositories.contains_key("acme/web"));
        assert!(s.sources.is_empty());
        let c = SchedulerConfig {
            usd_per_repository: 1.0,
            ..SchedulerConfig::default()
        };
        assert_eq!(
            spent(&u, &c).repositories["acme/api"],
            "$1.50/$1.00 reported"
        );
        assert_eq!(until_text(now), "2026-12-08 00:00 UTC");
    }
}
