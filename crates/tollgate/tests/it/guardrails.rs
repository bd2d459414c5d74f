//! Guardrails through the gateway: input masking reaches the upstream
//! masked, blocks name policy and category without echoing the value,
//! output masking (whole and streamed, across chunk boundaries), blocks
//! mid-stream, and webhooks under every enforcement mode.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::post as axum_post;
use axum::{Json, Router};
use common::*;
use serde_json::{json, Value};

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "alice.smith@example.com";

/// A webhook that allows, blocks, rewrites (upper-cases), stalls or fails,
/// depending on the path.
async fn start_webhook() -> SocketAddr {
    let app = Router::new()
        .route(
            "/allow",
            axum_post(|| async { Json(json!({"action": "allow"})) }),
        )
        .route(
            "/block",
            axum_post(|| async { Json(json!({"action": "block", "reason": "no"})) }),
        )
        .route(
            "/rewrite",
            axum_post(|Json(v): Json<Value>| async move {
                let texts: Vec<String> = v["texts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_uppercase())
                    .collect();
                Json(json!({"action": "rewrite", "texts": texts}))
            }),
        )
        .route(
            "/slow",
            axum_post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Json(json!({"action": "allow"}))
            }),
        )
        .route(
            "/error",
            axum_post(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

fn config(mock: &Mock, hook: SocketAddr, dead: SocketAddr, db: &str) -> String {
    let mut policies = String::new();
    for (name, mode, path) in [
        ("hook-allow", "enforce", format!("http://{hook}/allow")),
        ("hook-block", "enforce", format!("http://{hook}/block")),
        ("hook-rewrite", "enforce", format!("http://{hook}/rewrite")),
        ("slow-enforce", "enforce", format!("http://{hook}/slow")),
        (
            "slow-ignore",
            "enforce_but_ignore_on_error",
            format!("http://{hook}/slow"),
        ),
        ("slow-audit", "audit", format!("http://{hook}/slow")),
        ("error-enforce", "enforce", format!("http://{hook}/error")),
        (
            "error-ignore",
            "enforce_but_ignore_on_error",
            format!("http://{hook}/error"),
        ),
        ("down-enforce", "enforce", format!("http://{dead}/x")),
        (
            "down-ignore",
            "enforce_but_ignore_on_error",
            format!("http://{dead}/x"),
        ),
        ("down-audit", "audit", format!("http://{dead}/x")),
    ] {
        policies.push_str(&format!(
            "    - {{ name: {name}, mode: {mode}, direction: input, applies_to: {{ models: [m-{name}] }}, webhook: {{ url: \"{path}\", timeout: 300ms }} }}\n"
        ));
    }
    let mut models = String::new();
    for m in [
        "m-mask",
        "m-block",
        "m-audit",
        "m-out",
        "m-out-block",
        "m-hook-allow",
        "m-hook-block",
        "m-hook-rewrite",
        "m-slow-enforce",
        "m-slow-ignore",
        "m-slow-audit",
        "m-error-enforce",
        "m-error-ignore",
        "m-down-enforce",
        "m-down-ignore",
        "m-down-audit",
    ] {
        models.push_str(&format!(
            "  - {{ name: {m}, provider: up, upstream_model: mock-chat }}\n"
        ));
    }
    format!(
        r#"
server: {{ listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }}
storage: {{ url: "{db}" }}
ledger: {{ flush_interval: 20ms }}
providers:
  - name: up
    kind: openai
    base_url: {base}
    forward_headers: ["x-mock-*"]
models:
{models}
guardrails:
  policies:
    - name: pii-mask
      applies_to: {{ models: [m-mask, m-audit] }}
      direction: input
      detectors: {{ builtins: [email, phone, credit_card] }}
      action: mask
    - name: card-block
      applies_to: {{ models: [m-block] }}
      direction: input
      detectors: {{ builtins: [email, credit_card] }}
      action: audit
      actions: {{ credit_card: block }}
    - name: pii-audit
      applies_to: {{ models: [m-audit] }}
      mode: audit
      detectors: {{ builtins: [email] }}
      action: block
    - name: out-mask
      applies_to: {{ models: [m-out] }}
      direction: output
      detectors: {{ builtins: [email, credit_card] }}
      action: mask
    - name: out-block
      applies_to: {{ models: [m-out-block] }}
      direction: output
      detectors: {{ builtins: [credit_card] }}
      action: block
{policies}
keys:
  - {{ id: k, hash: "{hash}", principal: tester, models: ["*"] }}
"#,
        base = mock.base(),
        hash = hash(KEY),
    )
}

async fn setup() -> (Mock, Gateway) {
    let mock = start_mock(None).await;
    let hook = start_webhook().await;
    let dead = dead_addr().await;
    let gw = start_gateway_with(|db| config(&mock, hook, dead, db)).await;
    (mock, gw)
}

async fn chat(
    gw: &Gateway,
    model: &str,
    content: &str,
    stream: bool,
    echo: bool,
) -> reqwest::Response {
    let mut body = chat_body(model, content);
    body["stream"] = json!(stream);
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body);
    if echo {
        req = req.header("x-mock-echo", "1");
    }
    req.send().await.unwrap()
}

fn last_upstream_text(got: &[Value]) -> String {
    got.last().unwrap()["body"]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn input_masking_reaches_the_upstream_masked() {
    let (mock, mut gw) = setup().await;
    let prompt = format!("mail {EMAIL} or {EMAIL}, card {CARD}, call +1-202-555-0143");
    let resp = chat(&gw, "m-mask", &prompt, false, false).await;
    assert_eq!(resp.status(), 200);
    let sent = last_upstream_text(&mock.received().await);
    assert!(!sent.contains(EMAIL) && !sent.contains("4111"), "{sent}");
    assert_eq!(
        sent.matches("[EMAIL_1]").count(),
        2,
        "same value, same placeholder: {sent}"
    );
    assert!(
        sent.contains("[CREDIT_CARD_1]") && sent.contains("[PHONE_1]"),
        "{sent}"
    );

    let store = gw.stop().await;
    let rec = &store.usage_since(0).await.unwrap()[0];
    let verdicts: Value = serde_json::from_str(&rec.guardrails).unwrap();
    let email = verdicts
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["category"] == "email")
        .unwrap();
    assert_eq!(
        (email["action"].as_str(), email["count"].as_u64()),
        (Some("mask"), Some(2))
    );
    let everything = format!("{rec:?}");
    assert!(
        !everything.contains(EMAIL) && !everything.contains("4111"),
        "value in the ledger"
    );
}

#[tokio::test]
async fn blocks_name_policy_and_category_without_echoing() {
    let (mock, gw) = setup().await;
    let resp = chat(
        &gw,
        "m-block",
        &format!("pay with {CARD} and mail {EMAIL}"),
        false,
        false,
    )
    .await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("card-block")
            && text.contains("credit_card")
            && text.contains("guardrail_blocked"),
        "{text}"
    );
    assert!(!text.contains("4111") && !text.contains(EMAIL), "{text}");
    assert!(
        mock.received().await.is_empty(),
        "a blocked request reached the upstream"
    );

    // Audit mode records but never blocks or rewrites.
    let resp = chat(&gw, "m-audit", &format!("hello {EMAIL}"), false, false).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn output_masking_whole_and_streamed_across_chunks() {
    let (_mock, gw) = setup().await;
    let prompt = format!("my card is {CARD} and mail {EMAIL} thanks");
    let v: Value = chat(&gw, "m-out", &prompt, false, true)
        .await
        .json()
        .await
        .unwrap();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("[CREDIT_CARD_1]") && text.contains("[EMAIL_1]"),
        "{text}"
    );
    assert!(!text.contains("4111"), "{text}");

    // The card arrives as four chunks ("4111", " 1111", …): still caught.
    let resp = chat(&gw, "m-out", &prompt, true, true).await;
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let streamed: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(
        !streamed.contains("4111") && !streamed.contains(EMAIL),
        "{streamed}"
    );
    assert!(
        streamed.contains("[CREDIT_CARD_1]") && streamed.contains("[EMAIL_1]"),
        "{streamed}"
    );
    assert!(
        streamed.starts_with("my card is") && streamed.ends_with("thanks"),
        "{streamed}"
    );
}

