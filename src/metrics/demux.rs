//! The counters of the Job watch's demux (`src/watcher.rs`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Work counted on the demux edges (exported as metrics, read by the
/// structural tests).
#[derive(Debug, Default)]
pub struct DemuxStats {
    /// Watch events handled.
    pub events: Counter,
    /// Messages sent to watcher actors.
    pub to_watchers: Counter,
    /// Messages sent to the scheduler (by the demux and the watchers).
    pub to_scheduler: Counter,
    /// Messages a full mailbox refused (watchers or scheduler).
    pub overflows: Counter,
    /// Jobs in the watch store.
    pub tracked: Gauge,
}
