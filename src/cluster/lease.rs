//! Leader election on a `coordination.k8s.io/v1` Lease: every replica
//! accepts webhooks, only the Lease holder admits queued Jobs.
//!
//! Acquire, renew and take-over are resourceVersion-guarded replaces, so two
//! replicas can never both win. A holder that cannot renew within the lease
//! duration steps down by itself; a graceful shutdown releases the Lease so
//! another replica takes over at once.

use std::time::{Duration, Instant};

use actix::Addr;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::scheduler::{Leadership, Scheduler};

/// Lease name shared by the replicas.
pub const LEASE_NAME: &str = "orchestrator-scheduler";

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

impl LeaseSettings {
    /// Identity from `POD_NAME` (set by the Deployment) or host name + pid.
    pub fn from_env(duration: Duration) -> Self {
        let identity = std::env::var("POD_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "orchestrator".into());
                format!(
                    "{host}-{}-{}",
                    std::process::id(),
                    &uuid::Uuid::new_v4().to_string()[..8]
                )
            });
        LeaseSettings {
            identity,
            duration,
            renew_every: duration / 3,
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn expired(spec: &LeaseSpec) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let dur = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renewed.0.as_second() + dur < Timestamp::now().as_second()
}

/// One attempt to hold the Lease. Returns whether this replica holds it.
async fn try_hold(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let secs = i32::try_from(s.duration.as_secs()).unwrap_or(15).max(1);
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == s.identity {
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(secs);
    } else if holder.is_empty() || expired(spec) {
        spec.holder_identity = Some(s.identity.clone());
        spec.acquire_time = Some(now());
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(secs);
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    } else {
        return Ok(false);
    }
    match api
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Keeps trying to hold the Lease and tells the scheduler when leadership
/// changes. Runs until cancelled.
pub async fn run(api: Api<Lease>, s: LeaseSettings, scheduler: Addr<Scheduler>) {
    let mut leader = false;
    let mut last_held: Option<Instant> = None;
    loop {
        let held = match try_hold(&api, &s).await {
            Ok(h) => {
                if h {
                    last_held = Some(Instant::now());
                }
                h
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease renewal failed");
                // Keep leading only while the last renewal is still valid.
                leader && last_held.is_some_and(|t| t.elapsed() < s.duration)
            }
        };
        if held != leader {
            tracing::info!(identity = %s.identity, leader = held, "scheduler lease");
            leader = held;
        }
        scheduler.do_send(Leadership(leader));
        tokio::time::sleep(s.renew_every).await;
    }
}

/// Gives the Lease up if this replica holds it (graceful shutdown).
pub async fn release(api: &Api<Lease>, s: &LeaseSettings) {
    let Ok(Some(mut lease)) = api.get_opt(LEASE_NAME).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    match api
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => tracing::info!("scheduler lease released"),
        Err(e) => tracing::warn!(error = %e, "could not release the scheduler lease"),
    }
}
