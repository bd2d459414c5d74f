//! Anthropic Messages ingress: `POST /v1/messages` (whole or streamed) and
//! `POST /v1/messages/count_tokens`. Thin: the pipeline translates at its
//! edges (`pipeline/shape.rs`); `x-api-key` authenticates like a Bearer key.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use http::HeaderMap;

use crate::pipeline::Ingress;
use crate::server::AppState;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
}

async fn messages(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    super::reply::shaped(app, Ingress::AnthropicMessages, headers, body).await
}

async fn count_tokens(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    super::reply::shaped(app, Ingress::AnthropicCountTokens, headers, body).await
}
