//! `DELETE /admin/v1/cache` on the admin listener: removes response-cache
//! entries by model, tenant, namespace or key prefix (any combination;
//! `all=true` for everything), from the memory or the Redis backend. The
//! caller needs the policy's admin grant, as for the usage API.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::usage_api::problem;
use super::AppState;
use crate::cache::{valid_key_prefix, PurgeFilter};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    /// The requested model name (as the caller asked for it).
    model: Option<String>,
    /// The tenant of the principal that stored the entry (`""`: none).
    tenant: Option<String>,
    /// The caller's namespace (`""`: none).
    namespace: Option<String>,
    /// A prefix of the entry's key in hex (`x-tollgate-cache-key`).
    key_prefix: Option<String>,
    /// Purge every entry (no other parameter needed).
    all: Option<bool>,
}

pub(super) async fn purge(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(resp) = super::usage_api::refusal(&app, &headers).await {
        return resp;
    }
    let bad = |m: &str| problem(StatusCode::BAD_REQUEST, "invalid_request_error", m);
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return bad(&e.body_text()),
    };
    if let Some(k) = p.key_prefix.as_deref().filter(|k| !valid_key_prefix(k)) {
        return bad(&format!(
            "key_prefix {k:?}: expected 1 to 64 lowercase hex digits"
        ));
    }
    let filter = PurgeFilter {
        model: p.model,
        tenant: p.tenant,
        namespace: p.namespace,
        key_prefix: p.key_prefix,
    };
    if filter.is_empty() && p.all != Some(true) {
        return bad("name what to purge: model, tenant, namespace, key_prefix, or all=true");
    }
    match app.cache.purge(&filter).await {
        Ok(n) => {
            tracing::info!(purged = n, ?filter, "response cache purged");
            axum::Json(json!({"purged": n})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "response cache purge failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "cache_unavailable",
                "the cache backend did not answer",
            )
        }
    }
}
