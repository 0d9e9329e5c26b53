//! The Kube actor's side of the preflight checks: runs one round of probes
//! with the actor's client, under the gate's request-rate bound.

use actix::prelude::*;

use super::KubeActor;
use crate::cluster::preflight::Observation;
use crate::cluster::probe;

/// Runs one round of preflight probes in the actor's namespace and the
/// tenant namespaces named.
#[derive(Message)]
#[rtype(result = "Observation")]
pub struct Preflight {
    pub tenants: Vec<String>,
}

impl Handler<Preflight> for KubeActor {
    type Result = ResponseFuture<Observation>;
    fn handle(&mut self, msg: Preflight, _: &mut Context<Self>) -> Self::Result {
        let gate = self.gate.clone();
        let ns = self.namespace.clone();
        Box::pin(async move { probe::observe(&gate, &ns, &msg.tenants).await })
    }
}
