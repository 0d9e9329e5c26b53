//! Job controller and fake kubelet (placeholder wiring; filled in below).

use std::sync::Arc;

use super::server::SimState;

/// Starts the controller loop on the current runtime.
pub fn spawn(state: Arc<SimState>) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let _ = state;
    })
}
