//! The middleware inside the tracing logger: one layer for what every
//! request needs, each at the cost it must have.
//!
//! - The request counts as taken on its connection's pipelining gauge
//!   ([`super::pipeline::Gauge`]), so the connection may pass up another.
//! - Its id (the tracing logger's) is known to error answers
//!   ([`super::error::request_id`], formatted only when one is written)
//!   and returned as `X-Request-Id`.
//! - It is counted by route pattern, method and status class, with its
//!   latency, in [`crate::metrics::service::ServiceMetrics`]: through
//!   handles each worker keeps per route (its own map, no lock, no label
//!   strings built per request), the families' maps touched once per route,
//!   method and class.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{ready, Ready};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpMessage;
use futures::future::LocalBoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::error::{RequestId, REQUEST_ID};
use super::pipeline::Gauge;
use crate::metrics::service::{status_class, ServiceMetrics, METHODS, STATUS_CLASSES};

/// The route of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// The middleware (see the module documentation).
pub struct Front {
    metrics: ServiceMetrics,
}

impl Front {
    pub fn new(metrics: ServiceMetrics) -> Self {
        Front { metrics }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Front
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = FrontService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(FrontService {
            service: Rc::new(service),
            routes: Rc::new(RefCell::new(Routes {
                metrics: self.metrics.clone(),
                by_pattern: HashMap::new(),
            })),
        }))
    }
}

/// [`Front`] around one worker's application.
pub struct FrontService<S> {
    service: Rc<S>,
    routes: Rc<RefCell<Routes>>,
}

impl<S, B> Service<ServiceRequest> for FrontService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        if let Some(gauge) = req.conn_data::<Arc<Gauge>>() {
            gauge.start();
        }
        let id = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map_or_else(RequestId::default, |id| RequestId(**id));
        let method = METHODS
            .iter()
            .position(|m| *m == req.method().as_str())
            .unwrap_or(METHODS.len());
        let fut = REQUEST_ID.scope(id, self.service.call(req));
        let routes = self.routes.clone();
        Box::pin(async move {
            let res = fut.await;
            let (pattern, status) = match &res {
                Ok(r) => (r.request().match_pattern(), r.status()),
                Err(e) => (None, e.as_response_error().status_code()),
            };
            routes.borrow_mut().observe(
                pattern.as_deref().unwrap_or(UNMATCHED),
                method,
                status.as_u16(),
                started.elapsed().as_secs_f64(),
            );
            let mut res = res?;
            let mut text = uuid::Uuid::encode_buffer();
            if let Ok(v) = HeaderValue::from_str(id.0.hyphenated().encode_lower(&mut text)) {
                res.headers_mut()
                    .insert(HeaderName::from_static("x-request-id"), v);
            }
            Ok(res)
        })
    }
}

/// One worker's handles to the request metrics, by route pattern.
struct Routes {
    metrics: ServiceMetrics,
    by_pattern: HashMap<String, Route>,
}

/// One route's latency histogram and its request counters by method and
/// status class (each created on first use).
struct Route {
    latency: Histogram,
    requests: [[Option<Counter>; STATUS_CLASSES.len()]; METHODS.len() + 1],
}

impl Routes {
    /// Counts a request to `pattern` by `method` (an index into [`METHODS`],
    /// or its length for any other method) answered `status`.
    fn observe(&mut self, pattern: &str, method: usize, status: u16, seconds: f64) {
        if !self.by_pattern.contains_key(pattern) {
            let route = Route {
                latency: self.metrics.latency_of(pattern),
                requests: Default::default(),
            };
            self.by_pattern.insert(pattern.to_string(), route);
        }
        let Some(route) = self.by_pattern.get_mut(pattern) else {
            return;
        };
        let class = status_class(status);
        let slot = &mut route.requests[method.min(METHODS.len())][class];
        let metrics = &self.metrics;
        slot.get_or_insert_with(|| {
            metrics.requests_of(
                pattern,
                METHODS.get(method).copied().unwrap_or("other"),
                STATUS_CLASSES[class],
            )
        })
        .inc();
        route.latency.observe(seconds);
    }
}
