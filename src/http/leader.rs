//! `GET /api/v1/leader`: which replica holds the scheduler Lease, as this
//! replica last saw it, and whether this replica admits Jobs now.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::ApiCaller;
use super::error::RouteError;
use super::AppState;

/// Leadership as seen by the replica that answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderView {
    /// The answering replica's identity on the Lease.
    pub identity: String,
    /// Whether the answering replica leads (admits queued Jobs) now.
    pub leader: bool,
    /// The holder last seen on the Lease; null when it is free or not read yet.
    pub holder: Option<String>,
}

/// The scheduler Lease's holder and this replica's part.
#[utoipa::path(get, path = "/api/v1/leader", tag = "operations",
    responses((status = 200, description = "Leadership", body = LeaderView),
        (status = 401, description = "Missing or unknown bearer token", body = super::schema::ErrorBody),
        (status = 429, description = "Too many requests from this token (Retry-After)", body = super::schema::ErrorBody)),
    security(("bearer" = [])))]
pub async fn leader(
    _caller: ApiCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RouteError> {
    let l = &state.leader;
    Ok(HttpResponse::Ok().json(LeaderView {
        identity: l.identity().to_string(),
        leader: l.is_leader(),
        holder: l.holder(),
    }))
}
