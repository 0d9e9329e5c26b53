//! Leader-election timing (`LEADER_*` variables), with client-go's defaults
//! and constraints: the lease outlasts the renew deadline, which outlasts
//! the retry period, so a holder always stops admitting before anyone else
//! may take over.

use std::time::Duration;

use super::parse::seconds;
use super::ConfigError;

/// Timing of the scheduler Lease.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderConfig {
    /// `LEADER_LEASE_SECONDS` — how long candidates wait, after they last saw
    /// the Lease change, before they take it over. Default `15`.
    pub lease_duration: Duration,
    /// `LEADER_RENEW_DEADLINE_SECONDS` — a holder that has not renewed
    /// within this long stops admitting at once. Default `10`.
    pub renew_deadline: Duration,
    /// `LEADER_RETRY_SECONDS` — how often the Lease is renewed or tried.
    /// Default `2`.
    pub retry_period: Duration,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaderConfig {
    /// Reads and checks the `LEADER_*` variables.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = LeaderConfig::default();
        let c = LeaderConfig {
            lease_duration: seconds(get, "LEADER_LEASE_SECONDS", d.lease_duration)?,
            renew_deadline: seconds(get, "LEADER_RENEW_DEADLINE_SECONDS", d.renew_deadline)?,
            retry_period: seconds(get, "LEADER_RETRY_SECONDS", d.retry_period)?,
        };
        if c.renew_deadline >= c.lease_duration {
            return Err(ConfigError {
                var: "LEADER_RENEW_DEADLINE_SECONDS",
                message: format!(
                    "expected less than LEADER_LEASE_SECONDS ({} s), got {} s",
                    c.lease_duration.as_secs_f64(),
                    c.renew_deadline.as_secs_f64()
                ),
            });
        }
        if c.retry_period >= c.renew_deadline {
            return Err(ConfigError {
                var: "LEADER_RETRY_SECONDS",
                message: format!(
                    "expected less than LEADER_RENEW_DEADLINE_SECONDS ({} s), got {} s",
                    c.renew_deadline.as_secs_f64(),
                    c.retry_period.as_secs_f64()
                ),
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<LeaderConfig, ConfigError> {
        LeaderConfig::from_lookup(&|k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_are_client_go_s() {
        assert_eq!(load(&[]).unwrap(), LeaderConfig::default());
    }

    #[test]
    fn decimals_are_accepted() {
        let c = load(&[
            ("LEADER_LEASE_SECONDS", "3"),
            ("LEADER_RENEW_DEADLINE_SECONDS", "2"),
            ("LEADER_RETRY_SECONDS", "0.25"),
        ])
        .unwrap();
        assert_eq!(c.retry_period, Duration::from_millis(250));
    }

    #[test]
    fn the_order_lease_renew_retry_is_enforced() {
        let e = load(&[("LEADER_RENEW_DEADLINE_SECONDS", "15")]).unwrap_err();
        assert_eq!(e.var, "LEADER_RENEW_DEADLINE_SECONDS");
        let e = load(&[("LEADER_RETRY_SECONDS", "10")]).unwrap_err();
        assert_eq!(e.var, "LEADER_RETRY_SECONDS");
        for bad in ["0", "-1", "abc", "NaN", "7200"] {
            let e = load(&[("LEADER_LEASE_SECONDS", bad)]).unwrap_err();
            assert_eq!(e.var, "LEADER_LEASE_SECONDS", "{bad}");
        }
    }
}
