//! `GET /admin/v1/routing` on the admin listener: every virtual model's
//! targets as routing sees them now (breaker state, recent latency, recent
//! failures). Admin grant required, as for the usage API. Reads the
//! lock-free target stats; never changes them.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::{json, Value};

use super::AppState;
use crate::routing::TargetStats;

pub(super) async fn routing(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(resp) = super::usage_api::refusal(&app, &headers).await {
        return resp;
    }
    let snap = app.snapshot.load();
    let now = tollgate_core::clock::now_ms();
    let mut names: Vec<&String> = snap.virtual_models.keys().collect();
    names.sort();
    let models: Vec<Value> = names
        .into_iter()
        .filter_map(|name| snap.virtual_models.get(name).map(|vm| (name, vm)))
        .map(|(name, vm)| {
            let targets: Vec<Value> = vm
                .targets
                .iter()
                .map(|t| {
                    let mut v = target_view(&t.stats, now);
                    if let Value::Object(o) = &mut v {
                        o.insert("model".into(), json!(t.route.name));
                        o.insert(
                            "target".into(),
                            json!(t.route.resolved.to_str().unwrap_or("")),
                        );
                        o.insert("priority".into(), json!(t.priority));
                        o.insert("weight".into(), json!(t.weight));
                    }
                    v
                })
                .collect();
            json!({"name": name, "strategy": vm.strategy, "targets": targets})
        })
        .collect();
    axum::Json(json!({ "virtual_models": models })).into_response()
}

/// One target's health, latency and failures.
fn target_view(stats: &TargetStats, now_ms: u64) -> Value {
    let last = stats.last_failure().map(|f| {
        json!({
            "at_ms": f.at_ms,
            "error": f.error,
            "status": f.status,
        })
    });
    json!({
        "health": stats.health(now_ms).as_str(),
        "latency_ms": stats.first_byte_ms().map(|ms| (ms * 1000.0).round() / 1000.0),
        "ms_per_token": stats
            .mean_us_per_token(now_ms, stats.latency_window_ms())
            .map(|us| us.round() / 1000.0),
        "recent_failures": stats.recent_failures(now_ms),
        "failures_total": stats.failures_total(),
        "last_failure": last,
    })
}
