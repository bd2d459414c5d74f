//! The answer to a request whose HTTP/1 head hyper refused (a malformed
//! request line or header line: 400; a request target over hyper's limit:
//! 414; a header section over its limits: 431). hyper answers these
//! itself, before any request reaches the router, with an empty body; the
//! connection (`server/head_error.rs`) writes this answer in its place: the
//! caller's error shape as the path the head began with tells it (Anthropic
//! under `/v1/messages`, Databricks under `/serving-endpoints/`, JSON-RPC
//! under `/mcp`, OpenAI otherwise), a stable code and message, JSON, the
//! caller's `x-request-id` when the kept bytes hold a sane one (else a new
//! one), and `connection: close`.

use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use tollgate_core::error::{ApiShape, ErrorKind, GatewayError};
use tollgate_mcp::wire::{code, Reply, RpcError};

use super::error::Render;
use crate::pipeline::REQUEST_ID;

/// The API shape a path's errors take (`/mcp` aside, which is JSON-RPC).
pub fn api_shape(path: &str) -> ApiShape {
    if path.starts_with("/v1/messages") {
        ApiShape::Anthropic
    } else if path.starts_with("/serving-endpoints/") {
        ApiShape::Databricks
    } else {
        ApiShape::OpenAi
    }
}

/// The error hyper's automatic `status` stands for.
fn refusal(status: u16) -> GatewayError {
    let (label, message): (&'static str, &str) = match status {
        431 => (
            "request_header_fields_too_large",
            "the request's header section is too large (at most 100 header fields and about 408 KiB)",
        ),
        414 => ("uri_too_long", "the request target (URI) is too long"),
        _ => (
            "malformed_request",
            "the request is not valid HTTP: its request line or a header line cannot be parsed",
        ),
    };
    GatewayError::new(ErrorKind::InvalidRequest, status, label, message).with_code(label)
}

/// The body in the caller's shape, for a request to `path`.
fn body(err: &GatewayError, path: &str) -> Value {
    if path == "/mcp" || path.starts_with("/mcp/") {
        let rpc = RpcError {
            code: code::INVALID_REQUEST,
            message: err.message().to_string(),
            data: Some(json!({"type": err.kind().openai_type(), "code": err.label()})),
        };
        let reply = Reply {
            jsonrpc: "2.0",
            id: &Value::Null,
            result: None,
            error: Some(&rpc),
        };
        return serde_json::to_value(&reply).unwrap_or(Value::Null);
    }
    err.body(api_shape(path))
}

/// The whole response for hyper's automatic answer with `status`, whose
/// status line is `status_line` (without its CRLF) and whose `date` header
/// value is `date`; `head` is the start of the refused request head as
/// read, when it is known.
pub fn answer(status: u16, status_line: &[u8], date: &[u8], head: Option<&[u8]>) -> Vec<u8> {
    let head = head.unwrap_or_default();
    let path = target_path(head).unwrap_or("/");
    let err = refusal(status);
    let body = serde_json::to_vec(&body(&err, path)).unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Some(v) = header(head, REQUEST_ID) {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            headers.insert(REQUEST_ID, v);
        }
    }
    let id = super::openai::request_id_for(&headers);
    let id = id.as_ref().map(HeaderValue::as_bytes).unwrap_or_default();
    tracing::debug!(
        status,
        error = err.label(),
        request_id = %String::from_utf8_lossy(id),
        "refused a malformed request head"
    );
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\nx-request-id: ");
    out.extend_from_slice(id);
    out.extend_from_slice(b"\r\nconnection: close\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&body);
    out
}

/// The head's lines, without their line ends, up to the blank line (empty
/// lines before the request line are skipped, as hyper does).
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
}

/// The path of the request line's target (origin or absolute form), even
/// when the rest of the line is malformed.
fn target_path(head: &[u8]) -> Option<&str> {
    let line = lines(head).next()?;
    let target = line.split(|&b| b == b' ').nth(1)?;
    let target = std::str::from_utf8(target).ok()?;
    match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]),
        None => Some(target),
    }
}

/// The value of header `name` among the head's header lines.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    lines(head).skip(1).find_map(|l| {
        let colon = l.iter().position(|&b| b == b':')?;
        l[..colon]
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| l[colon + 1..].trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_and_the_request_id_are_read_from_a_broken_head() {
        let head = b"\r\nPOST http://gw:8080/v1/messages?x=1 HTTP/1.1\r\nX-Request-Id:  abc-1 \r\nbad header: y\r\n";
        assert_eq!(target_path(head), Some("/v1/messages?x=1"));
        assert_eq!(header(head, "x-request-id"), Some(&b"abc-1"[..]));
        assert_eq!(target_path(b"GET /mcp/fs HTTP/1.1"), Some("/mcp/fs"));
        assert_eq!(target_path(b"GARBAGE"), None);
        assert_eq!(
            header(
                b"GET / HTTP/1.1\r\n\r\nx-request-id: late\r\n",
                "x-request-id"
            ),
            None
        );
    }

    #[test]
    fn each_shape_is_answered() {
        let ans = |path: &str| {
            let head = format!("GET {path} HTTP/1.1\r\nx-request-id: rid-7\r\n");
            let out = answer(
                400,
                b"HTTP/1.1 400 Bad Request",
                b"D",
                Some(head.as_bytes()),
            );
            let text = String::from_utf8(out).unwrap_or_default();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
            assert!(head.contains("\r\nx-request-id: rid-7\r\n"), "{head}");
            assert!(
                head.contains("\r\ncontent-type: application/json\r\n"),
                "{head}"
            );
            assert!(head.ends_with("\r\ndate: D"), "{head}");
            serde_json::from_str::<Value>(body).unwrap_or_default()
        };
        assert_eq!(
            ans("/v1/chat/completions")["error"]["code"],
            "malformed_request"
        );
        assert_eq!(
            ans("/v1/messages")["error"]["type"],
            "invalid_request_error"
        );
        assert_eq!(
            ans("/serving-endpoints/x/invocations")["error_code"],
            "INVALID_PARAMETER_VALUE"
        );
        let rpc = ans("/mcp/fs");
        assert_eq!(rpc["error"]["code"], code::INVALID_REQUEST);
        assert_eq!(rpc["id"], Value::Null);
    }
}
