//! The mock upstream's Anthropic Messages endpoint (`POST /v1/messages`):
//! the request is read as Anthropic, answered by the same deterministic
//! generator as the OpenAI routes, and written back in Anthropic's wire
//! format (a message, or the full SSE event sequence) by the shared
//! translators. Requires `anthropic-version`; with `--require-key` it checks
//! `x-api-key`. Errors come in Anthropic's shape.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::generate;
use super::server::{admit_as, sse_response, Credential, Incoming, MockState};
use tollgate_translate::anthropic::{from_anthropic, from_openai, FromOpenAi};

pub(super) async fn messages(
    State(state): State<Arc<MockState>>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Incoming {
        path: "/v1/messages",
        version,
        headers: &headers,
        body: &body,
    };
    let (body, knobs) = match admit_as(&state, &req, &Credential::AnthropicKey, None).await {
        Ok(ok) => ok,
        Err(r) => return error_in(r.status, &r.message, r.retry_after),
    };
    let bad = |m: &str| error_in(StatusCode::BAD_REQUEST, m, None);
    if !headers.contains_key("anthropic-version") {
        return bad("anthropic-version: header is required");
    }
    let mut chat = match from_anthropic(&body) {
        Ok(c) => c,
        Err(e) => return bad(&e.to_string()),
    };
    if !chat.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        return match from_openai(&generate::chat_json(&chat, &knobs)) {
            Ok(msg) => Json(msg).into_response(),
            Err(e) => error_in(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
        };
    }
    chat.insert("stream_options".into(), json!({"include_usage": true}));
    let mut translate = FromOpenAi::new();
    // The generator writes exactly one `data: …\n\n` event per item.
    let events = generate::chat_stream(&chat, &knobs).map(move |item| {
        item.map(|event| {
            let data = event
                .strip_prefix(b"data: ")
                .and_then(|d| d.strip_suffix(b"\n\n"))
                .unwrap_or(&event);
            let mut out = Vec::new();
            translate.on_data(&String::from_utf8_lossy(data), &mut out);
            Bytes::from(out)
        })
    });
    sse_response(events.boxed())
}

/// An error in Anthropic's shape, `Retry-After` included.
fn error_in(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let body = tollgate_translate::anthropic::error_body(status.as_u16(), message);
    let resp = (status, Json(body)).into_response();
    super::server::with_retry_after(resp, retry_after)
}
