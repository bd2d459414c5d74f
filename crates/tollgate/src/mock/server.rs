//! `tollgate mock-upstream`: an OpenAI-compatible HTTP server with the
//! deterministic answers of `generate.rs` and the knobs of `knobs.rs`. It
//! remembers the last requests it received (`GET /_mock/requests`) so tests
//! can assert on what reached the upstream, and can require a bearer key.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::{generate, Knobs};

/// Requests kept for `GET /_mock/requests`.
const RECORDED: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct MockOptions {
    /// When set, requests must carry `Authorization: Bearer <key>`
    /// (`x-api-key: <key>` on the Anthropic route).
    pub require_key: Option<String>,
}

pub(super) struct MockState {
    opts: MockOptions,
    received: Mutex<VecDeque<Value>>,
    /// Requests seen per model string, for the `fail_first` knob.
    seen: Mutex<std::collections::HashMap<String, u64>>,
}

pub fn router(opts: MockOptions) -> Router {
    let state = Arc::new(MockState {
        opts,
        received: Mutex::new(VecDeque::new()),
        seen: Mutex::new(std::collections::HashMap::new()),
    });
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(super::anthropic::messages))
        .route("/_mock/requests", get(received).delete(clear))
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    opts: MockOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(opts))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The wire format a mock route speaks: how it checks the key and shapes errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    OpenAi,
    Anthropic,
}

pub(super) fn error_in(
    wire: Wire,
    status: StatusCode,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    if wire == Wire::OpenAi {
        return error(status, message, retry_after);
    }
    let body = crate::translate::anthropic::error_body(status.as_u16(), message);
    let mut resp = (status, Json(body)).into_response();
    if let Some(v) = retry_after.and_then(|s| http::HeaderValue::from_str(&s.to_string()).ok()) {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    resp
}

fn error(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_error"
    } else if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let mut resp = (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}})),
    )
        .into_response();
    if let Some(secs) = retry_after {
        if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    resp
}

/// Common front half of every POST: record, check the key, parse, apply
/// status and latency knobs.
pub(super) async fn admit(
    state: &MockState,
    wire: Wire,
    path: &str,
    version: http::Version,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Map<String, Value>, Knobs), Response> {
    let parsed = serde_json::from_slice::<Value>(body);
    let header_map: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
        .collect();
    if let Ok(mut received) = state.received.lock() {
        if received.len() == RECORDED {
            received.pop_front();
        }
        let recorded = parsed.as_ref().map_or(Value::Null, Clone::clone);
        received.push_back(json!({
            "path": path,
            "version": format!("{version:?}"),
            "headers": header_map,
            "body": recorded,
        }));
    }
    if let Some(key) = &state.opts.require_key {
        let (header, expected) = match wire {
            Wire::OpenAi => (
                http::header::AUTHORIZATION.as_str(),
                format!("Bearer {key}"),
            ),
            Wire::Anthropic => ("x-api-key", key.clone()),
        };
        if headers.get(header).and_then(|v| v.to_str().ok()) != Some(&expected) {
            return Err(error_in(
                wire,
                StatusCode::UNAUTHORIZED,
                "mock upstream: wrong or missing key",
                None,
            ));
        }
    }
    let body = match parsed {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(error_in(
                wire,
                StatusCode::BAD_REQUEST,
                "body must be a JSON object",
                None,
            ))
        }
    };
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let knobs = Knobs::from_request(headers, model);
    if let Some(d) = knobs.latency {
        tokio::time::sleep(d).await;
    }
    let mut forced = knobs.status.filter(|s| !(200..300).contains(s));
    if let (Some(n), Some(_)) = (knobs.fail_first, forced) {
        let count = state.seen.lock().map_or(0, |mut seen| {
            let c = seen.entry(model.to_string()).or_insert(0);
            *c += 1;
            *c
        });
        if count > n {
            forced = None;
        }
    }
    if let Some(status) = forced.and_then(|s| StatusCode::from_u16(s).ok()) {
        return Err(error_in(
            wire,
            status,
            &format!("mock upstream: forced status {status}"),
            knobs.retry_after,
        ));
    }
    Ok((body, knobs))
}

fn is_stream(body: &Map<String, Value>) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

pub(super) fn sse_response(
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, generate::StreamCut>>,
) -> Response {
    let body = Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other)));
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn chat(
    State(state): State<Arc<MockState>>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(
        &state,
        Wire::OpenAi,
        "/v1/chat/completions",
        version,
        &headers,
        &body,
    )
    .await
    {
        Err(resp) => resp,
        Ok((body, knobs)) if is_stream(&body) => sse_response(generate::chat_stream(&body, &knobs)),
        Ok((body, knobs)) => Json(generate::chat_json(&body, &knobs)).into_response(),
    }
}

async fn completions(
    State(state): State<Arc<MockState>>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(
        &state,
        Wire::OpenAi,
        "/v1/completions",
        version,
        &headers,
        &body,
    )
    .await
    {
        Err(resp) => resp,
        Ok((body, knobs)) if is_stream(&body) => {
            sse_response(generate::completion_stream(&body, &knobs))
        }
        Ok((body, knobs)) => Json(generate::completion_json(&body, &knobs)).into_response(),
    }
}

async fn embeddings(
    State(state): State<Arc<MockState>>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(
        &state,
        Wire::OpenAi,
        "/v1/embeddings",
        version,
        &headers,
        &body,
    )
    .await
    {
        Err(resp) => resp,
        Ok((body, _)) => match generate::embeddings_json(&body) {
            Ok(v) => Json(v).into_response(),
            Err(msg) => error(StatusCode::BAD_REQUEST, &msg, None),
        },
    }
}

async fn models() -> Json<Value> {
    Json(generate::models_json(&["mock-chat", "mock-embed"]))
}

async fn received(State(state): State<Arc<MockState>>) -> Json<Value> {
    let list: Vec<Value> = state
        .received
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    Json(Value::Array(list))
}

async fn clear(State(state): State<Arc<MockState>>) -> StatusCode {
    if let Ok(mut r) = state.received.lock() {
        r.clear();
    }
    StatusCode::NO_CONTENT
}
