//! Databricks-shaped ingress: `POST /serving-endpoints/{name}/invocations`,
//! so Databricks SDK and MLflow deployment clients can point at the gateway
//! (they send `Authorization: Bearer <gateway key or JWT>`). The endpoint
//! name is the model; the kind of call comes from the body: `messages` →
//! chat, `prompt` → completions, `input` → embeddings, an MLflow payload
//! (`dataframe_records`, `dataframe_split`, `instances`, `inputs`) → a raw
//! invocation, served only by providers that take it (databricks). Then the
//! normal pipeline runs; errors come back as `{"error_code","message"}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use http::HeaderMap;
use serde_json::Value;

use super::error::{ApiShape, GatewayError, Render};
use crate::auth;
use crate::config::Endpoint;
use crate::pipeline::{self, Ingress};
use crate::server::AppState;

const SHAPE: ApiShape = ApiShape::Databricks;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/serving-endpoints/{name}/invocations", post(invocations))
}

async fn invocations(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    mut headers: HeaderMap,
    body: Body,
) -> Response {
    // Authenticate on headers alone before reading the body (the pipeline
    // checks again; both are in-memory), so unauthenticated callers cost
    // nothing.
    let snap = app.snapshot.load_full();
    let store_keys = app.store_keys.load_full();
    if let Err(e) = auth::authenticate(&headers, &snap.credentials(&store_keys)).await {
        return super::openai::auth_failure(e, &headers, SHAPE);
    }
    let limit = snap.config.server.max_body_bytes;
    let (endpoint, bytes) = match prepare(&headers, body, limit, &name).await {
        Ok(v) => v,
        Err(e) => return e.into_response_shaped(SHAPE),
    };
    headers.remove(http::header::CONTENT_LENGTH);
    let ingress = Ingress::Databricks(endpoint);
    super::reply::shaped(app, ingress, headers, Body::from(bytes)).await
}

/// Reads the body, infers the endpoint and names the model after the path.
async fn prepare(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    name: &str,
) -> Result<(Endpoint, Vec<u8>), GatewayError> {
    let bytes = pipeline::read_body(headers, pipeline::request_body(body), limit).await?;
    let mut map = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(GatewayError::invalid(
                "request body must be a JSON object",
                None,
            ))
        }
        Err(e) => {
            return Err(GatewayError::invalid(
                format!("request body is not valid JSON: {e}"),
                None,
            ))
        }
    };
    let endpoint = infer(&map);
    map.insert("model".into(), Value::String(name.to_string()));
    serde_json::to_vec(&map)
        .map(|b| (endpoint, b))
        .map_err(|_| GatewayError::internal())
}

/// The kind of call a Databricks invocation body is. Anything that is not
/// chat, completions or embeddings is treated as a model payload, whose
/// ingress check names the expected keys.
pub(super) fn infer(body: &serde_json::Map<String, Value>) -> Endpoint {
    if body.contains_key("messages") {
        Endpoint::Chat
    } else if body.contains_key("prompt") {
        Endpoint::Completions
    } else if body.contains_key("input") {
        Endpoint::Embeddings
    } else {
        Endpoint::Invocations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::error_code;
    use serde_json::json;

    #[test]
    fn infers_the_endpoint_from_the_body() {
        let e = |v: Value| infer(v.as_object().unwrap_or(&Default::default()));
        assert_eq!(e(json!({"messages": []})), Endpoint::Chat);
        assert_eq!(e(json!({"prompt": "x"})), Endpoint::Completions);
        assert_eq!(e(json!({"input": "x"})), Endpoint::Embeddings);
        assert_eq!(e(json!({"inputs": [1]})), Endpoint::Invocations);
        assert_eq!(e(json!({"dataframe_split": {}})), Endpoint::Invocations);
        let not_found = crate::api::error::model_not_found("m");
        assert_eq!(error_code(&not_found), "RESOURCE_DOES_NOT_EXIST");
        let body = not_found.body(ApiShape::Databricks);
        assert_eq!(body["error_code"], "RESOURCE_DOES_NOT_EXIST");
        assert!(body["message"].as_str().unwrap_or("").contains("`m`"));
    }
}
