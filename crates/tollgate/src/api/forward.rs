//! Forwarded HTTP calls' edge: `ANY /connections/{name}/{*path}` (and the
//! bare `/connections/{name}`) for outbound connections; configured route
//! prefixes are served from the router's fallback (`openai::not_found`),
//! since they change with the config. Handlers only call
//! `pipeline::forward` and render its answer (refusals in OpenAI's shape).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;

use super::reply::{self, Shape};
use crate::pipeline::forward;
use crate::server::AppState;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/connections/{name}", any(connection))
        .route("/connections/{name}/{*path}", any(connection_path))
}

async fn connection(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    reply::answer(
        Shape::OpenAi,
        forward::connection(app, name, req.map(crate::pipeline::request_body)).await,
    )
}

async fn connection_path(
    State(app): State<Arc<AppState>>,
    Path((name, _path)): Path<(String, String)>,
    req: Request,
) -> Response {
    reply::answer(
        Shape::OpenAi,
        forward::connection(app, name, req.map(crate::pipeline::request_body)).await,
    )
}
