//! The scheduler's periods (`SCHEDULER_RESYNC_SECONDS`,
//! `CANCELLED_JOB_SWEEP_SECONDS`), its caps beyond `MAX_CONCURRENT_JOBS`
//! (`MAX_CONCURRENT_JOBS_PER_REPOSITORY`, `MAX_CONCURRENT_JOBS_PER_SOURCE`)
//! and the daily budgets (`BUDGET_MINUTES_PER_REPOSITORY_PER_DAY`,
//! `BUDGET_MINUTES_PER_SOURCE_PER_DAY`, `BUDGET_USD_PER_REPOSITORY_PER_DAY`).
//! The periods only bound how late something happens that normally happens
//! at once, so production keeps the defaults; tests shorten them instead of
//! waiting for them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::parse::seconds;
use super::ConfigError;

/// Periodic work of the scheduler actor.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// `SCHEDULER_RESYNC_SECONDS` — how often the scheduler re-reads the Job
    /// changes a full mailbox could not carry (from the watch store) and
    /// tries to admit queued Jobs. Default `5`.
    pub resync: Duration,
    /// `CANCELLED_JOB_SWEEP_SECONDS` — how often the leader deletes the
    /// cancelled Jobs older than `JOB_TTL_SECONDS`. Default `30`.
    pub cancelled_sweep: Duration,
    /// `MAX_CONCURRENT_JOBS_PER_REPOSITORY` — running Jobs per repository
    /// (0: no cap, the default: the fair order already keeps one busy
    /// repository from starving the others, and a cap would leave slots
    /// idle when one repository has all the work).
    pub per_repository: usize,
    /// `MAX_CONCURRENT_JOBS_PER_SOURCE` — `source=cap` pairs
    /// (`github=5,grafana=2`); a source not named has no cap of its own.
    pub per_source: BTreeMap<String, usize>,
    /// `BUDGET_MINUTES_PER_REPOSITORY_PER_DAY` — agent-minutes each
    /// repository may use per UTC day (0: none).
    pub minutes_per_repository: f64,
    /// `BUDGET_MINUTES_PER_SOURCE_PER_DAY` — `source=minutes` pairs.
    pub minutes_per_source: BTreeMap<String, f64>,
    /// `BUDGET_USD_PER_REPOSITORY_PER_DAY` — what the agents of one
    /// repository may report spending per UTC day, USD (0: none).
    pub usd_per_repository: f64,
    /// `SCHEDULER=kueue` (with the `KUEUE_*` settings): Kueue admits the
    /// Jobs, this service never unsuspends one. `None`: the built-in
    /// admission (the default).
    pub kueue: Option<super::kueue::KueueSettings>,
}

/// The sources a cap or budget may name.
pub const SOURCES: &[&str] = &["github", "grafana", "cli", "pm-agent"];

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            resync: Duration::from_secs(5),
            cancelled_sweep: Duration::from_secs(30),
            per_repository: 0,
            per_source: BTreeMap::new(),
            minutes_per_repository: 0.0,
            minutes_per_source: BTreeMap::new(),
            usd_per_repository: 0.0,
            kueue: None,
        }
    }
}

/// A non-negative finite number (0 and empty: none).
fn amount(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    max: f64,
) -> Result<f64, ConfigError> {
    let Some(v) = get(var) else {
        return Ok(0.0);
    };
    if v.trim().is_empty() {
        return Ok(0.0);
    }
    match v.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && (0.0..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError {
            var,
            message: format!("expected a number from 0 (none) to {max}, got {v:?}"),
        }),
    }
}

/// `source=value` pairs, comma-separated, each source at most once.
fn per_source<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<BTreeMap<String, T>, ConfigError> {
    let mut out = BTreeMap::new();
    let Some(v) = get(var) else {
        return Ok(out);
    };
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |why: String| ConfigError {
            var,
            message: format!(
                "expected source=value pairs (sources: {}; values: {what}), {why}",
                SOURCES.join(", ")
            ),
        };
        let Some((s, n)) = pair.split_once('=') else {
            return Err(bad(format!("got {pair:?}")));
        };
        let s = s.trim();
        if !SOURCES.contains(&s) {
            return Err(bad(format!("unknown source {s:?}")));
        }
        let Some(n) = parse(n.trim()) else {
            return Err(bad(format!("got {pair:?}")));
        };
        if out.insert(s.to_string(), n).is_some() {
            return Err(bad(format!("{s:?} named twice")));
        }
    }
    Ok(out)
}

