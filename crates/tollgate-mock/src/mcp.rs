//! A Streamable HTTP MCP server face (`POST /mcp`), fast enough to measure
//! the gateway's own cost on a tool call: `initialize` (sets a session id),
//! `tools/list` (`echo`, `add`, then `tool_3` … up to `?tools=N`, default
//! 3), `tools/call` (`echo` returns `arguments.text`, `add` the sum, others
//! their arguments), `ping`; notifications get 202. JSON answers only.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

static SESSIONS: AtomicU64 = AtomicU64::new(1);

#[derive(Deserialize)]
struct Opts {
    #[serde(default = "default_tools")]
    tools: usize,
}

fn default_tools() -> usize {
    3
}

pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/mcp", post(handle))
}

async fn handle(
    Query(opts): Query<Opts>,
    _headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(Value::Null, -32700, "parse error");
    };
    let id = msg.get("id").cloned();
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let Some(id) = id else {
        return StatusCode::ACCEPTED.into_response();
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "initialize" => {
            let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
            let mut resp = reply(
                &id,
                json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {"listChanged": false}},
                    "serverInfo": {"name": "tollgate-mock", "version": "1"},
                }),
            );
            if let Ok(v) = format!("mock-{n}").parse() {
                resp.headers_mut().insert("mcp-session-id", v);
            }
            return resp;
        }
        "ping" => json!({}),
        "tools/list" => json!({"tools": tools(opts.tools.min(10_000))}),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            let args = params.get("arguments").cloned().unwrap_or(Value::Null);
            let text = match name {
                "echo" => args
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                "add" => {
                    let n = |k: &str| args.get(k).and_then(Value::as_i64).unwrap_or(0);
                    (n("a") + n("b")).to_string()
                }
                _ => args.to_string(),
            };
            json!({"content": [{"type": "text", "text": text}], "isError": false})
        }
        _ => return rpc_error(id, -32601, "Method not found"),
    };
    reply(&id, result)
}

fn tools(n: usize) -> Vec<Value> {
    let schema = |props: Value| json!({"type": "object", "properties": props});
    let mut out = vec![
        json!({"name": "echo", "description": "Repeat the text back.",
               "inputSchema": schema(json!({"text": {"type": "string"}}))}),
        json!({"name": "add", "description": "Add two numbers.",
               "inputSchema": schema(json!({"a": {"type": "integer"}, "b": {"type": "integer"}}))}),
    ];
    for i in out.len()..n {
        out.push(
            json!({"name": format!("tool_{i}"), "description": format!("Mock tool number {i}."),
                        "inputSchema": schema(json!({"q": {"type": "string"}}))}),
        );
    }
    out.truncate(n.max(2));
    out
}

fn reply(id: &Value, result: Value) -> Response {
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

fn rpc_error(id: Value, code: i64, message: &str) -> Response {
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        .into_response()
}
