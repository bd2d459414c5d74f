//! The OpenAI Responses ingress (stateless) over real HTTP, in front of the
//! mock upstream: string and item input, function calls and their outputs,
//! the streaming event sequence, and 400s naming what is not supported.
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

async fn responses(gw: &Gateway, body: &Value) -> reqwest::Response {
    post(gw, "/v1/responses", Some(KEY), body).await
}

fn tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

#[tokio::test]
async fn string_input_and_instructions() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let body = json!({"model": "chat-up", "instructions": "be brief", "input": "hello there",
        "max_output_tokens": 4});
    let resp = responses(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(v["instructions"], "be brief");
    let text = v["output"][0]["content"][0]["text"].as_str().unwrap();
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(text.split_whitespace().count(), 4);
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 4);
    let got = mock.received().await;
    assert_eq!(
        got.last().unwrap()["body"]["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}])
    );
    assert_eq!(got.last().unwrap()["body"]["max_tokens"], 4);
}

#[tokio::test]
async fn function_call_round_trip_items() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let body = json!({"model": "chat-up", "tools": [tool()],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]}]});
    let v: Value = responses(&gw, &body).await.json().await.unwrap();
    assert_eq!(v["status"], "completed");
    let call = &v["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "get_weather");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string());

    // Feed the call and its output back, statelessly.
    let body = json!({"model": "chat-up", "tools": [tool()], "input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": call["call_id"], "name": "get_weather",
            "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]});
    let resp = responses(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    let got = mock.received().await;
    let sent = &got.last().unwrap()["body"]["messages"];
    assert_eq!(sent[1]["tool_calls"][0]["id"], call["call_id"]);
    assert_eq!(
        sent[2],
        json!({"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"})
    );
}

#[tokio::test]
async fn streaming_events() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let body = json!({"model": "chat-up", "input": "stream me", "stream": true});
    let resp = responses(&gw, &body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|ev| !ev.trim().is_empty())
        .map(|ev| {
            let name = ev.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data: Value =
                serde_json::from_str(ev.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                    .unwrap();
            assert_eq!(data["type"], name);
            data
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        kinds[kinds.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap().to_string())
        .collect();
    let done = events.last().unwrap();
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        deltas.as_str()
    );
    assert_eq!(done["response"]["usage"]["output_tokens"], 16);

    // A streamed function call.
    let body = json!({"model": "chat-up", "input": "weather?", "stream": true, "tools": [tool()],
        "tool_choice": "required"});
    let text = responses(&gw, &body).await.text().await.unwrap();
    assert!(text.contains("event: response.function_call_arguments.delta"));
    assert!(text.contains("event: response.function_call_arguments.done"));
}

#[tokio::test]
async fn unsupported_fields_are_named() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    for (extra, field) in [
        (
            json!({"previous_response_id": "resp_1"}),
            "`previous_response_id`",
        ),
        (json!({"store": true}), "`store`"),
        (
            json!({"tools": [{"type": "web_search"}]}),
            "`tools[0].type`",
        ),
        (
            json!({"input": [{"type": "reasoning", "summary": []}]}),
            "`input[0].type`",
        ),
    ] {
        let mut body = json!({"model": "chat-up", "input": "x"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = responses(&gw, &body).await;
        assert_eq!(resp.status(), 400, "{extra}");
        let v: Value = resp.json().await.unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }
}
