//! Repeats the preflight checks every period through the Kube actor (its
//! client and request-rate bound), keeps the latest report for `/ready`, and
//! logs each check once when it starts failing and once when it recovers.

use std::time::Duration;

use super::{changes, evaluate, Change, Latest, Observation, Report, Target};
use crate::actors::Mailbox;
use crate::cluster::kube_actor::{KubeActor, KueuePreflight, Preflight};

/// Runs rounds of checks every `period` until cancelled.
pub async fn run(kube: Mailbox<KubeActor>, target: Target, period: Duration, latest: Latest) {
    let mut before: Option<Report> = None;
    loop {
        let tenants = target.tenants.iter().map(|t| t.namespace.clone()).collect();
        match kube.ask(Preflight { tenants }).await {
            Ok(seen) => {
                // Kueue mode: its checks once the API server answers.
                let kueue = match seen {
                    Observation::Reached { .. } => kube
                        .ask(KueuePreflight {
                            tenants: target.tenants.clone(),
                        })
                        .await
                        .ok()
                        .flatten(),
                    Observation::Unreachable(_) => None,
                };
                let report = round(&target, &seen, kueue.as_ref(), before.as_ref());
                if let Ok(mut l) = latest.write() {
                    *l = Some(report.clone());
                }
                before = Some(report);
            }
            // The Kube actor is full or restarting: try again next period.
            Err(e) => tracing::debug!(error = %e, "preflight: the Kube actor did not answer"),
        }
        tokio::time::sleep(period).await;
    }
}

/// Evaluates one round (with the Kueue checks of Kueue mode) and logs what
/// changed since `before`.
fn round(
    target: &Target,
    seen: &Observation,
    kueue: Option<&super::kueue::KueueSeen>,
    before: Option<&Report>,
) -> Report {
    let mut report = evaluate(target, seen);
    if let Some(k) = kueue {
        report.checks.extend(super::kueue::evaluate(k));
    }
    for change in changes(before, &report) {
        log(target, &change);
    }
    if before.is_none() && report.failures().next().is_none() {
        tracing::info!(
            namespace = %target.namespace,
            checks = report.checks.len(),
            "preflight checks passed"
        );
    }
    report
}

fn log(target: &Target, change: &Change<'_>) {
    let ns = target.namespace.as_str();
    match change {
        // A tenant namespace's check names its namespace.
        Change::Failing(c) if c.namespace.is_some() => tracing::warn!(
            check = c.check,
            namespace = c.namespace.as_deref().unwrap_or(ns),
            verb = c.verb.unwrap_or(""),
            resource = c.resource.as_deref().unwrap_or(""),
            fix = c.fix.as_deref().unwrap_or(""),
            "preflight check failed: {}",
            c.message
        ),
        Change::Failing(c) => match (c.verb, c.resource.as_deref()) {
            (Some(verb), Some(resource)) => tracing::warn!(
                check = c.check,
                namespace = ns,
                verb,
                resource,
                fix = c.fix.as_deref().unwrap_or(""),
                "preflight check failed: {}",
                c.message
            ),
            _ => tracing::warn!(
                check = c.check,
                namespace = ns,
                fix = c.fix.as_deref().unwrap_or(""),
                "preflight check failed: {}",
                c.message
            ),
        },
        Change::Unknown(c) => tracing::info!(
            check = c.check,
            "preflight check could not run: {}",
            c.message
        ),
        Change::Recovered(c) => tracing::info!(
            check = c.check,
            "preflight check passes again: {}",
            c.message
        ),
    }
}
