//! A cached answer replayed as a stream: OpenAI chunk events (the whole
//! text of each choice in one chunk, then its `finish_reason`), the usage
//! chunk when the caller asked for it, then `[DONE]`.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};

/// SSE bytes for a non-streaming chat (`chat`) or text completion `body`;
/// `None` when the body is not a JSON object with `choices`.
pub fn to_sse(body: &[u8], chat: bool, include_usage: bool) -> Option<Bytes> {
    let Ok(Value::Object(resp)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let mut head = Map::new();
    for k in ["id", "created", "model", "system_fingerprint"] {
        if let Some(v) = resp.get(k) {
            head.insert(k.into(), v.clone());
        }
    }
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    head.insert("object".into(), json!(object));
    // Every event starts with the same fields: serialised once.
    let head = Value::Object(head).to_string();
    let head = head.strip_suffix('}').unwrap_or(&head);
    let mut out = BytesMut::with_capacity(body.len() * 2 + 256);
    let mut event = |choices: Value, usage: Option<&Value>| {
        out.put_slice(b"data: ");
        out.put_slice(head.as_bytes());
        out.put_slice(b",\"choices\":");
        out.put_slice(choices.to_string().as_bytes());
        if let Some(u) = usage {
            out.put_slice(b",\"usage\":");
            out.put_slice(u.to_string().as_bytes());
        }
        out.put_slice(b"}\n\n");
    };
    for c in resp.get("choices").and_then(Value::as_array)?.iter() {
        let index = c.get("index").cloned().unwrap_or(json!(0));
        let finish = c.get("finish_reason").cloned().unwrap_or(Value::Null);
        if chat {
            let msg = c.get("message").cloned().unwrap_or(json!({}));
            let mut delta = Map::new();
            delta.insert(
                "role".into(),
                msg.get("role").cloned().unwrap_or(json!("assistant")),
            );
            for k in ["content", "refusal"] {
                if let Some(v) = msg.get(k).filter(|v| !v.is_null()) {
                    delta.insert(k.into(), v.clone());
                }
            }
            if let Some(Value::Array(calls)) = msg.get("tool_calls") {
                let calls: Vec<Value> = calls
                    .iter()
                    .enumerate()
                    .map(|(i, call)| {
                        let mut call = call.as_object().cloned().unwrap_or_default();
                        call.insert("index".into(), json!(i));
                        Value::Object(call)
                    })
                    .collect();
                delta.insert("tool_calls".into(), Value::Array(calls));
            }
            event(
                json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": null}]),
                None,
            );
            event(
                json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}]),
                None,
            );
        } else {
            let text = c.get("text").cloned().unwrap_or(json!(""));
            event(
                json!([{"index": index, "text": text, "logprobs": null, "finish_reason": null}]),
                None,
            );
            event(
                json!([{"index": index, "text": "", "logprobs": null, "finish_reason": finish}]),
                None,
            );
        }
    }
    if include_usage {
        if let Some(u) = resp.get("usage") {
            event(json!([]), Some(u));
        }
    }
    out.put_slice(b"data: [DONE]\n\n");
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::super::fill::StreamFill;
    use super::*;
    use tollgate_config::Endpoint;

    fn events(sse: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(sse)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_owned))
            .collect()
    }

    #[test]
    fn a_stream_assembles_and_replays_to_the_same_answer() {
        let mut fill = StreamFill::new(Endpoint::Chat);
        for data in [
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ] {
            fill.push(data);
        }
        let body = fill.finish(3, 2).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], "Hello");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(v["usage"]["total_tokens"], 5);

        let with = events(&to_sse(&body, true, true).unwrap());
        assert_eq!(with.last().map(String::as_str), Some("[DONE]"));
        let first: Value = serde_json::from_str(&with[0]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["content"], "Hello");
        let usage: Value = serde_json::from_str(&with[with.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["prompt_tokens"], 3);
        let without = events(&to_sse(&body, true, false).unwrap());
        assert_eq!(without.len(), with.len() - 1);
    }

    #[test]
    fn error_or_logprobs_spoil_a_stream() {
        let mut f = StreamFill::new(Endpoint::Chat);
        f.push(r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#);
        f.push(r#"{"error":{"message":"x"}}"#);
        assert!(f.finish(1, 1).is_none());
        let mut f = StreamFill::new(Endpoint::Chat);
        f.push(r#"{"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[]}}]}"#);
        assert!(f.finish(1, 1).is_none());
    }
}
