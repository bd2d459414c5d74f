//! A tool call's arguments turned into the parts of the HTTP request, and
//! the HTTP answer turned into the MCP tool result. Pure (no I/O).

use http::{HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use super::{In, Operation, BODY_ARG};

/// The URL, the query pairs and the parameter headers of a request.
pub type RequestParts = (
    String,
    Vec<(String, String)>,
    Vec<(HeaderName, HeaderValue)>,
);

/// Why a call's arguments cannot be sent (the caller's JSON-RPC error
/// says it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    #[error("missing required argument {0:?}")]
    Missing(String),
    #[error("header parameter {0:?} is not a header name")]
    NotAHeaderName(String),
    #[error("argument {0:?} is not a valid header value")]
    NotAHeaderValue(String),
}

/// The request URL (path parameters substituted, percent-encoded), the
/// query pairs and the parameter headers of a call; `Err` names the
/// argument that is missing or cannot be sent.
pub fn request_parts(
    base: &str,
    op: &Operation,
    args: &Map<String, Value>,
) -> Result<RequestParts, ArgumentError> {
    let mut path = op.path.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for p in &op.params {
        let Some(v) = args.get(&p.arg).filter(|v| !v.is_null()) else {
            if p.required {
                return Err(ArgumentError::Missing(p.arg.clone()));
            }
            continue;
        };
        match p.location {
            In::Path => {
                path = path.replace(&format!("{{{}}}", p.name), &encode_segment(&text(v)));
            }
            In::Query => match v {
                // Arrays repeat the name (OpenAPI's default `form`, `explode`).
                Value::Array(items) => {
                    query.extend(items.iter().map(|i| (p.name.clone(), text(i))));
                }
                _ => query.push((p.name.clone(), text(v))),
            },
            In::Header => {
                let name = HeaderName::from_bytes(p.name.as_bytes())
                    .map_err(|_| ArgumentError::NotAHeaderName(p.name.clone()))?;
                let value = HeaderValue::from_str(&text(v))
                    .map_err(|_| ArgumentError::NotAHeaderValue(p.arg.clone()))?;
                headers.push((name, value));
            }
        }
    }
    if op.body == Some(true) && args.get(BODY_ARG).is_none_or(Value::is_null) {
        return Err(ArgumentError::Missing(BODY_ARG.to_string()));
    }
    Ok((format!("{base}{path}"), query, headers))
}

/// A scalar as its plain text; anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every byte but RFC 3986's unreserved characters percent-encoded, so a
/// value cannot add a path segment (`/`), a query (`?`) or a fragment.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The MCP tool result of an HTTP answer: its text as `content`; JSON also
/// as `structuredContent` (an object as is, anything else under
/// `result`); a 4xx or 5xx as `isError` with the status.
pub fn tool_result(status: http::StatusCode, json_answer: bool, text: String) -> Value {
    if !status.is_success() {
        let message = format!("HTTP {}: {text}", status.as_u16());
        return json!({"content": [{"type": "text", "text": message}], "isError": true});
    }
    let mut out = json!({"content": [{"type": "text", "text": text}], "isError": false});
    if json_answer {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            out["structuredContent"] = match v {
                Value::Object(_) => v,
                other => json!({ "result": other }),
            };
        }
    }
    out
}
