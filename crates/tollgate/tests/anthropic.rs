//! Anthropic end to end over real HTTP: the `anthropic` provider against the
//! mock upstream's `/v1/messages` (egress), the gateway's `/v1/messages`
//! ingress in front of OpenAI- and Anthropic-shaped upstreams, errors in
//! Anthropic's shape, lossless Anthropic → Anthropic extensions.
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock, db: &str) -> String {
    format!(
        r#"
server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}
storage: {{url: {db}}}
ledger: {{flush_interval: 20ms}}
providers:
  - {{name: ant, kind: anthropic, base_url: "{base}", api_key: {UPSTREAM_KEY}, forward_headers: ["x-mock-*"]}}
  - {{name: up, kind: openai, base_url: "{base}", api_key: {UPSTREAM_KEY}, forward_headers: ["x-mock-*"]}}
models:
  - {{name: claude-up, provider: ant, upstream_model: mock-claude}}
  - {{name: chat-up, provider: up, upstream_model: mock-chat}}
keys:
  - {{id: full, hash: "{full}", principal: alice, models: ["*"]}}
"#,
        base = mock.base(),
        full = hash(KEY),
    )
}

async fn setup() -> (Mock, Gateway) {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_gateway_with(|db| config(&mock, db)).await;
    (mock, gw)
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}})
}

/// `(event name, data)` pairs of an SSE body.
fn named_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|ev| {
            let name = ev
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data = ev.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

async fn messages(gw: &Gateway, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn egress_non_stream_speaks_messages_api_with_credentials() {
    let (mock, gw) = setup().await;
    let body = json!({"model": "claude-up", "max_tokens": 100, "temperature": 0.5, "stop": "END",
        "messages": [{"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there gateway"}]});
    let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-tollgate-resolved-model"],
        "ant/mock-claude"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text.split_whitespace().count(), 16);
    assert_eq!(v["usage"]["prompt_tokens"], 5); // "be brief" + 3 words
    assert_eq!(v["usage"]["completion_tokens"], 16);

    let got = mock.received().await;
    let last = got.last().unwrap();
    assert_eq!(last["path"], "/v1/messages");
    assert_eq!(last["headers"]["x-api-key"], UPSTREAM_KEY);
    assert_eq!(last["headers"]["anthropic-version"], "2023-06-01");
    assert!(last["headers"].get("authorization").is_none());
    assert_eq!(
        last["body"],
        json!({"model": "mock-claude", "max_tokens": 100, "temperature": 0.5,
            "stop_sequences": ["END"], "system": "be brief",
            "messages": [{"role": "user", "content": "hello there gateway"}]})
    );
}

#[tokio::test]
async fn egress_stream_with_forced_tool_call() {
    let (mock, gw) = setup().await;
    let body = json!({"model": "claude-up", "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [weather_tool()],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut args = String::new();
    let mut names = Vec::new();
    for c in &chunks {
        for call in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(call["index"], 0);
            if let Some(n) = call["function"]["name"].as_str() {
                names.push(n.to_string());
            }
            args.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(names, ["get_weather"]);
    let parsed: Value = serde_json::from_str(&args).unwrap();
    assert!(parsed["city"].is_string(), "{args}");
    let finishes: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!("tool_calls")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 3);
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);

    let got = mock.received().await;
    let sent = &got.last().unwrap()["body"];
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "get_weather"})
    );
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
}

