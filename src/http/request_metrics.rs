//! The HTTP request metrics middleware: records every request's route
//! pattern, method, status class and latency in
//! [`crate::metrics::service::ServiceMetrics`].

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

/// actix-web middleware (`middleware::from_fn`) recording every request.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<super::AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().as_str().to_string();
    let res = next.call(req).await;
    if let Some(m) = metrics {
        let (route, status) = match &res {
            Ok(r) => (
                r.request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".into()),
                r.status().as_u16(),
            ),
            Err(e) => (
                "unmatched".into(),
                e.as_response_error().status_code().as_u16(),
            ),
        };
        m.service()
            .observe(&route, &method, status, started.elapsed().as_secs_f64());
    }
    res
}
