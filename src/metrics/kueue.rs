//! What Kueue did to the Jobs (`SCHEDULER=kueue`), counted by the scheduler
//! Lease holder as the Jobs' watchers see it.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Kueue admissions and evictions.
#[derive(Clone, Debug, Default)]
pub struct KueueMetrics {
    admissions: Counter,
    evictions: Counter,
}

impl KueueMetrics {
    pub fn register(registry: &mut Registry) -> KueueMetrics {
        let m = KueueMetrics::default();
        registry.register(
            "kueue_admissions",
            "SCHEDULER=kueue: Jobs seen admitted (unsuspended) by Kueue, on the scheduler Lease holder",
            m.admissions.clone(),
        );
        registry.register(
            "kueue_evictions",
            "SCHEDULER=kueue: running Jobs seen evicted (suspended again and requeued) by Kueue, on the scheduler Lease holder",
            m.evictions.clone(),
        );
        m
    }

    /// Kueue admitted a Job.
    pub fn admitted(&self) {
        self.admissions.inc();
    }

    /// Kueue evicted a running Job.
    pub fn evicted(&self) {
        self.evictions.inc();
    }

    /// Evictions counted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.get()
    }
}
