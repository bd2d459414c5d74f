//! Chat, completions and embeddings through the gateway to a real
//! OpenAI-shaped upstream: pass-through, headers, streaming order and usage.
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

#[tokio::test]
async fn non_streaming_passes_unknown_fields_and_credentials() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let mut body = chat_body("chat-up", "three little words");
    body["x_vendor_extension"] = json!({"nested": [1, 2, 3]});
    body["temperature"] = json!(0.25);
    let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-resolved-model"], "up/mock-chat");
    assert!(!resp.headers()["x-request-id"].is_empty());
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["completion_tokens"], 16);

    let got = mock.received().await;
    let last = got.last().unwrap();
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    assert_eq!(last["body"]["model"], "mock-chat");
    assert_eq!(
        last["body"]["x_vendor_extension"],
        json!({"nested": [1, 2, 3]})
    );
    assert_eq!(last["body"]["temperature"], json!(0.25));
    // The caller's gateway key never reaches the upstream.
    assert!(!last.to_string().contains(KEY));
}

#[tokio::test]
async fn caller_request_id_is_echoed() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-request-id", "trace-abc-123")
        .json(&chat_body("chat-local", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    assert_eq!(
        resp.headers()["x-tollgate-resolved-model"],
        "local/chat-local"
    );
}

async fn stream_text(gw: &Gateway, body: &Value) -> (reqwest::header::HeaderMap, Vec<String>) {
    let resp = post(gw, "/v1/chat/completions", Some(KEY), body).await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (headers, sse_data(&text))
}

#[tokio::test]
async fn streaming_order_done_and_usage() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    for model in ["chat-up", "chat-local"] {
        let mut body = chat_body(model, "stream me please");
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let (headers, events) = stream_text(&gw, &body).await;
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let usage_chunk = chunks.last().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["usage"]["completion_tokens"], 16);
        assert_eq!(usage_chunk["usage"]["prompt_tokens"], 3);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        // Same words, same order, as the non-streamed answer.
        let full: Value = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &chat_body(model, "stream me please"),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(
            text,
            full["choices"][0]["message"]["content"].as_str().unwrap()
        );
    }
}

#[tokio::test]
async fn streaming_without_include_usage_hides_the_usage_chunk() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let mut body = chat_body("chat-up", "a b c d");
    body["stream"] = json!(true);
    let (_, events) = stream_text(&gw, &body).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(
            v.get("usage").is_none_or(Value::is_null),
            "usage leaked: {e}"
        );
        assert_eq!(v["choices"].as_array().map(Vec::len), Some(1));
    }
    // ...while the gateway asked the upstream for it.
    let got = mock.received().await;
    assert_eq!(
        got.last().unwrap()["body"]["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn stream_chunks_arrive_as_produced() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let mut body = chat_body("chat-up", "slow stream");
    body["stream"] = json!(true);
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-tokens-per-sec", "20")
        .header("x-mock-tokens", "6")
        .json(&body)
        .send()
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let mut resp = resp;
    let mut arrivals = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        if !chunk.is_empty() {
            arrivals.push(start.elapsed());
        }
    }
    // 6 tokens at 20/s: several separate deliveries spread over ~300 ms,
    // not one buffered blob at the end.
    assert!(arrivals.len() >= 5, "{arrivals:?}");
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(spread.as_millis() >= 200, "{arrivals:?}");
}

#[tokio::test]
async fn completions_and_embeddings() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let resp = post(
        &gw,
        "/v1/completions",
        Some(KEY),
        &json!({"model": "chat-up", "prompt": "once upon", "max_tokens": 5}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["choices"][0]["finish_reason"], "length");

    let resp = post(
        &gw,
        "/v1/completions",
        Some(KEY),
        &json!({"model": "chat-local", "prompt": "x", "stream": true}),
    )
    .await;
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let resp = post(
        &gw,
        "/v1/embeddings",
        Some(KEY),
        &json!({"model": "embed-up", "input": ["a", "b"], "dimensions": 8}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-resolved-model"], "up/mock-embed");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);

    let wrong = post(
        &gw,
        "/v1/embeddings",
        Some(KEY),
        &json!({"model": "chat-up", "input": "a"}),
    )
    .await;
    assert_eq!(
        wrong.status(),
        200,
        "chat-up declares no endpoint list, so it serves embeddings too"
    );
    let wrong = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("embed-up", "a"),
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let v: Value = wrong.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_endpoint");
}

#[tokio::test]
async fn upstream_over_http2_and_http1() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    for (model, version) in [("chat-h2", "HTTP/2.0"), ("chat-up", "HTTP/1.1")] {
        for stream in [false, true] {
            let mut body = chat_body(model, "over the wire");
            body["stream"] = json!(stream);
            let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
            assert_eq!(resp.status(), 200);
            assert!(resp.text().await.unwrap().contains("chat"));
            let got = mock.received().await;
            assert_eq!(got.last().unwrap()["version"], version, "{model}");
        }
    }
}

#[tokio::test]
async fn gateway_owned_headers_are_never_forwarded() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let gw = start_gateway_with(|db| {
        standard_config(&mock, dead, db).replace(
            "forward_headers: [\"x-mock-*\"]\n  - name: up-h2",
            "forward_headers: [\"x-*\", \"cookie*\"]\n  - name: up-h2",
        )
    })
    .await;
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-api-key", KEY)
        .header("x-trace-tag", "kept")
        .header("cookie", "session=secret")
        .json(&chat_body("chat-up", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = mock.received().await;
    let headers = &got.last().unwrap()["headers"];
    assert_eq!(headers["x-trace-tag"], "kept");
    assert!(headers.get("x-api-key").is_none(), "{headers}");
    assert!(headers.get("cookie").is_none(), "{headers}");
    assert_eq!(headers["authorization"], format!("Bearer {UPSTREAM_KEY}"));
}

fn forced_tool_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 3}},
            "required": ["city", "days"]
        }}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
    })
}

#[tokio::test]
async fn forced_tool_choice_gets_a_schema_fitting_call_from_both_mocks() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    for model in ["chat-up", "chat-local"] {
        let resp = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &forced_tool_body(model, false),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{model}");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].is_string(), "{args}");
        assert!((1..=3).contains(&args["days"].as_i64().unwrap()), "{args}");

        // Streamed: the deltas concatenate to the same arguments.
        let resp = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &forced_tool_body(model, true),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let mut streamed = String::new();
        let mut finish = Value::Null;
        for data in sse_data(&text) {
            if data == "[DONE]" {
                continue;
            }
            let chunk: Value = serde_json::from_str(&data).unwrap();
            if let Some(piece) =
                chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            {
                streamed.push_str(piece);
            }
            if !chunk["choices"][0]["finish_reason"].is_null() {
                finish = chunk["choices"][0]["finish_reason"].clone();
            }
        }
        assert_eq!(finish, "tool_calls");
        assert_eq!(streamed, call["function"]["arguments"].as_str().unwrap());
    }
}
