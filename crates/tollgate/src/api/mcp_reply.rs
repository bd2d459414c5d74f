//! The MCP gateway's typed answers as HTTP (`pipeline::mcp`'s `Answer`,
//! `Relayed`, `Listened`), and the gateway's one error type rendered as
//! JSON-RPC. A message not accepted gets its HTTP status (401 with a
//! `WWW-Authenticate` pointing at the protected-resource metadata, 403,
//! 404, 400, 413) and a JSON-RPC error body; a method that failed gets
//! HTTP 200 and the error object. `error.data` carries the gateway's
//! stable label (`type`, `code`) so clients can branch on it. An upstream's
//! own JSON-RPC error is relayed as it was.

use std::convert::Infallible;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};
use tollgate_core::error::{ErrorKind, GatewayError};
use tollgate_mcp::upstream::SESSION_HEADER;
use tollgate_mcp::wire::{code, Reply, RpcError};
use tollgate_mcp::RelayedRpc;

use crate::pipeline::mcp::{
    Answer, Listened, Outcome, Posted, Relayed, ResourceMetadata, RpcFailure, RpcResult,
};

/// A `POST`'s answer: whole, or as an event stream.
pub(super) fn posted(posted: Posted) -> Response {
    match posted {
        Posted::Whole(outcome) => whole(outcome),
        Posted::Events(events) => relayed(events),
    }
}

/// An answer sent whole, then recorded with its body's size.
pub(super) fn whole(outcome: Outcome) -> Response {
    let resp = response(&outcome.answer);
    let sent = http_body::Body::size_hint(resp.body())
        .exact()
        .unwrap_or_default();
    outcome.sent(sent);
    resp
}

/// The answer's status, headers and body.
fn response(answer: &Answer) -> Response {
    match answer {
        Answer::Accepted => StatusCode::ACCEPTED.into_response(),
        Answer::Closed => StatusCode::OK.into_response(),
        Answer::Result { session, .. } => {
            let mut resp = json_bytes(StatusCode::OK, body(answer));
            if let Some(v) = session
                .as_deref()
                .and_then(|s| HeaderValue::from_str(s).ok())
            {
                resp.headers_mut().insert(SESSION_HEADER, v);
            }
            resp
        }
        Answer::Error(f) => error(f),
    }
}

/// The answer's JSON-RPC body (empty for an acknowledgement).
fn body(answer: &Answer) -> Vec<u8> {
    match answer {
        Answer::Accepted | Answer::Closed => Vec::new(),
        Answer::Result {
            id,
            result: RpcResult::Value(v),
            ..
        } => result(id, v),
        Answer::Result {
            id,
            result: RpcResult::Text(text),
            ..
        } => result_text(id, text),
        Answer::Error(f) => error_body(f),
    }
}

fn result(id: &Value, result: &Value) -> Vec<u8> {
    to_vec(&Reply {
        jsonrpc: "2.0",
        id,
        result: Some(result),
        error: None,
    })
}

/// `result` as its JSON text already written: the bytes `result` would
/// send for the same value (the reply's fields in the same order, compact).
fn result_text(id: &Value, result: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(result.len() + 48);
    bytes.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    // An id is a string or a number: written into a `Vec`, it cannot fail.
    let _ = serde_json::to_writer(&mut bytes, id);
    bytes.extend_from_slice(br#","result":"#);
    bytes.extend_from_slice(result.as_bytes());
    bytes.push(b'}');
    bytes
}

fn to_vec(body: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The error as JSON-RPC, with its HTTP status and headers.
pub(super) fn error(f: &RpcFailure) -> Response {
    let err = &f.error;
    let status = if f.in_band {
        StatusCode::OK
    } else {
        StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    };
    let mut resp = json_bytes(status, error_body(f));
    if let Some(h) = err.headers() {
        resp.headers_mut().extend(h.clone());
    }
    if let Some(s) = err.retry_after_s() {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(s));
    }
    if let Some(url) = &f.resource_metadata {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer resource_metadata=\"{url}\"")) {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
        }
    }
    resp
}

/// The error object under the request's id (null when unread).
fn error_body(f: &RpcFailure) -> Vec<u8> {
    let err = &f.error;
    let relayed = std::error::Error::source(err).and_then(|s| s.downcast_ref::<RelayedRpc>());
    let rpc = match relayed {
        Some(r) => r.0.clone(),
        None => RpcError {
            code: rpc_code(err),
            message: err.message().to_string(),
            data: Some(
                json!({"type": err.kind().openai_type(), "code": err.code().unwrap_or(err.label())}),
            ),
        },
    };
    to_vec(&Reply {
        jsonrpc: "2.0",
        id: &f.id,
        result: None,
        error: Some(&rpc),
    })
}

