//! Whole responses: Anthropic message ⇄ OpenAI chat completion, stop
//! reasons and usage (cache tokens included) both ways.

use serde_json::{json, Map, Value};

use crate::chunk_read::Tokens;
use crate::{now_secs, AnswerError};

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

fn n(u: &Value, key: &str) -> u64 {
    u.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Anthropic usage → OpenAI usage. OpenAI's `prompt_tokens` counts cached
/// input too, so it is the sum of Anthropic's three input counters; the
/// cache split stays in `prompt_tokens_details`.
pub fn usage_to_openai(u: &Value) -> Value {
    let (input, read, created) = (
        n(u, "input_tokens"),
        n(u, "cache_read_input_tokens"),
        n(u, "cache_creation_input_tokens"),
    );
    let prompt = input + read + created;
    let completion = n(u, "output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": created},
    })
}

/// OpenAI usage → Anthropic usage (the inverse of `usage_to_openai`).
pub fn usage_from_openai(u: &Value) -> Value {
    Tokens::json(u).anthropic()
}

/// Anthropic message → OpenAI chat completion (egress). `Err` names what
/// could not be read.
pub fn to_openai(msg: &Value) -> Result<Value, AnswerError> {
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .ok_or(AnswerError::NoContent)?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking.push(b.clone());
            }
            Some("redacted_thinking") => thinking.push(b.clone()),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": b.get("input").map_or_else(|| "{}".to_string(), Value::to_string),
                },
            })),
            other => return Err(AnswerError::BlockType(other.unwrap_or("?").to_string())),
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(calls);
    }
    if !thinking.is_empty() {
        message["reasoning_content"] = Value::String(reasoning);
        message["thinking_blocks"] = Value::Array(thinking);
    }
    let stop = msg
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let mut choice = json!({
        "index": 0,
        "message": message,
        "logprobs": null,
        "finish_reason": finish_reason(stop),
    });
    stop_extensions(&mut choice, stop, msg.get("stop_sequence"));
    let mut out = json!({
        "id": msg.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": now_secs(),
        "model": msg.get("model").cloned().unwrap_or(Value::Null),
        "choices": [choice],
    });
    if let Some(u) = msg.get("usage") {
        out["usage"] = usage_to_openai(u);
    }
    Ok(out)
}

/// Keeps what `finish_reason` cannot say (`stop_sequence`, `pause_turn`, …)
/// as `stop_reason` / `stop_sequence` extensions on the choice.
pub fn stop_extensions(choice: &mut Value, stop: &str, sequence: Option<&Value>) {
    if stop_reason(finish_reason(stop)) != stop {
        choice["stop_reason"] = json!(stop);
    }
    if let Some(s) = sequence.filter(|s| !s.is_null()) {
        choice["stop_sequence"] = s.clone();
    }
}

/// The Anthropic stop reason of an OpenAI choice (extension first).
pub fn stop_of(choice: &Value) -> Value {
    stop_of_parts(
        choice.get("stop_reason").and_then(Value::as_str),
        choice.get("finish_reason").and_then(Value::as_str),
    )
}

/// The Anthropic stop reason from a choice's `stop_reason` extension and
/// its `finish_reason`.
pub(crate) fn stop_of_parts(extension: Option<&str>, finish: Option<&str>) -> Value {
    if let Some(s) = extension {
        return json!(s);
    }
    match finish {
        Some(f) => json!(stop_reason(f)),
        None => Value::Null,
    }
}

/// `msg_…` id for an OpenAI id.
pub fn message_id(id: Option<&str>) -> String {
    match id {
        Some(s) if s.starts_with("msg_") => s.to_string(),
        Some(s) => format!("msg_{s}"),
        None => "msg_tollgate".to_string(),
    }
}

/// OpenAI chat completion → Anthropic message (ingress).
pub fn from_openai(resp: &Value) -> Result<Value, AnswerError> {
    let choice = resp
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or(AnswerError::NoChoices)?;
    let message = choice.get("message").ok_or(AnswerError::NoMessage)?;
    let mut content: Vec<Value> = message
        .get("thinking_blocks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    let refusal = message.get("refusal").and_then(Value::as_str).unwrap_or("");
    for t in [text.as_str(), refusal] {
        if !t.is_empty() {
            content.push(json!({"type": "text", "text": t}));
        }
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = call.get("function").unwrap_or(&Value::Null);
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
        let input: Value = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|_| AnswerError::ToolArguments)?
        };
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or(Value::Null),
            "name": f.get("name").cloned().unwrap_or(Value::Null),
            "input": input,
        }));
    }
    let usage = resp.get("usage").map_or_else(
        || json!({"input_tokens": 0, "output_tokens": 0}),
        usage_from_openai,
    );
    Ok(json!({
        "id": message_id(resp.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_of(choice),
        "stop_sequence": choice.get("stop_sequence").cloned().unwrap_or(Value::Null),
        "usage": usage,
    }))
}

/// Anthropic error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 414 | 422 | 431 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type":…,"message":…}}`.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// An OpenAI-shaped object from a parsed JSON value, if it is one.
pub fn as_object(v: Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(o) => Some(o),
        _ => None,
    }
}
