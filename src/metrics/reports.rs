//! The counters of reporting back (`src/report/`, `src/github/`): GitHub
//! API calls by operation and outcome, installation tokens bought, and
//! reports (GitHub comments, check runs, callbacks) by target and outcome.
//! Label values are fixed sets: never repositories, URLs or job names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReportLabels {
    target: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    outcome: String,
}

/// Reporting's metrics (clones share values).
#[derive(Clone, Debug)]
pub struct ReportMetrics {
    github_calls: Family<CallLabels, Counter>,
    installation_tokens: Counter,
    reports: Family<ReportLabels, Counter>,
    commands: Family<CommandLabels, Counter>,
    recovery: Family<OutcomeLabels, Counter>,
    recovery_cycles: Histogram,
}

impl Default for ReportMetrics {
    fn default() -> Self {
        ReportMetrics {
            github_calls: Family::default(),
            installation_tokens: Counter::default(),
            reports: Family::default(),
            commands: Family::default(),
            recovery: Family::default(),
            // 10 ms to about 80 s.
            recovery_cycles: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
        }
    }
}

impl ReportMetrics {
    pub(super) fn register(registry: &mut Registry) -> ReportMetrics {
        let m = ReportMetrics::default();
        registry.register(
            "github_requests",
            "GitHub API calls by operation (comment_create, comment_edit, comment_list, reaction, check_run, installation_token, delivery_list, delivery_redeliver, …) and outcome (ok, not_modified, rate_limited, unavailable, refused, held: not sent while GitHub asked to wait)",
            m.github_calls.clone(),
        );
        registry.register(
            "github_installation_tokens",
            "GitHub App installation tokens bought",
            m.installation_tokens.clone(),
        );
        registry.register(
            "reports",
            "Reports of Job state back to where a task came from, by target (github, check_run, callback) and outcome (reported, retried, given_up, dropped: refused for good)",
            m.reports.clone(),
        );
        registry.register(
            "github_commands",
            "Slash commands (/agent status|cancel|retry) by command and outcome (done, untrusted, nothing_to_do, failed)",
            m.commands.clone(),
        );
        registry.register(
            "delivery_recovery",
            "Recovery of missed GitHub webhook deliveries, by outcome: seen (delivery guids listed, per cycle), missing (never answered 2xx and not processed here, not yet asked for), requested (redelivery asked for, accepted by GitHub), failed (GitHub refused the request or did not answer)",
            m.recovery.clone(),
        );
        registry.register(
            "delivery_recovery_cycle_seconds",
            "Time of one delivery-recovery cycle (listing and redelivery requests), on the leader",
            m.recovery_cycles.clone(),
        );
        m
    }

    /// Creates the series whose labels are known up front.
    pub(super) fn initialise_known_labels(&self) {
        for operation in [
            "comment_create",
            "comment_edit",
            "comment_list",
            "reaction",
            "check_run",
            "check_run_list",
            "pull_get",
            "installation_token",
            "installation_lookup",
            "delivery_list",
            "delivery_redeliver",
        ] {
            for outcome in [
                "ok",
                "not_modified",
                "rate_limited",
                "unavailable",
                "refused",
                "held",
            ] {
                let _ = self.github_calls.get_or_create(&CallLabels {
                    operation: operation.into(),
                    outcome: outcome.into(),
                });
            }
        }
        for target in ["github", "callback"] {
            for outcome in ["reported", "retried", "given_up", "dropped"] {
                let _ = self.reports.get_or_create(&ReportLabels {
                    target: target.into(),
                    outcome: outcome.into(),
                });
            }
        }
        for command in ["status", "cancel", "retry"] {
            for outcome in ["done", "nothing_to_do", "failed", "untrusted"] {
                let _ = self.commands.get_or_create(&CommandLabels {
                    command: command.into(),
                    outcome: outcome.into(),
                });
            }
        }
        for outcome in ["seen", "missing", "requested", "failed"] {
            let _ = self.recovery.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
    }

    /// `n` guids of the delivery recovery's `outcome`.
    pub fn recovery(&self, outcome: &str, n: u64) {
        self.recovery
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    /// The count of a delivery-recovery outcome so far.
    pub fn recovery_count(&self, outcome: &str) -> u64 {
        self.recovery
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .get()
    }

    /// One delivery-recovery cycle took `seconds`.
    pub fn recovery_cycle(&self, seconds: f64) {
        self.recovery_cycles.observe(seconds);
    }

    /// One GitHub API call.
    pub fn github_call(&self, operation: &str, outcome: &str) {
        self.github_calls
            .get_or_create(&CallLabels {
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// GitHub API calls so far with this operation and outcome.
    pub fn github_calls(&self, operation: &str, outcome: &str) -> u64 {
        self.github_calls
            .get_or_create(&CallLabels {
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .get()
    }

    /// An installation token was bought.
    pub fn installation_token(&self) {
        self.installation_tokens.inc();
    }

    /// One report attempt's outcome.
    pub fn report(&self, target: &str, outcome: &str) {
        self.reports
            .get_or_create(&ReportLabels {
                target: target.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// One slash command's outcome.
    pub fn command(&self, command: &str, outcome: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}
