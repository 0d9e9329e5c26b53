//! The dedup record's metrics (`src/cluster/dedup.rs`): keys held in memory
//! and shard writes by outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The dedup record's metrics (clones share values).
#[derive(Clone, Debug, Default)]
pub struct DedupMetrics {
    keys: Gauge,
    writes: Family<OutcomeLabels, Counter>,
}

impl DedupMetrics {
    pub(super) fn register(registry: &mut Registry) -> DedupMetrics {
        let m = DedupMetrics::default();
        registry.register(
            "dedup_record_keys",
            "Dedup keys in this replica's copy of the dedup record (accepted within DEDUP_RETENTION_SECONDS)",
            m.keys.clone(),
        );
        registry.register(
            "dedup_shard_writes",
            "Writes of dedup record shards by outcome (ok; conflict: another replica wrote it, re-read and merged; failed: keys kept for the next round; dropped: keys over the write queue's bound)",
            m.writes.clone(),
        );
        // Zeros from the start (a fresh replica exports every outcome).
        for outcome in ["ok", "conflict", "failed", "dropped"] {
            let _ = m.writes.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
        m
    }

    /// One shard write's outcome.
    pub fn write(&self, outcome: &str) {
        self.writes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// `n` keys with this outcome at once (`dropped`).
    pub fn write_n(&self, outcome: &str, n: u64) {
        self.writes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    /// Shard writes so far with this outcome.
    pub fn writes(&self, outcome: &str) -> u64 {
        self.writes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .get()
    }

    /// Keys held now.
    pub fn set_keys(&self, n: usize) {
        self.keys.set(n as i64);
    }

    /// Keys held (as last published).
    pub fn keys(&self) -> i64 {
        self.keys.get()
    }
}
