//! `GET` and `DELETE /admin/v1/limits` on the admin listener: the limit
//! counters of the current windows (this node's and Redis's), listed and
//! reset, filtered by rule, cap and partition. Admin grant required, as
//! for the usage API.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::limits::{CounterFilter, InspectError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    rule: Option<String>,
    cap: Option<String>,
    /// Exact, as listed (`principal=alice|`).
    partition: Option<String>,
}

impl Params {
    fn filter(&self) -> CounterFilter<'_> {
        CounterFilter {
            rule: self.rule.as_deref(),
            cap: self.cap.as_deref(),
            partition: self.partition.as_deref(),
        }
    }
}

fn unavailable(e: &InspectError) -> Response {
    tracing::warn!(error = %e, "admin limits: store unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"error": {"type": "store_unavailable",
            "message": "the limit store did not answer"}})),
    )
        .into_response()
}

fn bad_query(e: &axum::extract::rejection::QueryRejection) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"type": "invalid_request_error", "message": e.body_text()}})),
    )
        .into_response()
}

/// `GET` lists the matching counters, `DELETE` resets them.
pub(super) async fn counters(
    State(app): State<Arc<AppState>>,
    method: http::Method,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(resp) = super::usage_api::refusal(&app, &headers).await {
        return resp;
    }
    let p = match params {
        Ok(Query(p)) => p,
        Err(e) => return bad_query(&e),
    };
    let snap = app.snapshot.load_full();
    if method != http::Method::DELETE {
        return match snap.limits.list_counters(p.filter()).await {
            Ok(counters) => axum::Json(json!({ "counters": counters })).into_response(),
            Err(e) => unavailable(&e),
        };
    }
    match snap.limits.reset_counters(p.filter()).await {
        Ok(n) => {
            tracing::warn!(rule = ?p.rule, cap = ?p.cap, partition = ?p.partition, reset = n,
                "limit counters reset by an admin");
            axum::Json(json!({ "reset": n })).into_response()
        }
        Err(e) => unavailable(&e),
    }
}
