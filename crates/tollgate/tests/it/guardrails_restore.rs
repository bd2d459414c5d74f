//! Guardrail placeholder restore through the gateway (issue 25): the
//! upstream (the mock, echoing the prompt back) sees only placeholders,
//! the caller reads its own values back, in whole and streamed answers
//! (a placeholder split across chunks included), in every API shape; an
//! output policy sees the answer before the restore; a cached answer holds
//! placeholders, so another caller's hit gets its own values; nothing
//! restored reaches the ledger.

use crate::common;

use common::*;
use serde_json::{json, Value};

const EMAIL: &str = "alice.smith@example.com";
const PHONE: &str = "+1-202-555-0143";

fn config(mock: &Mock, db: &str) -> String {
    format!(
        r#"{head}
providers:
  - name: up
    kind: openai
    base_url: {base}
    forward_headers: ["x-mock-*"]
models:
  - {{ name: m-restore, provider: up, upstream_model: mock-chat }}
  - {{ name: m-plain, provider: up, upstream_model: mock-chat }}
  - {{ name: m-both, provider: up, upstream_model: mock-chat }}
  - {{ name: m-cached, provider: up, upstream_model: mock-chat, cache: {{ ttl: 1m }} }}
guardrails:
  policies:
    - name: restore-pii
      applies_to: {{ models: [m-restore, m-both, m-cached] }}
      direction: input
      detectors: {{ builtins: [email, phone] }}
      action: mask
      restore: true
    - name: mask-only
      applies_to: {{ models: [m-plain] }}
      direction: input
      detectors: {{ builtins: [email, phone] }}
      action: mask
    - name: out-mask
      applies_to: {{ models: [m-both] }}
      direction: output
      detectors: {{ builtins: [email] }}
      action: mask
keys:
  - {{ id: k, hash: "{hash}", principal: tester, models: ["*"] }}
"#,
        head = config_head(db),
        base = mock.base(),
        hash = hash(KEY),
    )
}

async fn setup() -> (Mock, Gateway) {
    let mock = start_mock(None).await;
    let gw = start_gateway_with(|db| config(&mock, db)).await;
    (mock, gw)
}

fn prompt() -> String {
    format!("mail {EMAIL} or call {PHONE} today")
}

