//! The MCP refusals as the gateway's one error type (their status, label
//! and message), the protected-resource metadata and its URL. Rendering
//! them as JSON-RPC over HTTP is the server crate's (`api/mcp_reply.rs`).

use http::HeaderMap;
use tollgate_core::error::{ErrorKind, GatewayError};
use tollgate_mcp::wire::RpcError;
use tollgate_mcp::UpstreamError;
use tollgate_policy::auth::{policy, Principal};

use super::ResourceMetadata;
use crate::snapshot::Snapshot;

/// A `GET` whose `Accept` does not take an event stream.
pub(super) fn not_acceptable() -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        406,
        "not_acceptable",
        "the server-to-client stream is text/event-stream; send Accept: text/event-stream",
    )
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

pub(super) fn metadata_url(snap: &Snapshot, headers: &HeaderMap, server: &str) -> String {
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
/// OIDC issuers are its authorization servers. `None`: no such server.
pub fn resource_metadata(
    snap: &Snapshot,
    headers: &HeaderMap,
    server: Option<&str>,
) -> Option<ResourceMetadata> {
    if server.is_some_and(|s| snap.mcp.get(s).is_none()) {
        return None;
    }
    let base = base_url(snap, headers);
    let resource = match server {
        Some(s) => format!("{base}/mcp/{s}"),
        None => base,
    };
    let authorization_servers = snap
        .config
        .auth
        .oidc
        .iter()
        .map(|o| o.issuer.clone())
        .collect();
    Some(ResourceMetadata {
        resource,
        authorization_servers,
    })
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