fn rpc_code(err: &GatewayError) -> i64 {
    match (err.kind(), err.label()) {
        (_, "session_missing" | "session_invalid" | "session_gone") => code::SESSION,
        (_, "method_not_found") => code::METHOD_NOT_FOUND,
        (_, "parse_error") => code::PARSE_ERROR,
        (_, "invalid_message") => code::INVALID_REQUEST,
        (_, "guardrail_blocked") => code::BLOCKED,
        (ErrorKind::Authentication, _) => code::UNAUTHENTICATED,
        (ErrorKind::Permission, _) => code::FORBIDDEN,
        (ErrorKind::RateLimit, _) => code::RATE_LIMITED,
        (ErrorKind::InvalidRequest, _) => code::INVALID_PARAMS,
        (ErrorKind::Server, "internal") => code::INTERNAL_ERROR,
        (ErrorKind::Server, _) => code::UPSTREAM,
    }
}

/// A request's relayed messages, then its answer's body as the last event
/// (recorded with that body's size).
fn relayed(events: BoxStream<'static, Relayed>) -> Response {
    let body = events.map(|item| {
        Ok::<_, Infallible>(match item {
            Relayed::Message(msg) => event(msg.as_bytes()),
            Relayed::Last(outcome) => {
                let last = body(&outcome.answer);
                outcome.sent(last.len() as u64);
                if last.is_empty() {
                    Bytes::new()
                } else {
                    event(&last)
                }
            }
        })
    });
    event_stream(Body::from_stream(body))
}

/// A session's server-to-client stream.
pub(super) fn listened(events: BoxStream<'static, Listened>) -> Response {
    let body = events.map(|item| {
        Ok::<_, Infallible>(match item {
            Listened::Changed(kind) => Bytes::from(format!(
                "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"{}\"}}\n\n",
                kind.method()
            )),
            Listened::Keepalive => Bytes::from_static(b": keepalive\n\n"),
        })
    });
    event_stream(Body::from_stream(body))
}

/// One JSON-RPC message (one line of JSON) as an SSE event.
fn event(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// An event-stream answer.
fn event_stream(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

/// `GET /mcp`: the servers the caller may reach.
pub(super) fn servers(names: &[String]) -> Response {
    let data: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "url": format!("/mcp/{n}")}))
        .collect();
    axum::Json(json!({ "servers": data })).into_response()
}

/// The protected-resource metadata document, or 404 for a server not
/// served here.
pub(super) fn metadata(meta: Option<ResourceMetadata>) -> Response {
    let Some(meta) = meta else {
        return StatusCode::NOT_FOUND.into_response();
    };
    json_bytes(
        StatusCode::OK,
        to_vec(&json!({
            "resource": meta.resource,
            "authorization_servers": meta.authorization_servers,
            "bearer_methods_supported": ["header"],
            "resource_name": "Tollgate MCP gateway",
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &Value, result: RpcResult) -> Answer {
        Answer::Result {
            id: id.clone(),
            result,
            session: None,
        }
    }

    #[tokio::test]
    async fn a_result_written_as_text_is_the_bytes_of_the_value() {
        let tools = json!({"tools": [{"description": "d \"q\" é", "inputSchema": {"type": "object"}, "name": "a"}]});
        for id in [json!(7), json!("req-1"), json!(u64::MAX)] {
            let value = response(&answer(&id, RpcResult::Value(tools.clone())));
            let want = axum::body::to_bytes(value.into_body(), usize::MAX)
                .await
                .unwrap();
            let resp = response(&answer(&id, RpcResult::Text(tools.to_string())));
            assert_eq!(
                resp.headers()[http::header::CONTENT_TYPE],
                "application/json"
            );
            let got = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn an_error_keeps_its_status_headers_and_code() {
        let refused = RpcFailure {
            id: Value::Null,
            error: GatewayError::new(ErrorKind::Authentication, 401, "missing_key", "no key"),
            in_band: false,
            resource_metadata: Some("http://gw/.well-known/oauth-protected-resource".into()),
        };
        let resp = error(&refused);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()[http::header::WWW_AUTHENTICATE],
            "Bearer resource_metadata=\"http://gw/.well-known/oauth-protected-resource\""
        );
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], code::UNAUTHENTICATED);
        assert_eq!(v["error"]["data"]["code"], "missing_key");
        assert!(v["id"].is_null());

        let failed = RpcFailure {
            id: json!(3),
            error: GatewayError::new(ErrorKind::RateLimit, 429, "rate_limited", "slow down")
                .with_retry_after(7),
            in_band: true,
            resource_metadata: None,
        };
        let resp = error(&failed);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "7");
        assert!(resp.headers().get(http::header::WWW_AUTHENTICATE).is_none());
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["error"]["code"], code::RATE_LIMITED);
    }
}
