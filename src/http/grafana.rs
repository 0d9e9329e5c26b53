//! `POST /webhook/grafana` (PUT too, as Grafana allows): Grafana's webhook
//! contact point (`version: "1"`) and Prometheus Alertmanager (`version:
//! "4"`). Each firing alert the matchers select becomes an investigation
//! Job (dedup key fingerprint + startsAt, so repeat notifications and HA
//! duplicates are duplicates); a resolved alert cancels its queued Job and,
//! if configured, its running one.
//!
//! Storms: a notification with more than `GRAFANA_MAX_ALERTS_PER_NOTIFICATION`
//! alerts is refused whole (413, nothing created); each alert rule starts at
//! most `GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE` investigations and the rest
//! are answered `rate_limited` inside a 202, so the sender does not resend
//! them (Grafana repeats a still-firing alert at its `repeat_interval`, when it
//! is judged anew); resolved alerts without a known Job cost no Kubernetes
//! call (see `resolve`).

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tracing_actix_web::RootSpan;

use super::error::RouteError;
use super::github::submit;
use super::{read_body, read_unauthenticated_body, AppState};
use crate::cluster::jobs::JobsError;
use crate::events::NewEvent;
use crate::job::JobExtras;
use crate::job::JobState;
use crate::sources::grafana::{
    authenticate, authenticate_headers, route, AlertDecision, AuthError, DecodeError,
};
use crate::sources::intake::SCOPE_ALERT_RULE;

/// The reason of an alert over its rule's limit: dropped, not retried.
const RULE_LIMITED: &str = "over GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE for its alert rule: \
     dropped, not retried; a still-firing alert is judged again when it is sent again";

/// Grafana gives up after 30 s; answer well before.
const BUDGET: Duration = Duration::from_secs(20);

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a [u8]> {
    req.headers().get(name).map(|v| v.as_bytes())
}

/// A Grafana or Alertmanager notification.
#[utoipa::path(post, path = "/webhook/grafana", tag = "webhooks", operation_id = "grafana_webhook",
    request_body(content = Object, description = "Grafana (version 1) or Alertmanager (version 4) webhook body", content_type = "application/json"),
    responses(
        (status = 202, description = "Processed; `alerts` lists the decision per alert (queued, duplicate, ignored, cancelled, resolved, rate_limited — over GRAFANA_RATE_LIMIT_PER_RULE_PER_MINUTE, dropped, not retried)"),
        (status = 400, description = "Malformed body", body = super::schema::ErrorBody),
        (status = 401, description = "Missing or wrong credentials / signature / stale timestamp", body = super::schema::ErrorBody),
        (status = 413, description = "Body too large (`payload_too_large`), or more alerts than GRAFANA_MAX_ALERTS_PER_NOTIFICATION (`too_many_alerts`; refused whole, nothing created)", body = super::schema::ErrorBody),
        (status = 503, description = "Some alert could not be persisted, or a resolved alert's Job not cancelled, for now; retry (queued ones answer duplicate)", body = super::schema::ErrorBody)))]
