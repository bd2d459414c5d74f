//! Mock upstream routes in the cloud providers' wire formats:
//!
//! - Databricks Model Serving: `POST /serving-endpoints/{name}/invocations`
//!   (chat, completions, embeddings bodies answered OpenAI-style as
//!   Databricks does; MLflow payloads answered `{"predictions": [...]}`, one
//!   per row: the sum of the row's numbers), errors as
//!   `{"error_code","message"}`; its token endpoint `POST /oidc/v1/token`.
//! - Azure OpenAI: `POST /openai/deployments/{deployment}/{chat/completions,
//!   completions, embeddings}?api-version=…` (`api-version` required).
//!
//! Every route checks the credential (`oauth::authorized`) and is recorded
//! in `/_mock/requests`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::oauth;
use super::server::{admit, respond, with_retry_after, Kind, MockState};

pub(crate) fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/serving-endpoints/{name}/invocations", post(invocations))
        .route("/oidc/v1/token", post(oauth::token))
        .route("/_mock/oauth", get(oauth::stats).post(oauth::set))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/completions",
            post(azure_completions),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embeddings),
        )
}

fn databricks_error(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let code = match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "RESOURCE_DOES_NOT_EXIST",
        429 => "REQUEST_LIMIT_EXCEEDED",
        503 => "TEMPORARILY_UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    };
    let resp = (
        status,
        Json(json!({"error_code": code, "message": message})),
    )
        .into_response();
    with_retry_after(resp, retry_after)
}

async fn invocations(
    State(state): State<Arc<MockState>>,
    Path(name): Path<String>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/serving-endpoints/{name}/invocations");
    let (mut body, knobs) =
        match admit(&state, &path, version, &headers, &body, databricks_error).await {
            Ok(v) => v,
            Err(resp) => return resp,
        };
    // Databricks answers with the endpoint's name as the model.
    body.insert("model".into(), Value::String(name));
    let kind = if body.contains_key("messages") {
        Kind::Chat
    } else if body.contains_key("prompt") {
        Kind::Completions
    } else if body.contains_key("input") {
        Kind::Embeddings
    } else {
        return match predictions(&body) {
            Some(p) => Json(json!({"predictions": p})).into_response(),
            None => databricks_error(
                StatusCode::BAD_REQUEST,
                "mock: expected messages, prompt, input, dataframe_records, \
                 dataframe_split, instances or inputs",
                None,
            ),
        };
    };
    respond(kind, &body, &knobs, databricks_error)
}

/// One prediction per row of an MLflow scoring payload: the sum of its numbers.
fn predictions(body: &Map<String, Value>) -> Option<Vec<Value>> {
    fn sum(v: &Value) -> f64 {
        match v {
            Value::Number(n) => n.as_f64().unwrap_or(0.0),
            Value::Array(a) => a.iter().map(sum).sum(),
            Value::Object(o) => o.values().map(sum).sum(),
            _ => 0.0,
        }
    }
    let rows: &Vec<Value> = match body {
        b if b.get("dataframe_records").is_some() => b.get("dataframe_records")?.as_array()?,
        b if b.get("dataframe_split").is_some() => {
            b.get("dataframe_split")?.get("data")?.as_array()?
        }
        b if b.get("instances").is_some() => b.get("instances")?.as_array()?,
        b => b.get("inputs")?.as_array()?,
    };
    Some(rows.iter().map(|r| json!(sum(r))).collect())
}

#[derive(serde::Deserialize)]
struct ApiVersion {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

async fn azure(
    state: &MockState,
    kind: Kind,
    path: String,
    q: ApiVersion,
    version: http::Version,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if q.api_version.as_deref().is_none_or(str::is_empty) {
        return azure_error(
            StatusCode::NOT_FOUND,
            "Resource not found: api-version query parameter is required",
            None,
        );
    }
    match admit(state, &path, version, headers, body, azure_error).await {
        Ok((body, knobs)) => respond(kind, &body, &knobs, azure_error),
        Err(resp) => resp,
    }
}

fn azure_error(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    // Azure OpenAI errors are OpenAI's shape with a string `code`.
    let resp = (
        status,
        Json(json!({"error": {"code": status.as_u16().to_string(), "message": message}})),
    )
        .into_response();
    with_retry_after(resp, retry_after)
}

macro_rules! azure_route {
    ($name:ident, $kind:expr, $tail:literal) => {
        async fn $name(
            State(state): State<Arc<MockState>>,
            Path(deployment): Path<String>,
            Query(q): Query<ApiVersion>,
            version: http::Version,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            let path = format!(
                "/openai/deployments/{deployment}/{}?api-version={}",
                $tail,
                q.api_version.as_deref().unwrap_or("")
            );
            azure(&state, $kind, path, q, version, &headers, &body).await
        }
    };
}

azure_route!(azure_chat, Kind::Chat, "chat/completions");
azure_route!(azure_completions, Kind::Completions, "completions");
azure_route!(azure_embeddings, Kind::Embeddings, "embeddings");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicts_one_value_per_row() {
        let p = |v: Value| predictions(v.as_object().unwrap_or(&Map::new()));
        assert_eq!(
            p(json!({"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})),
            Some(vec![json!(3.0), json!(7.0)])
        );
        assert_eq!(
            p(json!({"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}})),
            Some(vec![json!(1.0), json!(2.0)])
        );
        assert_eq!(p(json!({"instances": [[1, 1]]})), Some(vec![json!(2.0)]));
        assert_eq!(p(json!({"inputs": [5]})), Some(vec![json!(5.0)]));
        assert_eq!(p(json!({"other": 1})), None);
    }
}
