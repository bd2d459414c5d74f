//! MCP approvals on the admin listener: `GET /admin/v1/mcp/approvals`
//! lists the tool calls waiting on this replica, `POST
//! /admin/v1/mcp/approvals/{id}` with `{"decision": "approve" | "deny"}`
//! decides one. The admin grant is required, as for the usage API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::mcp_gateway::approval::Decision;

pub(super) async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(resp) = super::usage_api::refusal(&app, &headers).await {
        return resp;
    }
    axum::Json(json!({ "pending": app.mcp_approvals.list() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Decide {
    decision: String,
}

pub(super) async fn decide(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<Decide>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(resp) = super::usage_api::refusal(&app, &headers).await {
        return resp;
    }
    let problem = |status: StatusCode, message: &str| {
        (
            status,
            axum::Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
        )
            .into_response()
    };
    let decision = match body.as_ref().map(|b| b.decision.as_str()) {
        Ok("approve") => Decision::Approved,
        Ok("deny") => Decision::Denied,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "send {\"decision\": \"approve\"} or {\"decision\": \"deny\"}",
            )
        }
    };
    if !app.mcp_approvals.decide(&id, decision) {
        return problem(
            StatusCode::NOT_FOUND,
            "no tool call waits under this id on this replica",
        );
    }
    tracing::info!(approval = %id, ?decision, "mcp tool call decided");
    axum::Json(json!({"id": id, "decision": if decision == Decision::Approved { "approve" } else { "deny" }}))
        .into_response()
}