pub async fn webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, RouteError> {
    span.record("source", "grafana");
    let result = handle(&req, payload, &state, &span).await;
    let decision = match &result {
        Ok(_) => "processed",
        Err(e) => e.code(),
    };
    state.metrics.decision("grafana", decision);
    if let Err(e) = &result {
        tracing::info!(error = %e, "grafana notification refused");
        state.events.record(NewEvent {
            source: "grafana",
            event: "notification",
            decision: e.event_decision(),
            reason: Some(&e.event_reason()),
            ..Default::default()
        });
    }
    result
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    span: &RootSpan,
) -> Result<HttpResponse, RouteError> {
    let cfg = &state.config.grafana;
    let insecure = state.config.allow_insecure_no_signature && !cfg.auth_configured();
    let refused = |e: AuthError| {
        match e {
        AuthError::NotConfigured => RouteError::Unauthorized(
            "Grafana webhook authentication is not configured on this server (set GRAFANA_BASIC_AUTH, GRAFANA_AUTH_CREDENTIALS or GRAFANA_HMAC_SECRET)".into(),
        ),
        other => RouteError::Unauthorized(other.to_string()),
    }
    };
    // Credentials in the headers are checked before a byte of the body is
    // read: a sender without them gets 401 at once and costs no buffer.
    if !insecure {
        authenticate_headers(cfg, header(req, "authorization")).map_err(refused)?;
    }
    let body = if insecure || cfg.hmac.is_some() {
        // The body itself is what is (or, insecure, is not) authenticated.
        let (body, budget) =
            read_unauthenticated_body(req, payload, cfg.max_body_bytes, state).await?;
        if !insecure {
            let now = chrono::Utc::now().timestamp();
            authenticate(
                cfg,
                header(req, "authorization"),
                cfg.signature_header().and_then(|h| header(req, h)),
                cfg.timestamp_header().and_then(|h| header(req, h)),
                &body,
                now,
            )
            .map_err(refused)?;
        }
        // Authenticated: the body no longer counts as an unauthenticated one.
        budget.release();
        body
    } else {
        read_body(req, payload, cfg.max_body_bytes).await?
    };
    let decisions = route(&body, cfg, chrono::Utc::now()).map_err(|e| match e {
        DecodeError::TooManyAlerts { .. } => RouteError::TooManyAlerts(e.to_string()),
        e if e.is_client_error() => RouteError::BadRequest(e.to_string()),
        e => RouteError::Internal(e.to_string()),
    })?;
    let deadline = Instant::now() + BUDGET;
    let mut answers: Vec<Value> = Vec::new();
    // Set when some alert failed for a temporary reason.
    let mut retry: Option<Duration> = None;
    for d in decisions {
        let (fingerprint, a) = match d {
            AlertDecision::Fire(task) => {
                let fp = task.labels.get("fingerprint").cloned().unwrap_or_default();
                let delivery = task.dedup_key.clone();
                let r = submit(
                    state,
                    &state.grafana,
                    task,
                    JobExtras::default(),
                    span,
                    deadline,
                )
                .await;
                super::record_outcome(state, "grafana", "alert", Some(&delivery), &r);
                match r {
                    Ok(a) if a.gone => (
                        fp,
                        json!({"decision": a.decision, "job": a.job, "gone": true}),
                    ),
                    Ok(a) => (fp, json!({"decision": a.decision, "job": a.job})),
                    Err(e) => {
                        let mut v = json!({"decision": e.code(), "reason": e.public_message()});
                        if let RouteError::RateLimited {
                            scope: SCOPE_ALERT_RULE,
                            ..
                        } = &e
                        {
                            // Storm shedding: dropped, not retried (a 503
                            // would have Grafana resend the storm every
                            // group_interval). Grafana repeats a still-firing
                            // alert at its repeat_interval; it is judged anew.
                            v["reason"] = json!(RULE_LIMITED);
                        } else if let RouteError::RateLimited { retry_after, .. } = &e {
                            retry = Some(retry.unwrap_or_default().max(*retry_after));
                        } else if matches!(e, RouteError::Unavailable(_)) {
                            retry = Some(retry.unwrap_or_default().max(Duration::from_secs(1)));
                        }
                        (fp, v)
                    }
                }
            }
            AlertDecision::Resolve {
                fingerprint,
                job_name,
                dedup_key,
                ..
            } => {
                let (v, unavailable) = resolve(state, &job_name, &dedup_key, deadline).await;
                if unavailable {
                    retry = Some(retry.unwrap_or_default().max(Duration::from_secs(1)));
                }
                (fingerprint, v)
            }
            AlertDecision::Ignored {
                fingerprint,
                reason,
            } => {
                state.events.record(NewEvent {
                    source: "grafana",
                    event: "alert",
                    delivery: Some(&fingerprint),
                    decision: "ignored",
                    reason: Some(&reason),
                    ..Default::default()
                });
                (
                    fingerprint.clone(),
                    json!({"decision": "ignored", "reason": reason}),
                )
            }
        };
        let mut a = a;
        a["fingerprint"] = json!(fingerprint);
        answers.push(a);
    }
    if let Some(wait) = retry {
        // Some alert was refused for now (rate limit, Kubernetes
        // unavailable, a resolve's cancel refused): 503 so Grafana retries
        // the whole notification;
        // alerts already queued then answer as duplicates. Alerts refused
        // for good are listed but never make Grafana retry.
        let mut body = json!({
            "status": "error",
            "error": "unavailable",
            "message": "some alerts were not accepted yet; retry the notification (accepted ones answer duplicate)",
            "alerts": answers,
        });
        if let Some(id) = super::error::request_id() {
            body["request_id"] = json!(id);
        }
        return Ok(HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", wait.as_secs().max(1).to_string()))
            .json(body));
    }
    Ok(HttpResponse::Accepted().json(json!({"status": "processed", "alerts": answers})))
}