#[tokio::test]
async fn egress_errors_keep_status_and_name_fields() {
    let (_mock, gw) = setup().await;
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-status", "429")
        .header("x-mock-retry-after", "7")
        .json(&chat_body("claude-up", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");

    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-status", "529")
        .json(&chat_body("claude-up", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded"),
        "{v}"
    );

    let mut body = chat_body("claude-up", "x");
    body["n"] = json!(2);
    let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_parameter");
    assert_eq!(v["error"]["param"], "n");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`n`"),
        "{v}"
    );
}

#[tokio::test]
async fn ingress_non_stream_against_openai_upstream() {
    let (mock, gw) = setup().await;
    let body = json!({"model": "chat-up", "max_tokens": 50, "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}]}]});
    let resp = messages(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 16);
    let got = mock.received().await;
    let sent = &got.last().unwrap()["body"];
    assert_eq!(got.last().unwrap()["path"], "/v1/chat/completions");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        sent["messages"][1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}})
    );
    assert_eq!(sent["max_tokens"], 50);
}

#[tokio::test]
async fn ingress_stream_tool_use_full_event_sequence() {
    let (_mock, gw) = setup().await;
    for model in ["chat-up", "claude-up"] {
        let body = json!({"model": model, "max_tokens": 200, "stream": true,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "messages": [{"role": "user", "content": "weather in Paris?"}]});
        let resp = messages(&gw, &body).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let events = named_events(&resp.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[..3],
            ["message_start", "ping", "content_block_start"],
            "{model}"
        );
        assert_eq!(
            names[names.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        for (n, d) in &events {
            assert_eq!(d["type"], n.as_str());
        }
        assert_eq!(events[2].1["content_block"]["type"], "tool_use");
        assert_eq!(events[2].1["content_block"]["name"], "get_weather");
        let json: String = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, d)| {
                assert_eq!(d["delta"]["type"], "input_json_delta");
                d["delta"]["partial_json"].as_str().unwrap().to_string()
            })
            .collect();
        let input: Value = serde_json::from_str(&json).unwrap();
        assert!(input["city"].is_string());
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["input_tokens"], 3);
        assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn ingress_text_stream_and_count_tokens() {
    let (_mock, gw) = setup().await;
    let body = json!({"model": "chat-up", "max_tokens": 5, "stream": true,
        "messages": [{"role": "user", "content": "count these words"}]});
    let events = named_events(&messages(&gw, &body).await.text().await.unwrap());
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text.split_whitespace().count(), 5);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 5);

    let resp = client()
        .post(gw.url("/v1/messages/count_tokens"))
        .header("x-api-key", KEY)
        .json(&json!({"model": "claude-up", "messages": [{"role": "user", "content": "count these words"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() >= 3, "{v}");
}

#[tokio::test]
async fn ingress_errors_in_anthropic_shape() {
    let (_mock, gw) = setup().await;
    let resp = client()
        .post(gw.url("/v1/messages"))
        .json(&json!({"model": "chat-up", "max_tokens": 5, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");

    let body =
        json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let resp = messages(&gw, &body).await;
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "not_found_error");

    let body = json!({"model": "chat-up", "max_tokens": 5, "container": "c1",
        "messages": [{"role": "user", "content": "x"}]});
    let resp = messages(&gw, &body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`container`"));

    let body = json!({"model": "chat-up", "max_tokens": 5,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": "x"}]});
    let v: Value = messages(&gw, &body).await.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools[0].type"),
        "{v}"
    );

    let resp = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("x-mock-status", "429")
        .header("x-mock-retry-after", "3")
        .json(&json!({"model": "chat-up", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

/// Anthropic in, Anthropic out: `cache_control`, `thinking`, `top_k`, tool
/// results with `is_error` and earlier thinking blocks reach the upstream
/// exactly; toward an OpenAI upstream the hints are dropped and what would
/// change the answer is refused.
#[tokio::test]
async fn anthropic_to_anthropic_is_lossless() {
    let (mock, gw) = setup().await;
    let messages_in = json!([
        {"role": "user", "content": [{"type": "text", "text": "look it up",
            "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call the tool", "signature": "sig-1"},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "not found", "is_error": true},
            {"type": "text", "text": "try again"}]}
    ]);
    let body = json!({"model": "claude-up", "max_tokens": 64, "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "lookup", "description": "d", "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral"}}],
        "messages": messages_in});
    let resp = messages(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    let got = mock.received().await;
    let sent = &got.last().unwrap()["body"];
    let mut expected = body.clone();
    expected["model"] = json!("mock-claude");
    assert_eq!(sent, &expected);

    // Toward an OpenAI upstream: `thinking` is refused by name …
    let mut to_openai = body.clone();
    to_openai["model"] = json!("chat-up");
    let resp = messages(&gw, &to_openai).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`thinking`"),
        "{v}"
    );
    // … and without it and top_k, the caching hints are dropped (documented).
    to_openai.as_object_mut().unwrap().remove("thinking");
    to_openai.as_object_mut().unwrap().remove("top_k");
    assert_eq!(messages(&gw, &to_openai).await.status(), 200);
    let got = mock.received().await;
    let sent = got.last().unwrap()["body"].to_string();
    assert!(
        !sent.contains("cache_control") && !sent.contains("thinking"),
        "{sent}"
    );
    assert!(sent.contains("[tool error] not found"), "{sent}");
}
