//! Round trips: parse → serialise gives back the same JSON value, unknown
//! fields, `null`s and nested unknowns included; typed access reads what
//! was sent.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::anthropic::{MessageResponse, MessagesRequest};
use super::chat::{ChatChunk, ChatRequest, ChatResponse, Content};
use super::completions::CompletionRequest;
use super::embeddings::{EmbeddingsRequest, EmbeddingsResponse};
use super::responses::{ResponsesRequest, ResponsesResponse};
use super::Field;

/// Parses from text (the gateway's path) and from a value, and checks that
/// both write back the input.
pub(crate) fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> T {
    let from_text: T = serde_json::from_str(&v.to_string()).unwrap();
    assert_eq!(&serde_json::to_value(&from_text).unwrap(), v);
    let from_value: T = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&from_value).unwrap(), v);
    from_text
}

#[test]
fn chat_request_keeps_everything() {
    let v = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "be brief", "name": null},
            {"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}, "x_extra": [1, {"deep": null}]}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ],
        "stream": true,
        "stream_options": {"include_usage": true, "x_future": {"a": [null]}},
        "max_tokens": 100,
        "max_completion_tokens": null,
        "temperature": 0.7,
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}}],
        "tool_choice": "auto",
        "x_custom": {"nested": {"unknown": [1, 2.5, "three", null, true]}},
        "metadata": null
    });
    let r: ChatRequest = round_trip(&v);
    assert_eq!(r.model.get().map(String::as_str), Some("gpt-4o"));
    assert_eq!(r.stream, Field::Set(true));
    assert_eq!(r.max_tokens, Field::Set(100));
    assert_eq!(r.max_completion_tokens, Field::Null);
    assert!(r.rest.contains_key("metadata") && r.rest.contains_key("x_custom"));
    let msgs = r.messages.get().unwrap();
    assert!(matches!(msgs[1].content.get(), Some(Content::Parts(p)) if p.len() == 2));
    assert_eq!(msgs[2].content, Field::Null);
}

#[test]
fn minimal_and_empty_bodies_stay_as_sent() {
    for v in [
        json!({}),
        json!({"model": "m", "messages": []}),
        json!({"model": null, "stream": null, "tools": null, "stream_options": null}),
    ] {
        let _: ChatRequest = round_trip(&v);
    }
}

#[test]
fn chat_response_and_chunks() {
    let resp = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "system_fingerprint": null,
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "hi", "refusal": null, "annotations": []}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 0}}
    });
    let r: ChatResponse = round_trip(&resp);
    assert_eq!(r.usage.get().unwrap().prompt_tokens, Field::Set(3));
    for chunk in [
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"a\""}}]}, "finish_reason": null}]}),
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
        json!({"id": "c", "choices": [{"index": 0, "text": "once", "finish_reason": null}]}),
        json!({"error": {"message": "overloaded", "type": "server_error"}}),
    ] {
        let _: ChatChunk = round_trip(&chunk);
    }
}

#[test]
fn other_shapes() {
    let _: CompletionRequest = round_trip(&json!({"model": "m", "prompt": ["a", "b"],
        "stream": false, "echo": true, "logit_bias": {"50256": -100}}));
    let _: EmbeddingsRequest = round_trip(&json!({"model": "e", "input": [[1, 2], [3]],
        "dimensions": 8, "encoding_format": "base64", "user": null}));
    let _: EmbeddingsResponse = round_trip(&json!({"object": "list", "model": "e",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2}}));
    let _: ResponsesRequest = round_trip(&json!({"model": "m", "input": [{"role": "user",
        "content": [{"type": "input_text", "text": "hi"}]}], "instructions": "x",
        "reasoning": {"effort": "low"}, "store": false, "tools": []}));
    let _: ResponsesResponse = round_trip(&json!({"id": "resp_1", "object": "response",
        "status": "completed", "output": [], "usage": null, "x": {"y": null}}));
    let _: MessagesRequest = round_trip(&json!({"model": "claude", "max_tokens": 10,
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "enabled",
        "budget_tokens": 1024}, "metadata": {"user_id": null}}));
    let _: MessageResponse = round_trip(&json!({"id": "msg_1", "type": "message",
        "role": "assistant", "model": "claude", "stop_sequence": null,
        "content": [{"type": "text", "text": "hi", "citations": null},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2,
            "cache_read_input_tokens": 0, "service_tier": "standard"}}));
}

#[test]
fn keys_with_escapes_duplicates_and_wrong_types() {
    // An escaped key is still the named field.
    let r: ChatRequest = serde_json::from_str(r#"{"mo\u0064el":"m","x\"y":1}"#).unwrap();
    assert_eq!(r.model, Field::Set("m".into()));
    assert_eq!(r.rest.get("x\"y"), Some(&json!(1)));
    // A named field twice is refused, as serde's derive refuses it.
    let err = serde_json::from_str::<ChatRequest>(r#"{"model":"a","model":"b"}"#).unwrap_err();
    assert!(err.to_string().contains("duplicate field `model`"), "{err}");
    let err = serde_json::from_str::<ChatRequest>(r#"{"model":null,"model":"b"}"#).unwrap_err();
    assert!(err.to_string().contains("duplicate field"), "{err}");
    // A wrong type names what was expected; a non-object is refused.
    let err = serde_json::from_str::<ChatRequest>(r#"{"max_tokens":"50"}"#).unwrap_err();
    assert!(err.to_string().contains("expected u64"), "{err}");
    assert!(serde_json::from_str::<ChatRequest>("[1]").is_err());
    assert!(serde_json::from_str::<ChatChunk>("\"x\"").is_err());
}

#[test]
fn a_peek_reads_what_the_typed_chunk_reads() {
    use super::chat::ChunkPeek;
    for chunk in [
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "he\"llo"}, "logprobs": null, "finish_reason": null}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"a\""}}]}, "finish_reason": null}]}),
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
        json!({"id": "c", "choices": [{"index": 0, "text": "once", "finish_reason": null}]}),
        json!({"error": {"message": "overloaded", "type": "server_error"}}),
        json!({"error": null, "usage": null, "choices": null}),
    ] {
        let text = chunk.to_string();
        let (mut a, mut b) = (String::new(), String::new());
        let full: ChatChunk = serde_json::from_str(&text).unwrap();
        let peek: ChunkPeek<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(full.facts(&mut a), peek.facts(&mut b), "{text}");
        assert_eq!(a, b);
    }
}