impl SchedulerConfig {
    /// Reads and checks the scheduler's period variables.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = SchedulerConfig::default();
        Ok(SchedulerConfig {
            resync: seconds(get, "SCHEDULER_RESYNC_SECONDS", d.resync)?,
            cancelled_sweep: seconds(get, "CANCELLED_JOB_SWEEP_SECONDS", d.cancelled_sweep)?,
            per_repository: amount(get, "MAX_CONCURRENT_JOBS_PER_REPOSITORY", 100_000.0).and_then(
                |n| {
                    if n.fract() == 0.0 {
                        Ok(n as usize)
                    } else {
                        Err(ConfigError {
                            var: "MAX_CONCURRENT_JOBS_PER_REPOSITORY",
                            message: format!(
                                "expected an integer from 0 (no cap) to 100000, got {n}"
                            ),
                        })
                    }
                },
            )?,
            per_source: per_source(
                get,
                "MAX_CONCURRENT_JOBS_PER_SOURCE",
                |v| {
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                },
                "integers from 1 to 100000",
            )?,
            minutes_per_repository: amount(get, "BUDGET_MINUTES_PER_REPOSITORY_PER_DAY", 1e9)?,
            minutes_per_source: per_source(
                get,
                "BUDGET_MINUTES_PER_SOURCE_PER_DAY",
                |v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite() && *n > 0.0 && *n <= 1e9)
                },
                "minutes above 0, decimals allowed",
            )?,
            usd_per_repository: amount(get, "BUDGET_USD_PER_REPOSITORY_PER_DAY", 1e9)?,
            kueue: super::kueue::KueueSettings::from_lookup(get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<SchedulerConfig, ConfigError> {
        SchedulerConfig::from_lookup(&|k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_are_five_and_thirty_seconds() {
        assert_eq!(load(&[]).unwrap(), SchedulerConfig::default());
        assert_eq!(SchedulerConfig::default().resync, Duration::from_secs(5));
    }

    #[test]
    fn short_periods_are_accepted_for_tests() {
        let c = load(&[
            ("SCHEDULER_RESYNC_SECONDS", "0.1"),
            ("CANCELLED_JOB_SWEEP_SECONDS", "0.25"),
        ])
        .unwrap();
        assert_eq!(c.resync, Duration::from_millis(100));
        assert_eq!(c.cancelled_sweep, Duration::from_millis(250));
    }

    #[test]
    fn caps_and_budgets_are_read_and_checked() {
        let c = load(&[
            ("MAX_CONCURRENT_JOBS_PER_REPOSITORY", "2"),
            ("MAX_CONCURRENT_JOBS_PER_SOURCE", "github=5, grafana=2"),
            ("BUDGET_MINUTES_PER_REPOSITORY_PER_DAY", "600"),
            ("BUDGET_MINUTES_PER_SOURCE_PER_DAY", "cli=0.5"),
            ("BUDGET_USD_PER_REPOSITORY_PER_DAY", "25.5"),
        ])
        .unwrap();
        assert_eq!(c.per_repository, 2);
        assert_eq!(c.per_source.get("grafana"), Some(&2));
        assert_eq!(c.minutes_per_repository, 600.0);
        assert_eq!(c.minutes_per_source.get("cli"), Some(&0.5));
        assert_eq!(c.usd_per_repository, 25.5);
        for (var, bad) in [
            ("MAX_CONCURRENT_JOBS_PER_REPOSITORY", "1.5"),
            ("MAX_CONCURRENT_JOBS_PER_REPOSITORY", "-1"),
            ("MAX_CONCURRENT_JOBS_PER_SOURCE", "gitlab=1"),
            ("MAX_CONCURRENT_JOBS_PER_SOURCE", "github=0"),
            ("MAX_CONCURRENT_JOBS_PER_SOURCE", "github=1,github=2"),
            ("BUDGET_MINUTES_PER_SOURCE_PER_DAY", "github"),
            ("BUDGET_USD_PER_REPOSITORY_PER_DAY", "NaN"),
        ] {
            assert_eq!(load(&[(var, bad)]).unwrap_err().var, var, "{bad}");
        }
    }

    #[test]
    fn bad_periods_name_their_variable() {
        for var in ["SCHEDULER_RESYNC_SECONDS", "CANCELLED_JOB_SWEEP_SECONDS"] {
            for bad in ["0", "-1", "soon", "NaN", "inf", "3601"] {
                let e = load(&[(var, bad)]).unwrap_err();
                assert_eq!(e.var, var, "{bad}");
                assert!(e.message.contains(&format!("{bad:?}")), "{}", e.message);
            }
        }
    }
}
