//! Callers get a stable code and an actionable message; transport detail
//! (upstream URLs and addresses, OS and decoder errors, webhook addresses)
//! goes to the log with the request id, never to the caller (issue 24).

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

/// Logs of this (current-thread) test, JSON lines.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// Text a caller must never see.
fn assert_no_internals(text: &str, addr: &std::net::SocketAddr) {
    let lower = text.to_ascii_lowercase();
    for bad in [
        addr.to_string(),
        addr.port().to_string(),
        "127.0.0.1".to_string(),
        "http://".to_string(),
        "os error".to_string(),
        "refused".to_string(),
        "chunk".to_string(),
        "decoding".to_string(),
        "error sending request".to_string(),
    ] {
        assert!(!lower.contains(&bad), "{bad:?} reached the caller: {text}");
    }
}

#[tokio::test]
async fn a_connect_failure_names_no_address_or_os_error() {
    let (logs, _g) = capture();
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let gw = start_gateway_with(|db| standard_config(&mock, dead, db)).await;
    for stream in [false, true] {
        let mut body = chat_body("chat-dead", "hi");
        body["stream"] = json!(stream);
        let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
        assert_eq!(resp.status(), 502);
        let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "upstream_error", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("could not be reached"),
            "{v}"
        );
        assert_no_internals(&v.to_string(), &dead);
        // The detail is in the log, with the request id.
        let log = logs.text();
        assert!(
            log.lines()
                .any(|l| l.contains(&rid) && l.contains(&dead.to_string())),
            "no logged detail for {rid}: {log}"
        );
    }
}

#[tokio::test]
async fn a_failed_webhook_names_no_url() {
    let (logs, _g) = capture();
    let mock = start_mock(None).await;
    let dead = dead_addr().await;
    let gw = start_gateway_with(|db| {
        format!(
            r#"
server: {{ listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }}
storage: {{ url: "{db}" }}
ledger: {{ flush_interval: 20ms }}
providers:
  - {{ name: up, kind: openai, base_url: "{base}" }}
models:
  - {{ name: m-hook, provider: up, upstream_model: mock-chat }}
guardrails:
  policies:
    - {{ name: down-enforce, mode: enforce, direction: input, applies_to: {{ models: [m-hook] }}, webhook: {{ url: "http://{dead}/secret-hook", timeout: 300ms }} }}
keys:
  - {{ id: full, hash: "{full}", principal: alice, models: ["*"] }}
"#,
            base = mock.base(),
            full = hash(KEY),
        )
    })
    .await;
    let resp = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("m-hook", "hi"),
    )
    .await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "guardrail_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("down-enforce"),
        "{v}"
    );
    assert_no_internals(&v.to_string(), &dead);
    assert!(!v.to_string().contains("secret-hook"), "{v}");
    assert!(logs.text().contains(&dead.to_string()), "detail not logged");
}

/// An upstream whose chunked body breaks after its first chunk.
async fn broken_chunks() -> std::net::SocketAddr {
    raw_upstream(|mut s, request| async move {
        use tokio::io::AsyncWriteExt;
        let stream = String::from_utf8_lossy(&request).contains("\"stream\":true");
        let (ctype, first) = if stream {
            (
                "text/event-stream",
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
            )
        } else {
            ("application/json", "{\"id\":\"c\",")
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n",
            first.len()
        );
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.flush().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let _ = s.write_all(b"zz-not-a-size\r\n\r\n").await;
        let _ = s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_cut_stream_names_no_decoder_error() {
    let (logs, _g) = capture();
    let upstream = broken_chunks().await;
    let gw = start_gateway_with(|db| raw_config(db, upstream, "", "")).await;

    let mut body = chat_body("chat-raw", "hi");
    body["stream"] = json!(true);
    let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{text}");
    assert_no_internals(&last.to_string(), &upstream);

    let resp = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-raw", "hi"),
    )
    .await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_no_internals(&v.to_string(), &upstream);
    // The decoder's own words are logged.
    assert!(
        logs.text().contains("chunk"),
        "detail not logged: {}",
        logs.text()
    );
}

#[tokio::test]
async fn a_virtual_models_deadline_is_not_blamed_on_the_provider() {
    let mock = start_mock(None).await;
    let gw = start_gateway_with(|db| {
        format!(
            r#"
server: {{ listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }}
storage: {{ url: "{db}" }}
ledger: {{ flush_interval: 20ms }}
providers:
  - {{ name: up, kind: openai, base_url: "{base}" }}
models:
  - {{ name: slow, provider: up, upstream_model: "mock-chat?latency_ms=3000" }}
virtual_models:
  - name: vm
    deadline: 300ms
    targets: [{{ model: slow }}]
keys:
  - {{ id: full, hash: "{full}", principal: alice, models: ["*"] }}
"#,
            base = mock.base(),
            full = hash(KEY),
        )
    })
    .await;
    let resp = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("vm", "hi"),
    )
    .await;
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("deadline"), "{msg}");
    assert!(!msg.contains("total timeout"), "{msg}");
}
