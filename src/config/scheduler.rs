//! The scheduler's periods (`SCHEDULER_RESYNC_SECONDS`,
//! `CANCELLED_JOB_SWEEP_SECONDS`). Both only bound how late something
//! happens that normally happens at once, so production keeps the defaults;
//! tests shorten them instead of waiting for them.

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
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            resync: Duration::from_secs(5),
            cancelled_sweep: Duration::from_secs(30),
        }
    }
}

impl SchedulerConfig {
    /// Reads and checks the scheduler's period variables.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = SchedulerConfig::default();
        Ok(SchedulerConfig {
            resync: seconds(get, "SCHEDULER_RESYNC_SECONDS", d.resync)?,
            cancelled_sweep: seconds(get, "CANCELLED_JOB_SWEEP_SECONDS", d.cancelled_sweep)?,
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
