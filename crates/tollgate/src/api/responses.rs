//! OpenAI Responses ingress (stateless): `POST /v1/responses`, whole or
//! streamed. Translated to chat and back at the pipeline's edges
//! (`pipeline/shape.rs`, `translate/responses`).

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
    Router::new().route("/v1/responses", post(responses))
}

async fn responses(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    super::reply::shaped(app, Ingress::Responses, headers, body).await
}
