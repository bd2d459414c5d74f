//! The mock upstream's Gemini face: `POST /v1beta/models/{model}:{method}`
//! for `generateContent`, `streamGenerateContent?alt=sse`, `embedContent`
//! and `batchEmbedContents`. The request is translated to OpenAI's shape,
//! answered by the deterministic generator (knobs included) and translated
//! back, so answers match the OpenAI face word for word. With
//! `--require-key` the key must come in `x-goog-api-key` or `?key=`.
//!
//! `x-mock-stream-error: <HTTP status>` with `x-mock-cut-after: N`: instead of
//! breaking the connection after N chunks, the stream ends with an
//! `{"error": …}` event of that status, as Gemini reports mid-stream failures.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::server::{admit_as, stream_response, Credential, Incoming, MockState, Reject};
use super::{generate, Knobs};
use tollgate_core::sse::SseSplitter;
use tollgate_translate::gemini as tr;
use tollgate_translate::gemini_stream::OpenAiToGemini;

pub(super) fn routes() -> Router<Arc<MockState>> {
    Router::new().route("/v1beta/models/{action}", post(models_action))
}

/// Google's error shape; a retry delay goes in `RetryInfo`, as Gemini does.
fn error(r: Reject) -> Response {
    let status = r.status;
    (status, Json(error_body(r))).into_response()
}

fn error_body(r: Reject) -> Value {
    let status = match r.status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    let mut err = json!({"code": r.status.as_u16(), "message": r.message, "status": status});
    if let Some(secs) = r.retry_after {
        err["details"] = json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{secs}s")}]);
    }
    json!({"error": err})
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

async fn models_action(
    State(state): State<Arc<MockState>>,
    Path(action): Path<String>,
    RawQuery(query): RawQuery,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, method)) = action.rsplit_once(':') else {
        return error(Reject {
            status: StatusCode::NOT_FOUND,
            message: format!("unknown action {action:?}"),
            retry_after: None,
        });
    };
    let path = match &query {
        Some(q) => format!("/v1beta/models/{action}?{q}"),
        None => format!("/v1beta/models/{action}"),
    };
    let req = Incoming {
        path: &path,
        version,
        headers: &headers,
        body: &body,
    };
    let cred = Credential::GoogleKey(query_param(query.as_deref(), "key"));
    let (g, knobs) = match admit_as(&state, &req, &cred, Some(model)).await {
        Ok((g, knobs)) => (Value::Object(g), knobs),
        Err(r) => return error(r),
    };
    match method {
        "generateContent" => {
            let o = openai_body(&tr::to_openai_request(&g, model, false));
            Json(tr::from_openai_response(&generate::chat_json(&o, &knobs))).into_response()
        }
        "streamGenerateContent" if query_param(query.as_deref(), "alt") == Some("sse") => {
            let error = super::bedrock::stream_error(&headers).and_then(|s| s.parse().ok());
            stream(&tr::to_openai_request(&g, model, true), &knobs, error)
        }
        "batchEmbedContents" => embed(&tr::embed_to_openai(&g, model), true),
        "embedContent" => {
            let one = json!({"requests": [g]});
            embed(&tr::embed_to_openai(&one, model), false)
        }
        _ => error(Reject {
            status: StatusCode::NOT_FOUND,
            message: format!("method {method:?} is not served (streams need ?alt=sse)"),
            retry_after: None,
        }),
    }
}

fn openai_body(v: &Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn stream(o: &Value, knobs: &Knobs, error: Option<u16>) -> Response {
    let mut splitter = SseSplitter::default();
    let mut translator = OpenAiToGemini::new();
    let knobs_retry = knobs.retry_after;
    let events = generate::chat_stream(&openai_body(o), knobs).map(move |r| {
        let r = match (r, error) {
            (Err(_), Some(code)) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = error_body(Reject {
                    status,
                    message: "mock upstream: forced stream error".into(),
                    retry_after: knobs_retry,
                });
                return Ok(Bytes::from(format!("data: {body}\r\n\r\n")));
            }
            (r, _) => r,
        };
        r.map(|bytes| {
            let mut out = Vec::new();
            for ev in splitter.push(&bytes) {
                for b in translator.event(&ev.data()) {
                    out.extend_from_slice(&b);
                }
            }
            Bytes::from(out)
        })
    });
    stream_response(events.boxed(), "text/event-stream")
}

fn embed(o: &Value, batch: bool) -> Response {
    match generate::embeddings_json(&openai_body(o)) {
        Ok(v) => {
            let g = tr::embed_from_openai(&v);
            if batch {
                Json(g).into_response()
            } else {
                let first = g.pointer("/embeddings/0").cloned().unwrap_or(Value::Null);
                Json(json!({"embedding": first})).into_response()
            }
        }
        Err(e) => error(Reject {
            status: StatusCode::BAD_REQUEST,
            message: e.to_string(),
            retry_after: None,
        }),
    }
}
