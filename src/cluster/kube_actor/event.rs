//! The Kube actor's side of the audit trail ([`crate::cluster::audit`]):
//! creates one core/v1 Event on a Job, reading the Job first when its uid
//! is not known. Bookkeeping: the calls take the gate's share for reads, so
//! Job creates keep at least half of the API rate.

use std::time::{Duration, Instant};

use actix::prelude::*;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};

use super::{KubeActor, KubeError};
use crate::cluster::audit::{event_for, RecordEvent};

/// How long one Event may take (it is never waited for).
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// `reportingInstance`: the pod's name (`POD_NAME`), else the host's.
fn instance() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "orchestrator".into())
}

impl Handler<RecordEvent> for KubeActor {
    type Result = ResponseFuture<Result<(), KubeError>>;
    fn handle(&mut self, msg: RecordEvent, _: &mut Context<Self>) -> Self::Result {
        // The Event goes with its Job, into the Job's namespace.
        let ns = self.ns(msg.namespace.as_deref());
        let (jobs, gate) = (self.jobs(Some(&ns)), self.gate.for_reads());
        let events: Api<Event> = Api::namespaced(self.gate.client(), &ns);
        self.tracked(async move {
            let deadline = Instant::now() + EVENT_DEADLINE;
            let uid = match msg.uid.clone() {
                Some(u) => Some(u),
                None => gate
                    .call(deadline, "get", || jobs.get_opt(&msg.job))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|j| j.metadata.uid),
            };
            let event = event_for(
                &msg,
                uid,
                &ns,
                &instance(),
                k8s_openapi::jiff::Timestamp::now(),
            );
            let pp = PostParams::default();
            let made = gate
                // Counted apart from the Job calls: verb "event".
                .call(deadline, "event", || events.create(&pp, &event))
                .await;
            let service = msg.metrics.service();
            match made {
                // A retried create that had landed.
                Ok(_) | Err(KubeError::AlreadyExists) => {
                    service.audit_event("recorded");
                    Ok(())
                }
                Err(e) => {
                    service.audit_event("failed");
                    tracing::info!(job = %msg.job, reason = msg.reason, error = %e, "audit event not recorded");
                    Err(e)
                }
            }
        })
    }
}
