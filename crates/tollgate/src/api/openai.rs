//! OpenAI-compatible routes. Every route authenticates; there are no public
//! data-plane routes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use super::error::{self, ApiShape, GatewayError, Render};
use super::reply::{self, Shape};
use crate::auth;
use crate::config::Endpoint;
use crate::pipeline::{self, REQUEST_ID};
use crate::server::AppState;
use crate::snapshot::Snapshot;

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/me/limits", get(super::me::limits))
        .route("/v1/prompts", get(super::prompts::list))
        .route(
            "/v1/prompts/{name}/completions",
            post(super::prompts::complete),
        )
        .route(
            "/v1/prompts/{name}/versions/{version}/completions",
            post(super::prompts::complete_version),
        )
        .merge(super::databricks::routes())
        .merge(super::anthropic::routes())
        .merge(super::responses::routes())
        .merge(super::mcp::routes())
        .merge(super::forward::routes())
        .merge(super::jobs::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(app)
}

async fn chat(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    model_call(app, Endpoint::Chat, headers, body).await
}

async fn completions(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    model_call(app, Endpoint::Completions, headers, body).await
}

async fn embeddings(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    model_call(app, Endpoint::Embeddings, headers, body).await
}

/// An OpenAI-shaped model call through the pipeline, answered in OpenAI's shape.
async fn model_call(
    app: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    reply::answer(
        Shape::OpenAi,
        pipeline::handle(app, endpoint, headers, pipeline::request_body(body)).await,
    )
}

/// Exactly the models the caller may use (policy, key grant, tenant), in
/// config order.
async fn models(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    list_for_caller(&app, &headers, |snap, access| {
        snap.model_order
            .iter()
            .filter(|name| access.allows(name, snap.tenant_of(name)))
            .filter_map(|name| snap.owner_of(name).map(|owner| (name, owner)))
            .map(|(name, owner)| {
                json!({"id": name, "object": "model", "created": 0, "owned_by": owner})
            })
            .collect()
    })
    .await
}

/// A listing route (not a pipeline call): authenticates, evaluates the
/// caller's access once, and answers `{"object":"list","data":[…]}`.
pub(super) async fn list_for_caller(
    app: &AppState,
    headers: &HeaderMap,
    items: impl FnOnce(&Snapshot, &auth::policy::Access<'_>) -> Vec<Value>,
) -> Response {
    let snap = app.snapshot.load_full();
    let store_keys = app.store_keys.load_full();
    let identity = match auth::authenticate(headers, &snap.credentials(&store_keys)).await {
        Ok(i) => i,
        Err(e) => return auth_failure(e, headers, ApiShape::OpenAi),
    };
    let access = snap
        .policy
        .evaluate(&identity.principal, identity.key_grant());
    let data = items(&snap, &access);
    Json(json!({"object": "list", "data": data})).into_response()
}

/// A failed authentication outside the pipeline: counted, logged with its
/// reason, rendered in the caller's shape.
pub(super) fn auth_failure(e: auth::AuthError, headers: &HeaderMap, shape: ApiShape) -> Response {
    metrics::counter!("tollgate_auth_failures_total", "reason" => e.label()).increment(1);
    let err = GatewayError::from(e);
    let id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    error::log_denial(&err, id);
    err.into_response_shaped(shape)
}

/// A path no fixed route serves: a configured route's prefix (the current
/// snapshot's `routes:`), else 404.
async fn not_found(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let req = match pipeline::forward::route(app, req.map(pipeline::request_body)).await {
        Ok(answer) => return reply::answer(Shape::OpenAi, answer),
        Err(req) => req,
    };
    let path: String = req.uri().path().chars().take(200).collect();
    error::route_not_found(&path).into_response_shaped(ApiShape::OpenAi)
}

async fn method_not_allowed(req: Request) -> Response {
    error::method_not_allowed(req.method().as_str()).into_response_shaped(ApiShape::OpenAi)
}

/// Gives every request an id (the caller's `x-request-id` when sane, else a
/// UUIDv7) and echoes it on every response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = request_id_for(req.headers());
    if let Some(id) = &id {
        req.headers_mut().insert(REQUEST_ID, id.clone());
    }
    let mut resp = next.run(req).await;
    if let Some(id) = id {
        resp.headers_mut().insert(REQUEST_ID, id);
    }
    resp
}

/// The caller's `x-request-id` when sane, else a new UUIDv7.
pub(super) fn request_id_for(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .or_else(|| HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok())
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    metrics::counter!("tollgate_panics_total").increment(1);
    GatewayError::internal().into_response_shaped(ApiShape::OpenAi)
}