/// A POST with the mock told to echo the prompt, streamed content in
/// pieces of `chunk` characters.
async fn send(gw: &Gateway, path: &str, body: &Value, chunk: Option<usize>) -> reqwest::Response {
    let mut req = client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-echo", "1")
        .json(body);
    if let Some(n) = chunk {
        req = req.header("x-mock-chunk-chars", n.to_string());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp
}

/// A chat call; the response (status 200 checked).
async fn send_chat(gw: &Gateway, model: &str, content: &str, stream: bool) -> reqwest::Response {
    send(
        gw,
        "/v1/chat/completions",
        &chat(model, content, stream),
        None,
    )
    .await
}

/// A whole chat answer's content.
async fn answer(gw: &Gateway, model: &str, content: &str) -> Value {
    let v: Value = send_chat(gw, model, content, false)
        .await
        .json()
        .await
        .unwrap();
    v["choices"][0]["message"]["content"].clone()
}

fn chat(model: &str, content: &str, stream: bool) -> Value {
    let mut body = chat_body(model, content);
    body["stream"] = json!(stream);
    body
}

/// The streamed chat content, and each `data` event's text.
fn streamed_content(body: &str) -> (String, Vec<String>) {
    let events = sse_data(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let pieces: Vec<String> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    (pieces.concat(), pieces)
}

async fn upstream_saw(mock: &Mock) -> String {
    let got = mock.received().await;
    got.last().unwrap()["body"]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn whole_answers_hold_the_callers_values_the_upstream_only_placeholders() {
    let (mock, mut gw) = setup().await;
    assert_eq!(answer(&gw, "m-restore", &prompt()).await, prompt());
    assert_eq!(
        upstream_saw(&mock).await,
        "mail [EMAIL_1] or call [PHONE_1] today"
    );

    // A policy without `restore` leaves the placeholders in the answer.
    assert_eq!(
        answer(&gw, "m-plain", &prompt()).await,
        "mail [EMAIL_1] or call [PHONE_1] today"
    );

    // An output policy sees the answer before the restore: it finds no
    // email in `[EMAIL_1]`, and the restored address is not masked again.
    assert_eq!(answer(&gw, "m-both", &prompt()).await, prompt());

    // A placeholder the caller wrote itself is never minted, so it is
    // never turned into a value.
    let own = format!("I wrote [EMAIL_1] myself, mail {EMAIL}");
    assert_eq!(answer(&gw, "m-restore", &own).await, own);
    assert_eq!(
        upstream_saw(&mock).await,
        "I wrote [EMAIL_1] myself, mail [EMAIL_2]"
    );

    // Completions (`prompt` → `choices[].text`) too.
    let v: Value = send(
        &gw,
        "/v1/completions",
        &json!({"model": "m-restore", "prompt": prompt()}),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["choices"][0]["text"], prompt());

    let store = gw.stop().await;
    let records = wait_records(&store, 5).await;
    let everything = format!("{records:?}");
    assert!(
        !everything.contains(EMAIL) && !everything.contains("555-0143"),
        "a value reached the ledger"
    );
}

#[tokio::test]
async fn streams_restore_placeholders_split_across_chunks() {
    let (_mock, gw) = setup().await;
    // Pieces of 1, 2, 3 and 4 characters split `[EMAIL_1]` everywhere.
    for n in [1, 2, 3, 4, 64] {
        let resp = send(
            &gw,
            "/v1/chat/completions",
            &chat("m-restore", &prompt(), true),
            Some(n),
        )
        .await;
        let (text, pieces) = streamed_content(&resp.text().await.unwrap());
        assert_eq!(text, prompt(), "pieces of {n}");
        assert!(
            pieces.iter().all(|p| !p.contains('[')),
            "a placeholder piece reached the caller: {pieces:?}"
        );
        // Only a partial placeholder is held: the text before it leaves
        // with its own chunk.
        if n == 1 {
            assert_eq!(pieces.first().map(String::as_str), Some(""), "{pieces:?}");
            assert_eq!(pieces.get(1).map(String::as_str), Some("m"), "{pieces:?}");
        }
    }
    // With an output policy on the same stream, in words.
    let resp = send(
        &gw,
        "/v1/chat/completions",
        &chat("m-both", &prompt(), true),
        Some(5),
    )
    .await;
    assert_eq!(streamed_content(&resp.text().await.unwrap()).0, prompt());

    // Completions stream `choices[].text`.
    let resp = send(
        &gw,
        "/v1/completions",
        &json!({"model": "m-restore", "prompt": prompt(), "stream": true}),
        Some(3),
    )
    .await;
    let text: String = sse_data(&resp.text().await.unwrap())
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["text"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, prompt());
}

/// Anthropic Messages, Responses and Databricks callers, whole and
/// streamed: the restore runs on the gateway's OpenAI form, before the
/// answer is translated into the caller's shape.
#[tokio::test]
async fn every_api_shape_gets_its_values_back() {
    let (_mock, gw) = setup().await;
    let p = prompt();
    let messages = json!({"model": "m-restore", "max_tokens": 200,
        "messages": [{"role": "user", "content": p}]});
    let v: Value = send(&gw, "/v1/messages", &messages, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], p, "{v}");

    let mut streamed = messages.clone();
    streamed["stream"] = json!(true);
    let body = send(&gw, "/v1/messages", &streamed, Some(3))
        .await
        .text()
        .await
        .unwrap();
    let text: String = body
        .split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, p, "{body}");

    let responses = json!({"model": "m-restore", "input": p});
    let v: Value = send(&gw, "/v1/responses", &responses, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], p, "{v}");
    let mut streamed = responses.clone();
    streamed["stream"] = json!(true);
    let body = send(&gw, "/v1/responses", &streamed, Some(3))
        .await
        .text()
        .await
        .unwrap();
    let text: String = body
        .split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, p, "{body}");

    let dbx = json!({"messages": [{"role": "user", "content": p}]});
    let path = "/serving-endpoints/m-restore/invocations";
    let v: Value = send(&gw, path, &dbx, None).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], p, "{v}");
    let mut streamed = dbx.clone();
    streamed["stream"] = json!(true);
    let body = send(&gw, path, &streamed, Some(3))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(streamed_content(&body).0, p);
}

/// The cache keys on the masked request and stores the answer as the
/// model wrote it (placeholders): a second caller with another address
/// hits the same entry and reads its own address back, never the first's.
#[tokio::test]
async fn a_cached_answer_holds_placeholders_and_each_hit_restores_its_own() {
    let (mock, gw) = setup().await;
    let other = "bob.jones@example.org";
    let first = format!("write to {EMAIL} please");
    let second = format!("write to {other} please");
    let resp = send_chat(&gw, "m-cached", &first, false).await;
    assert_eq!(resp.headers()["x-tollgate-cache"], "miss");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], first);

    let resp = send_chat(&gw, "m-cached", &second, false).await;
    assert_eq!(resp.headers()["x-tollgate-cache"], "hit");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], second);

    // A streamed hit is replayed from the restored answer.
    let resp = send_chat(&gw, "m-cached", &second, true).await;
    assert_eq!(resp.headers()["x-tollgate-cache"], "hit");
    assert_eq!(streamed_content(&resp.text().await.unwrap()).0, second);
    assert_eq!(mock.received().await.len(), 1, "hits reached the upstream");
}
