//! The admin listener: liveness, readiness, Prometheus metrics and the
//! usage API, on its own port so the data plane never exposes them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::StatusCode;

use super::AppState;

pub(super) fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/v1/usage", get(super::usage_api::usage))
        .route(
            "/admin/v1/usage/requests/{id}",
            get(super::usage_api::request),
        )
        .route(
            "/admin/v1/cache",
            axum::routing::delete(super::cache_admin::purge),
        )
        .route("/admin/v1/routing", get(super::routing_api::routing))
        .route(
            "/admin/v1/limits",
            get(super::limits_api::counters).delete(super::limits_api::counters),
        )
        .route("/admin/v1/mcp/approvals", get(super::mcp_admin::list))
        .route(
            "/admin/v1/mcp/approvals/{id}",
            axum::routing::post(super::mcp_admin::decide),
        )
        .with_state(app)
}

async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    if app.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    match &app.prometheus {
        Some(h) => {
            publish_target_health(&app);
            h.run_upkeep();
            (
                [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                h.render(),
            )
                .into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response(),
    }
}

/// `tollgate_target_healthy` as routing sees it now, for every target of
/// every virtual model: written at each scrape, so a target whose failures
/// aged out reads 1 without traffic and one the SLA rule excludes reads 0.
fn publish_target_health(app: &AppState) {
    let snap = app.snapshot.load();
    let now = tollgate_core::clock::now_ms();
    for (name, vm) in &snap.virtual_models {
        for t in &vm.targets {
            let healthy = if t.stats.healthy(now) { 1.0 } else { 0.0 };
            metrics::gauge!("tollgate_target_healthy", "virtual_model" => name.clone(),
                "target" => t.route.resolved.to_str().unwrap_or("").to_string())
            .set(healthy);
        }
    }
}
