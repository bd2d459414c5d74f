//! JSON-RPC answers and the MCP errors, rendered from the gateway's one
//! error type here only. A message not accepted gets its HTTP status (401
//! with a `WWW-Authenticate` pointing at the protected-resource metadata,
//! 403, 404, 400, 413) and a JSON-RPC error body; a method that failed gets
//! HTTP 200 and the error object. `error.data` carries the gateway's
//! stable label (`type`, `code`) so clients can branch on it.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};
use tollgate_core::error::{ErrorKind, GatewayError};
use tollgate_mcp::wire::{code, Reply, RpcError};
use tollgate_mcp::{RelayedRpc, UpstreamError};
use tollgate_policy::auth::{policy, Principal};

use crate::snapshot::Snapshot;

pub(super) fn result(id: &Value, result: &Value) -> Response {
    json_response(
        StatusCode::OK,
        &Reply {
            jsonrpc: "2.0",
            id,
            result: Some(result),
            error: None,
        },
    )
}

/// `result` as its JSON text already written: the bytes `result` would
/// send for the same value (the reply's fields in the same order, compact).
pub(super) fn result_text(id: &Value, result: &str) -> Response {
    let mut bytes = Vec::with_capacity(result.len() + 48);
    bytes.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    // An id is a string or a number: written into a `Vec`, it cannot fail.
    let _ = serde_json::to_writer(&mut bytes, id);
    bytes.extend_from_slice(br#","result":"#);
    bytes.extend_from_slice(result.as_bytes());
    bytes.push(b'}');
    json_bytes(StatusCode::OK, bytes)
}

pub(super) fn empty(status: StatusCode) -> Response {
    status.into_response()
}

/// A `GET` whose `Accept` does not take an event stream.
pub(super) fn not_acceptable() -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        406,
        "not_acceptable",
        "the server-to-client stream is text/event-stream; send Accept: text/event-stream",
    )
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    json_bytes(status, serde_json::to_vec(body).unwrap_or_default())
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The error as JSON-RPC, under the request's id (null when unread).
pub(super) fn error(
    snap: &Snapshot,
    headers: &HeaderMap,
    server: &str,
    id: &Value,
    err: &GatewayError,
    in_band: bool,
) -> Response {
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
    let status = if in_band {
        StatusCode::OK
    } else {
        StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    };
    let mut resp = json_response(
        status,
        &Reply {
            jsonrpc: "2.0",
            id,
            result: None,
            error: Some(&rpc),
        },
    );
    if let Some(h) = err.headers() {
        resp.headers_mut().extend(h.clone());
    }
    if let Some(s) = err.retry_after_s() {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(s));
    }
    if err.status() == 401 {
        let url = metadata_url(snap, headers, server);
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer resource_metadata=\"{url}\"")) {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
        }
    }
    resp
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

/// The gateway's external base URL: `mcp.public_url`, else from `Host`.
fn base_url(snap: &Snapshot, headers: &HeaderMap) -> String {
    if let Some(u) = &snap.mcp.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn metadata_url(snap: &Snapshot, headers: &HeaderMap, server: &str) -> String {
    if server.is_empty() {
        return format!(
            "{}/.well-known/oauth-protected-resource",
            base_url(snap, headers)
        );
    }
    format!(
        "{}/.well-known/oauth-protected-resource/mcp/{server}",
        base_url(snap, headers)
    )
}

/// OAuth 2.0 protected-resource metadata (RFC 9728) for `/mcp/{server}`
/// (or the gateway as a whole when `server` is `None`): the configured
/// OIDC issuers are its authorization servers.
pub fn resource_metadata(snap: &Snapshot, headers: &HeaderMap, server: Option<&str>) -> Response {
    if server.is_some_and(|s| snap.mcp.get(s).is_none()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = base_url(snap, headers);
    let resource = match server {
        Some(s) => format!("{base}/mcp/{s}"),
        None => base,
    };
    let issuers: Vec<&str> = snap
        .config
        .auth
        .oidc
        .iter()
        .map(|o| o.issuer.as_str())
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "resource": resource,
            "authorization_servers": issuers,
            "bearer_methods_supported": ["header"],
            "resource_name": "Tollgate MCP gateway",
        }),
    )
}

pub(super) fn unknown_server(server: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        404,
        "unknown_server",
        format!("no MCP server `{server}` is served here"),
    )
}

pub(super) fn server_forbidden(server: &str, p: &Principal) -> GatewayError {
    GatewayError::new(
        ErrorKind::Permission,
        403,
        "server_forbidden",
        format!(
            "MCP server `{server}` is not granted to principal `{}` ({}): a policy rule with `tools: [\"{server}/…\"]` is needed",
            p.subject,
            policy::describe(p)
        ),
    )
}

pub(super) fn tool_forbidden(server: &str, tool: &str, p: &Principal) -> GatewayError {
    GatewayError::new(
        ErrorKind::Permission,
        403,
        "tool_forbidden",
        format!(
            "tool `{tool}` of MCP server `{server}` is not granted to principal `{}` ({}): missing grant `tools: [\"{server}/{tool}\"]`",
            p.subject,
            policy::describe(p)
        ),
    )
}

pub(super) fn tool_changed(server: &str, tool: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::Permission,
        403,
        "tool_changed",
        format!(
            "tool `{tool}` of MCP server `{server}` changed since it was approved and is held back until an operator approves it again (tollgate mcp approve)"
        ),
    )
}

pub(super) fn approval_refused(tool: &str, timed_out: bool) -> GatewayError {
    let (label, why) = if timed_out {
        ("approval_timeout", "no operator approved it in time")
    } else {
        ("approval_denied", "an operator denied it")
    };
    GatewayError::new(
        ErrorKind::Permission,
        403,
        label,
        format!("the call of tool `{tool}` needs an operator's approval and {why}"),
    )
}

pub(super) fn parse_error(e: &serde_json::Error) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        400,
        "parse_error",
        format!("the body is not one JSON-RPC message: {e}"),
    )
}

pub(super) fn batch_refused() -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        400,
        "invalid_message",
        "JSON-RPC batches are not supported: send one message per request",
    )
}

pub(super) fn invalid_message(e: RpcError) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidRequest, 400, "invalid_message", e.message)
}

pub(super) fn invalid_params(message: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidRequest, 400, "invalid_params", message)
}

pub(super) fn method_not_found(method: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        400,
        "method_not_found",
        format!("method `{method}` is not served here"),
    )
}

pub(super) fn missing_session() -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        400,
        "session_missing",
        "missing Mcp-Session-Id header: send initialize first",
    )
}

pub(super) fn bad_session(e: tollgate_mcp::session::SessionError) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        404,
        "session_invalid",
        format!("{e}: send initialize again"),
    )
}

pub(super) fn upstream(e: UpstreamError) -> GatewayError {
    GatewayError::from(e)
}

pub(super) fn upstream_protocol(server: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::from(UpstreamError::Protocol {
        server: server.to_string(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_result_written_as_text_is_the_bytes_of_the_value() {
        let tools = json!({"tools": [{"description": "d \"q\" é", "inputSchema": {"type": "object"}, "name": "a"}]});
        for id in [json!(7), json!("req-1"), json!(u64::MAX)] {
            let want = axum::body::to_bytes(result(&id, &tools).into_body(), usize::MAX)
                .await
                .unwrap();
            let resp = result_text(&id, &tools.to_string());
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
}
