//! Prompt templates as APIs: `GET /v1/prompts` lists the templates the
//! caller may use; `POST /v1/prompts/{name}[@label|@version][/versions/{v}]/completions`
//! renders one and runs it through the chat pipeline (`pipeline::handle_prompt`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use http::HeaderMap;
use serde_json::json;

use super::error::{ApiShape, GatewayError, Render};
use crate::pipeline;
use crate::prompts::PromptCall;
use crate::server::AppState;

pub(super) async fn complete(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // `name`, `name@3` or `name@production`.
    let call = PromptCall::parse(&name);
    prompt_call(app, call, headers, body).await
}

pub(super) async fn complete_version(
    State(app): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(version) = version.trim_start_matches('v').parse::<u32>() else {
        return GatewayError::invalid(format!("version {version:?} is not a number"), None)
            .into_response_shaped(ApiShape::OpenAi);
    };
    let call = PromptCall {
        name,
        version: Some(version),
        label: None,
    };
    prompt_call(app, call, headers, body).await
}

async fn prompt_call(
    app: Arc<AppState>,
    call: PromptCall,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = pipeline::handle_prompt(app, call, headers, pipeline::request_body(body)).await;
    super::reply::answer(super::reply::Shape::OpenAi, answer)
}

/// Every template version the caller may call, with its variables.
pub(super) async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    super::openai::list_for_caller(&app, &headers, |snap, access| {
        snap.templates
            .iter()
            .filter(|(t, _)| access.decide(&t.grant_name(), t.tenant.as_deref()).is_ok())
            .map(|(t, latest)| {
                json!({"object": "prompt", "name": t.name, "version": t.version,
                    "latest": latest, "model": t.model, "variables": t.variables,
                    "labels": t.labels, "description": t.description})
            })
            .collect()
    })
    .await
}
