//! Request heads hyper refuses before any routing (a malformed request
//! line, a malformed header line, a header section over its limits) are
//! answered in the caller's error shape like every other error: OpenAI's by
//! default, Anthropic's under `/v1/messages`, Databricks' under
//! `/serving-endpoints/`, JSON-RPC under `/mcp`; JSON, a stable code, the
//! caller's request id, and the connection closed. Raw TCP, since no HTTP
//! client writes such heads.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway whose upstream is never called: hyper answers before routing.
async fn gateway() -> Gateway {
    let dead = dead_addr().await;
    start_gateway_with(|db| raw_config(db, dead, "", "")).await
}

/// An answer read off the wire: status, lower-cased head, JSON body.
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    }
}

/// Splits one response off `raw`.
fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {text:?}"));
    let status = head[9..12].parse().unwrap();
    let head = head.to_ascii_lowercase();
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    Answer { status, head, body }
}

/// Writes `request` on a new connection (from a task: the gateway may stop
/// reading an oversized head early) and reads until the gateway closes.
async fn exchange(gw: &Gateway, request: Vec<u8>) -> Answer {
    let (mut r, mut w) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    tokio::spawn(async move {
        let _ = w.write_all(&request).await;
        // Held open: the gateway, not the caller, closes the connection.
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(w);
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let read_all = async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("the connection was not closed after a refused head");
    parse(&out)
}

/// The body's code and type in the shape of `path`, checked for the shape.
fn code_of(path: &str, v: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if path.starts_with("/v1/messages") {
        assert_eq!(v["type"], "error", "{v}");
        assert!(!s(&v["error"]["message"]).is_empty(), "{v}");
        return (String::new(), s(&v["error"]["type"]));
    }
    if path.starts_with("/serving-endpoints/") {
        assert!(!s(&v["message"]).is_empty(), "{v}");
        return (s(&v["error_code"]), String::new());
    }
    if path.starts_with("/mcp") {
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        assert_eq!(v["id"], Value::Null, "{v}");
        assert_eq!(v["error"]["code"], -32600, "{v}");
        assert!(!s(&v["error"]["message"]).is_empty(), "{v}");
        return (
            s(&v["error"]["data"]["code"]),
            s(&v["error"]["data"]["type"]),
        );
    }
    assert!(!s(&v["error"]["message"]).is_empty(), "{v}");
    (s(&v["error"]["code"]), s(&v["error"]["type"]))
}

#[tokio::test]
async fn refused_heads_are_answered_in_the_callers_shape() {
    let gw = gateway().await;
    let big = "a".repeat(450 * 1024);
    let many: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    // (what is wrong, the head after the request target, status, code)
    let cases: [(&str, String, u16, &str); 4] = [
        (
            "request line",
            " HTTP/1.1 junk\r\nhost: t\r\n\r\n".to_string(),
            400,
            "malformed_request",
        ),
        (
            "header name",
            " HTTP/1.1\r\nhost: t\r\nx-request-id: RID\r\nbad header: y\r\n\r\n".to_string(),
            400,
            "malformed_request",
        ),
        (
            "header section over the size limit",
            format!(" HTTP/1.1\r\nhost: t\r\nx-request-id: RID\r\nx-big: {big}\r\n\r\n"),
            431,
            "request_header_fields_too_large",
        ),
        (
            "too many header fields",
            format!(" HTTP/1.1\r\nhost: t\r\nx-request-id: RID\r\n{many}\r\n"),
            431,
            "request_header_fields_too_large",
        ),
    ];
    let paths = [
        "/v1/chat/completions",
        "/v1/messages",
        "/mcp/files",
        "/serving-endpoints/chat-raw/invocations",
    ];
    for (i, (wrong, rest, status, code)) in cases.iter().enumerate() {
        for path in paths {
            let rid = format!("rid-{i}-{}", path.len());
            let rest = rest.replace("RID", &rid);
            let a = exchange(&gw, format!("POST {path}{rest}").into_bytes()).await;
            let what = format!("{wrong} on {path}: {} {}", a.head, a.body);
            assert_eq!(a.status, *status, "{what}");
            assert_eq!(a.header("content-type"), Some("application/json"), "{what}");
            assert_eq!(a.header("connection"), Some("close"), "{what}");
            let id = a.header("x-request-id").unwrap_or_default();
            if rest.contains(&rid) {
                assert_eq!(id, rid, "{what}");
            } else {
                assert!(!id.is_empty(), "{what}");
            }
            let (got_code, got_type) = code_of(path, &a.body);
            if path.starts_with("/serving-endpoints/") {
                let want = if *status == 400 {
                    "INVALID_PARAMETER_VALUE"
                } else {
                    "BAD_REQUEST"
                };
                assert_eq!(got_code, want, "{what}");
            } else {
                assert_eq!(got_type, "invalid_request_error", "{what}");
                if !path.starts_with("/v1/messages") {
                    assert_eq!(got_code, *code, "{what}");
                }
            }
        }
    }
    // The recorder is the test process's: other tests' refusals count too.
    let metrics = metrics_text(&gw).await;
    for status in ["400", "431"] {
        let name = format!("tollgate_malformed_requests_total{{status=\"{status}\"}} ");
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(n >= 8.0, "{name}{n}: {metrics}");
    }
}

#[tokio::test]
async fn a_refused_head_after_a_served_request_is_answered_in_its_shape() {
    let gw = gateway().await;
    let (mut r, mut w) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    let models =
        format!("GET /v1/models HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {KEY}\r\n\r\n");
    w.write_all(models.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut r).await;
    assert_eq!(status, 200, "{body}");
    // The same connection, kept alive: its next head is refused.
    w.write_all(b"POST /v1/messages HTTP/1.1\r\nx-request-id: second\r\nno colon here\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut out))
        .await
        .expect("not closed")
        .unwrap();
    let a = parse(&out);
    assert_eq!(a.status, 400, "{} {}", a.head, a.body);
    assert_eq!(a.header("x-request-id"), Some("second"));
    assert_eq!(
        (&a.body["type"], &a.body["error"]["type"]),
        (&json!("error"), &json!("invalid_request_error")),
        "{}",
        a.body
    );
}
