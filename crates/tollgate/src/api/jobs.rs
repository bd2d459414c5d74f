//! Job runs' edge: `POST /v1/jobs/{name}/runs` (trigger), `GET` and
//! `DELETE /v1/jobs/{name}/runs/{id}` (status, optionally waited for;
//! cancel). Handlers only call `pipeline::jobs` and render its answer
//! (refusals in OpenAI's shape).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::reply::{self, Shape};
use crate::pipeline::jobs;
use crate::server::AppState;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/jobs/{name}/runs", post(trigger))
        .route("/v1/jobs/{name}/runs/{id}", get(run).delete(run))
}

async fn trigger(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    reply::answer(
        Shape::OpenAi,
        jobs::trigger(app, name, req.map(crate::pipeline::request_body)).await,
    )
}

async fn run(
    State(app): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    req: Request,
) -> Response {
    reply::answer(
        Shape::OpenAi,
        jobs::run(app, name, id, req.map(crate::pipeline::request_body)).await,
    )
}
