//! The audit log: one JSON line per request with who/what/target/status,
//! headers with credentials redacted, and — for payload-logged models only —
//! bodies with every seeded PII value replaced by a placeholder. No seeded
//! value may appear anywhere: audit file, ledger, or the gateway's logs.

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

const SEEDS: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "536-22-1234",
    "DE89370400440532013000",
    "10.20.30.40",
];

#[tokio::test]
async fn payloads_are_redacted_and_nothing_leaks() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .init();

    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let mut audit_path = std::path::PathBuf::new();
    let mut gw = start_gateway_with(|db| {
        let dir = std::path::Path::new(db.trim_start_matches("sqlite://"))
            .parent()
            .unwrap()
            .to_path_buf();
        audit_path = dir.join("audit.jsonl");
        format!(
            "{}audit:\n  enabled: true\n  sink: {}\n  payload_models: [\"chat-up\"]\n",
            standard_config(&mock, dead, db),
            audit_path.display()
        )
    })
    .await;
    let text = format!(
        "Mail {} card {} ssn {} iban {} host {} please",
        SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3], SEEDS[4]
    );
    // Echoed back by the upstream: the response carries the values too.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-echo", "1")
        .header("x-request-id", "audit-1")
        .json(&chat_body("chat-up", &text))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text().await.unwrap().contains(SEEDS[0]),
        "the caller gets the real answer"
    );
    // A streamed call, a model without payload logging, a refused caller.
    let mut stream_body = chat_body("chat-up", &text);
    stream_body["stream"] = json!(true);
    let r = post(&gw, "/v1/chat/completions", Some(KEY), &stream_body).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-local", &text),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some("tg-wrong"),
        &chat_body("chat-up", &text),
    )
    .await;
    assert_eq!(r.status(), 401);

    let store = gw.stop().await;
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{audit}");
    let first = lines.iter().find(|l| l["request_id"] == "audit-1").unwrap();
    assert_eq!(first["principal"], "alice");
    assert_eq!(first["auth_method"], "api_key");
    assert_eq!(first["target"], "up/mock-chat");
    assert_eq!(first["status"], 200);
    assert_eq!(first["groups"], json!(["eng"]));
    assert!(first["input_tokens"].as_i64().unwrap() > 0);
    assert_eq!(first["headers"]["authorization"], "[REDACTED]");
    assert!(first["rate_limit"].is_null());
    let req = first["request_body"]["messages"][0]["content"]
        .as_str()
        .unwrap();
    assert!(req.contains("[EMAIL_1]") && req.contains("please"), "{req}");
    let resp = first["response_body"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert!(resp.contains("[EMAIL_1]"), "{resp}");
    let local = lines
        .iter()
        .find(|l| l["requested_model"] == "chat-local")
        .unwrap();
    assert!(
        local.get("request_body").is_none(),
        "payloads are opt-in per model"
    );
    let refused = lines.iter().find(|l| l["status"] == 401).unwrap();
    assert_eq!(refused["principal"], "");

    let ledger = serde_json::to_string(&store.usage_since(0).await.unwrap()).unwrap();
    let logs = poll_until(
        async || String::from_utf8(logs.0.lock().unwrap().clone()).unwrap(),
        |logs| logs.contains("audit-1"),
    )
    .await;
    assert!(logs.contains("audit-1"), "logs carry the request id");
    for seed in SEEDS {
        assert!(!audit.contains(seed), "{seed} in the audit log");
        assert!(!ledger.contains(seed), "{seed} in the ledger");
        assert!(!logs.contains(seed), "{seed} in the logs");
    }
    for (name, text) in [("audit", &audit), ("ledger", &ledger), ("logs", &logs)] {
        assert!(!text.contains(KEY), "the API key in the {name}");
        assert!(
            !text.contains(UPSTREAM_KEY),
            "the upstream key in the {name}"
        );
    }
}
