//! Upstream text never carries a credential the gateway holds back to the
//! caller, the ledger, the audit log or the logs (issue 24): an upstream
//! that echoes the key it received in its 401/400 body is scrubbed.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

/// The gateway's own upstream key (long, OpenAI-like).
const SECRET: &str = "sk-proj-Zq8yXw7VuT6sR5qP4oN3mL2kJ1";

#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

/// Every event at `level` and above from this thread (the test's runtime
/// and the in-process gateway on it), as JSON lines, while the guard lives.
pub(crate) fn capture_logs(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_writer(move || sink.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An upstream that answers 401 (or 400 when the body says `bad-request`)
/// with every credential header it received (and `x-seed-header`, a static
/// header the secrets test configures) in the message, whole, masked
/// OpenAI-style and cut short.
async fn echoing_upstream() -> std::net::SocketAddr {
    echoing_upstream_into(Arc::default()).await
}

/// `echoing_upstream`, also noting every credential header value it got.
pub(crate) async fn echoing_upstream_into(got: Arc<Mutex<Vec<String>>>) -> std::net::SocketAddr {
    raw_upstream(move |mut s, request| {
        let got = got.clone();
        async move {
        use tokio::io::AsyncWriteExt;
        let text = String::from_utf8_lossy(&request).to_string();
        let mut seen = Vec::new();
        for line in text.lines() {
            let lower = line.to_ascii_lowercase();
            for h in ["authorization:", "x-api-key:", "api-key:", "x-seed-header:"] {
                if lower.starts_with(h) {
                    seen.push(line[h.len()..].trim().to_string());
                }
            }
        }
        got.lock().unwrap().extend(seen.iter().cloned());
        let echoed: Vec<String> = seen
            .iter()
            .map(|v| {
                let token = v.rsplit(' ').next().unwrap_or(v);
                format!(
                    "{v} / {token} / {}****{} / {}…",
                    &token[..4],
                    &token[token.len() - 4..],
                    &token[..token.len() / 2]
                )
            })
            .collect();
        let status = if text.contains("bad-request") {
            "400 Bad Request"
        } else {
            "401 Unauthorized"
        };
        let body = json!({"error": {"message": format!("Incorrect API key provided: {}", echoed.join("; ")), "type": "invalid_request_error"}})
            .to_string();
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        }
    })
    .await
}

fn leaks(text: &str) -> Option<String> {
    // Any 6-character run of the key is a leak.
    let bytes = SECRET.as_bytes();
    (0..=bytes.len() - 6)
        .map(|i| &SECRET[i..i + 6])
        .find(|piece| text.contains(piece))
        .map(str::to_owned)
}

#[tokio::test]
async fn an_upstream_echoing_its_key_leaks_nothing() {
    let (logs, _guard) = capture_logs(tracing::Level::DEBUG);

    let upstream = echoing_upstream().await;
    let mut audit_path = std::path::PathBuf::new();
    let mut gw = start_gateway_with(|db| {
        let dir = std::path::Path::new(db.trim_start_matches("sqlite://"))
            .parent()
            .unwrap()
            .to_path_buf();
        audit_path = dir.join("audit.jsonl");
        format!(
            "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  watch_config: false\n\
             storage:\n  url: {db}\nledger:\n  flush_interval: 20ms\n\
             audit:\n  enabled: true\n  sink: {audit}\n\
             providers:\n\
             \x20 - {{name: oai, kind: openai, base_url: \"http://{upstream}/v1\", api_key: {SECRET}}}\n\
             \x20 - {{name: ant, kind: anthropic, base_url: \"http://{upstream}\", api_key: {SECRET}}}\n\
             models:\n\
             \x20 - {{name: m-oai, provider: oai}}\n\
             \x20 - {{name: m-ant, provider: ant, upstream_model: claude}}\n\
             keys:\n  - id: full\n    hash: {full}\n    principal: alice\n    models: [\"*\"]\n",
            audit = audit_path.display(),
            full = hash(KEY),
        )
    })
    .await;

    let mut n = 0;
    for model in ["m-oai", "m-ant"] {
        for stream in [false, true] {
            for content in ["hello", "bad-request"] {
                let body = json!({
                    "model": model,
                    "stream": stream,
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": content}],
                });
                let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                let case = format!("{model} stream={stream} {content}: {status} {text}");
                assert!(status == 502 || status == 400, "{case}");
                assert!(text.contains("[redacted]"), "the echo was relayed: {case}");
                assert_eq!(leaks(&text), None, "{case}");
                n += 1;
            }
        }
    }
    // The Anthropic ingress too.
    let resp = client()
        .post(gw.url("/v1/messages"))
        .bearer_auth(KEY)
        .json(&json!({"model": "m-ant", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert_eq!(leaks(&text), None, "/v1/messages: {text}");
    n += 1;

    let store = gw.stop().await;
    let recs = wait_records(&store, n).await;
    assert_eq!(recs.len(), n);
    for r in &recs {
        assert_eq!(leaks(&format!("{r:?}")), None, "ledger: {r:?}");
    }
    let audit = std::fs::read_to_string(&audit_path).unwrap_or_default();
    assert_eq!(leaks(&audit), None, "audit: {audit}");
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert_eq!(leaks(&logs), None, "logs: {logs}");
}

#[tokio::test]
async fn a_passed_through_caller_token_is_not_echoed_back() {
    let upstream = echoing_upstream().await;
    let gw =
        start_gateway_with(|db| raw_config(db, upstream, "", "    auth: {type: passthrough}\n"))
            .await;
    let resp = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-raw", "hi"),
    )
    .await;
    let text = resp.text().await.unwrap();
    assert!(text.contains("[redacted]"), "{text}");
    assert!(!text.contains(KEY), "{text}");
    assert!(!text.contains(&KEY[..KEY.len() / 2]), "{text}");
}
