//! `GET /v1/me/limits`: the caller's own limit counters (what it has used
//! and has left in each window), authenticated by the caller's own API key
//! or token, so a key's owner can read its remaining budget without the
//! admin grant. Not a pipeline call: nothing is charged or recorded.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiShape;
use crate::auth;
use crate::server::AppState;

#[derive(Debug, Deserialize)]
pub(super) struct Params {
    /// Only the counters a call of this model charges.
    model: Option<String>,
}

pub(super) async fn limits(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let snap = app.snapshot.load_full();
    let store_keys = app.store_keys.load_full();
    let identity = match auth::authenticate(&headers, &snap.credentials(&store_keys)).await {
        Ok(i) => i,
        Err(e) => return super::openai::auth_failure(e, &headers, ApiShape::OpenAi),
    };
    let access = snap
        .policy
        .evaluate(&identity.principal, identity.key_grant());
    // The models this caller may use: the counters of any other are not
    // its own to read.
    let models: Vec<&str> = snap
        .model_order
        .iter()
        .filter(|name| params.model.as_deref().is_none_or(|m| m == name.as_str()))
        .filter(|name| access.allows(name, snap.tenant_of(name)))
        .map(String::as_str)
        .collect();
    match snap.limits.caller_view(&identity.principal, &models).await {
        Ok(counters) => Json(json!({"object": "list", "data": counters})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "caller limits: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": {"type": "server_error", "code": "limit_store_unavailable",
                    "message": "the limit store did not answer; try again later", "param": null}}),
                ),
            )
                .into_response()
        }
    }
}