/// Cancels the Job of a resolved alert: always while queued, while running
/// only if `GRAFANA_CANCEL_RUNNING_ON_RESOLVE`. The store (fed by the Job
/// watch) may lag behind the API server — a Job created or admitted a moment
/// ago — so unless it already shows a state with nothing to do, the Kube
/// actor decides on the API server's copy. The flag is set when the cancel
/// could not be sent (Kubernetes unavailable): Grafana should retry.
///
/// The store also says when there is no Job to read: it has none of that
/// name or dedup key, it is synced, and this replica has not persisted the
/// alert's task within `DEDUP_CACHE_TTL_SECONDS` (the dedup cache: a Job
/// made here that the watch has not delivered yet). Then the answer is
/// "no job for this alert" without a Kubernetes call, so a notification of
/// resolved alerts that never became Jobs costs no reads. What stays
/// possible: another replica created the Job less than the watch's delay
/// ago; it is then left queued and runs.
async fn resolve(
    state: &AppState,
    job_name: &str,
    dedup_key: &str,
    deadline: Instant,
) -> (Value, bool) {
    let keep_running = !state.config.grafana.cancel_running_on_resolve;
    let stored = state
        .jobs
        .stored(job_name)
        .or_else(|| state.jobs.stored_by_dedup_key(dedup_key));
    let name = stored
        .as_ref()
        .map_or_else(|| job_name.to_string(), |r| r.name.to_string());
    let resolved = |name: &str, st: JobState| {
        let reason = format!("job is {}", st.as_str());
        json!({"decision": "resolved", "job": name, "reason": reason})
    };
    let no_job = || {
        let v = json!({"decision": "resolved", "reason": "no job for this alert"});
        (v, false)
    };
    if stored.is_none()
        && state
            .health
            .synced
            .load(std::sync::atomic::Ordering::SeqCst)
        && state.dedup.get(dedup_key, Instant::now()).is_none()
    {
        return no_job();
    }
    if let Some(r) = &stored {
        let nothing_to_do = match r.state {
            JobState::Queued => false,
            JobState::Running => keep_running,
            // Finished or cancelled: never live again.
            _ => true,
        };
        if nothing_to_do {
            return (resolved(&name, r.state), false);
        }
    }
    let sent = state
        .jobs
        .cancel(
            name.clone(),
            keep_running,
            deadline,
            false,
            crate::cluster::audit::CancelledBy::AlertResolved,
        )
        .await;
    let (decision, reason) = match sent {
        Ok(Some(view)) => match view.state {
            JobState::Cancelled => ("cancelled", None),
            now => return (resolved(&name, now), false),
        },
        Ok(None) | Err(JobsError::NotFound) => return no_job(),
        Err(e) => ("unavailable", Some(e.to_string())),
    };
    state.events.record(NewEvent {
        source: "grafana",
        event: "alert-resolved",
        delivery: Some(dedup_key),
        decision,
        reason: reason.as_deref(),
        job: Some(&name),
        ..Default::default()
    });
    tracing::info!(job = %name, decision, "resolved alert");
    let v = json!({"decision": decision, "job": name, "reason": reason});
    (v, decision == "unavailable")
}
