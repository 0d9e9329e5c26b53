//! The OpenAPI document at `/api/v1/openapi.json`, generated from the
//! handlers' annotations and the documented types (utoipa), not by hand.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Grafana may deliver with `PUT` as well as `POST` (both are routed to
/// [`super::grafana::webhook`]): the same operation, under its own
/// operationId (operationIds are unique in a document).
struct GrafanaPut;

impl Modify for GrafanaPut {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(item) = openapi.paths.paths.get_mut("/webhook/grafana") {
            if let Some(post) = item.post.clone() {
                let mut put = post;
                put.operation_id = Some("grafana_webhook_put".into());
                item.put = Some(put);
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "orchestrator", description = "Events from GitHub, Grafana, a PM Agent and a CLI become Kubernetes Jobs that run AI coding agents."),
    paths(
        super::health, super::ready, super::metrics,
        super::github::webhook, super::grafana::webhook,
        super::tasks::create_task, super::tasks::create_pm_task, super::tasks::get_pm_task,
        super::jobs::list_jobs, super::jobs::get_job, super::jobs::cancel_job, super::jobs::job_logs,
        super::jobs::events, super::leader::leader,
    ),
    components(schemas(
        super::schema::ErrorBody, super::schema::SubmitAnswer, super::schema::IgnoredAnswer,
        super::schema::TaskRequest, super::schema::PmTaskRequest, super::schema::PmRepository,
        super::schema::PmSubtask, crate::task::files::TaskFile, crate::sources::fields::FieldError,
        super::jobs::JobView, super::jobs::JobList, super::jobs::ConditionView, crate::events::EventRecord,
        super::leader::LeaderView, super::schema::CallbackEvent, super::schema::CallbackTimestamps,
        super::schema::CallbackOutcome,
    )),
    modifiers(&BearerAuth, &GrafanaPut),
)]
pub struct ApiDoc;

/// The document's JSON, built once: it depends on the code only, and an
/// unauthenticated route must not cost a build per request.
static DOCUMENT: std::sync::OnceLock<Result<actix_web::web::Bytes, String>> =
    std::sync::OnceLock::new();

/// `GET /api/v1/openapi.json`.
pub async fn document() -> HttpResponse {
    let built = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .map(actix_web::web::Bytes::from)
            .map_err(|e| e.to_string())
    });
    match built {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json.clone()),
        Err(e) => HttpResponse::InternalServerError()
            .json(serde_json::json!({"status": "error", "error": "internal", "message": e})),
    }
}