#[tokio::test]
async fn output_block_mid_stream_ends_with_an_error_event() {
    let (_mock, gw) = setup().await;
    let resp = chat(
        &gw,
        "m-out-block",
        &format!("number {CARD} end"),
        true,
        true,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("4111"), "{body}");
    let events = sse_data(&body);
    assert!(!events.contains(&"[DONE]".to_string()));
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "guardrail_blocked", "{last}");
    // Whole responses are refused the same way.
    let resp = chat(
        &gw,
        "m-out-block",
        &format!("number {CARD} end"),
        false,
        true,
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(!resp.text().await.unwrap().contains("4111"));
}

/// Each event's data, named or not.
fn event_data(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn output_block_mid_stream_in_the_callers_shape() {
    // The shape translation is the stream's last observer: what the
    // guardrail approved arrives translated, then the error event in the
    // caller's shape (numbered next, for the Responses API).
    let (_mock, gw) = setup().await;
    let content = format!("number {CARD} end");
    let send = |path: &'static str, body: Value| {
        let gw = &gw;
        async move {
            let resp = client()
                .post(gw.url(path))
                .bearer_auth(KEY)
                .header("x-mock-echo", "1")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let text = resp.text().await.unwrap();
            assert!(!text.contains("4111"), "{text}");
            (event_data(&text), text)
        }
    };

    let body = json!({"model": "m-out-block", "stream": true, "input": content});
    let (events, text) = send("/v1/responses", body).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{text}");
    assert_eq!(last["code"], "guardrail_blocked", "{text}");
    let numbers: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (0..events.len() as u64).collect::<Vec<_>>(),
        "{text}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "response.output_text.delta" && e["delta"] == "number"),
        "{text}"
    );

    let body = json!({"model": "m-out-block", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": content}]});
    let (events, text) = send("/v1/messages", body).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{text}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("guardrail"),
        "{text}"
    );
    assert!(
        !events.iter().any(|e| e["type"] == "message_stop"),
        "{text}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "content_block_delta" && e["delta"]["text"] == "number"),
        "{text}"
    );
}

#[tokio::test]
async fn webhooks_under_every_enforcement_mode() {
    let (mock, gw) = setup().await;
    let status = |m: &'static str| {
        let gw = &gw;
        async move {
            chat(gw, m, "hello there", false, false)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("m-hook-allow").await, 200);
    assert_eq!(status("m-hook-block").await, 400);
    assert_eq!(status("m-hook-rewrite").await, 200);
    assert_eq!(last_upstream_text(&mock.received().await), "HELLO THERE");
    for (model, want) in [
        ("m-slow-enforce", 503),
        ("m-slow-ignore", 200),
        ("m-slow-audit", 200),
        ("m-error-enforce", 503),
        ("m-error-ignore", 200),
        ("m-down-enforce", 503),
        ("m-down-ignore", 200),
        ("m-down-audit", 200),
    ] {
        assert_eq!(status(model).await, want, "{model}");
    }
}
