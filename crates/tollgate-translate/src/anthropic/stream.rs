//! Streams, one event at a time in both directions:
//! - `ToOpenAi` (egress): Anthropic SSE events (message_start,
//!   content_block_start/delta/stop, message_delta, message_stop, ping,
//!   error) → OpenAI `chat.completion.chunk` events, usage chunk, `[DONE]`.
//! - `FromOpenAi` (ingress): OpenAI chunks → the full Anthropic event
//!   sequence, tool calls as `tool_use` blocks with `input_json_delta`.
//!   It is handed each chunk typed (`on_chunk`: the gateway's stream
//!   parsed it once for all its observers), `[DONE]` (`on_done`), or an
//!   event that is not a typed chunk (`on_untyped`); `on_data` sorts an
//!   unparsed event's data into one of those.
//!
//! Thinking travels in OpenAI chunks as `delta.reasoning_content` (text)
//! and `delta.thinking_blocks` (signatures, redacted blocks).

use std::collections::HashMap;

use serde_json::{json, Value};

use super::response::{finish_reason, message_id, stop_extensions, stop_of_parts, usage_to_openai};
use crate::chunk_read::Chunk;
use crate::{data_event, named_event, now_secs, AnswerError};

/// Anthropic SSE → OpenAI chunk SSE.
pub struct ToOpenAi {
    include_usage: bool,
    id: Value,
    model: Value,
    created: u64,
    usage: Value,
    /// Anthropic content-block index → OpenAI tool-call index.
    tools: HashMap<u64, usize>,
    done: bool,
}

impl ToOpenAi {
    pub fn new(include_usage: bool) -> Self {
        Self {
            include_usage,
            id: Value::Null,
            model: Value::Null,
            created: now_secs(),
            usage: json!({}),
            tools: HashMap::new(),
            done: false,
        }
    }

    /// Whether `message_stop` has been seen.
    pub fn done(&self) -> bool {
        self.done
    }

    fn chunk(
        &self,
        out: &mut Vec<u8>,
        delta: Value,
        finish: Value,
        ext: Option<(&str, Option<&Value>)>,
    ) {
        let mut choice =
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish});
        if let Some((stop, seq)) = ext {
            stop_extensions(&mut choice, stop, seq);
        }
        data_event(
            out,
            &json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [choice]}),
        );
    }

    /// Translates one event's `data`; `Err` carries an upstream error
    /// event's message (the stream must end with an error).
    pub fn on_data(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), AnswerError> {
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            return Ok(());
        };
        let str_at = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or("");
        match str_at("/type") {
            "message_start" => {
                let m = ev.get("message").unwrap_or(&Value::Null);
                self.id = m.get("id").cloned().unwrap_or(Value::Null);
                self.model = m.get("model").cloned().unwrap_or(Value::Null);
                if let Some(u) = m.get("usage") {
                    self.merge_usage(u);
                }
                self.chunk(
                    out,
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                    None,
                );
            }
            "content_block_start" => {
                let index = ev.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = ev.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let k = self.tools.len();
                        self.tools.insert(index, k);
                        self.chunk(
                            out,
                            json!({"tool_calls": [{"index": k, "id": block.get("id"), "type": "function",
                                "function": {"name": block.get("name"), "arguments": ""}}]}),
                            Value::Null,
                            None,
                        );
                    }
                    Some("redacted_thinking") => {
                        self.chunk(out, json!({"thinking_blocks": [block]}), Value::Null, None)
                    }
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            self.chunk(out, json!({"content": text}), Value::Null, None);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = ev.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = ev.get("delta").unwrap_or(&Value::Null);
                let empty = ["text", "partial_json", "thinking"]
                    .iter()
                    .any(|k| d.get(*k).and_then(Value::as_str) == Some(""));
                if empty {
                    return Ok(());
                }
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        self.chunk(out, json!({"content": d.get("text")}), Value::Null, None)
                    }
                    Some("input_json_delta") => {
                        let k = self.tools.get(&index).copied().unwrap_or(0);
                        self.chunk(
                            out,
                            json!({"tool_calls": [{"index": k,
                                "function": {"arguments": d.get("partial_json")}}]}),
                            Value::Null,
                            None,
                        );
                    }
                    Some("thinking_delta") => self.chunk(
                        out,
                        json!({"reasoning_content": d.get("thinking")}),
                        Value::Null,
                        None,
                    ),
                    Some("signature_delta") => self.chunk(
                        out,
                        json!({"thinking_blocks": [{"type": "thinking", "thinking": "",
                            "signature": d.get("signature")}]}),
                        Value::Null,
                        None,
                    ),
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = ev.get("usage") {
                    self.merge_usage(u);
                }
                let stop = str_at("/delta/stop_reason").to_string();
                if !stop.is_empty() {
                    let seq = ev.pointer("/delta/stop_sequence").cloned();
                    self.chunk(
                        out,
                        json!({}),
                        json!(finish_reason(&stop)),
                        Some((&stop, seq.as_ref())),
                    );
                }
            }
            "message_stop" => {
                if self.include_usage {
                    data_event(
                        out,
                        &json!({"id": self.id, "object": "chat.completion.chunk",
                            "created": self.created, "model": self.model, "choices": [],
                            "usage": usage_to_openai(&self.usage)}),
                    );
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.done = true;
            }
            "error" => {
                return Err(AnswerError::Upstream {
                    kind: str_at("/error/type").to_string(),
                    message: str_at("/error/message").to_string(),
                })
            }
            _ => {} // ping, content_block_stop, future event types
        }
        Ok(())
    }

    fn merge_usage(&mut self, u: &Value) {
        if let (Some(dst), Some(src)) = (self.usage.as_object_mut(), u.as_object()) {
            for (k, v) in src.iter().filter(|(_, v)| !v.is_null()) {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool,
}

/// OpenAI chunk SSE → Anthropic SSE.
#[derive(Default)]
pub struct FromOpenAi {
    started: bool,
    finished: bool,
    next_index: u64,
    open: Option<(Open, u64)>,
    /// OpenAI tool-call index → Anthropic block index.
    tools: HashMap<u64, u64>,
    stop: Value,
    stop_sequence: Value,
    usage: Option<Value>,
}

/// The `error` event that ends a Messages stream after it began: the
/// gateway's failure (status and message) as Anthropic frames it.
pub fn error_event(out: &mut Vec<u8>, status: u16, message: &str) {
    named_event(out, "error", &super::response::error_body(status, message));
}

impl FromOpenAi {
    pub fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, chunk: &Chunk, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        named_event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(chunk.id.as_str()), "type": "message", "role": "assistant",
                "model": chunk.model.to_value(), "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        );
        named_event(out, "ping", &json!({"type": "ping"}));
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((_, index)) = self.open.take() {
            named_event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// The open block of `kind`, opening a new one (with `block`) if needed.
    fn ensure(&mut self, kind: Open, block: Value, out: &mut Vec<u8>) -> u64 {
        if let Some((k, i)) = self.open {
            if k == kind && kind != Open::Tool {
                return i;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        named_event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        self.open = Some((kind, index));
        index
    }

    fn delta(out: &mut Vec<u8>, index: u64, delta: Value) {
        named_event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    crate::chunk_read::chunk_entry_points!();

    fn on_read(&mut self, chunk: &Chunk, out: &mut Vec<u8>) {
        if chunk.is_error_type() {
            named_event(out, "error", &chunk.whole());
            return;
        }
        if let Some(e) = chunk.error {
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            named_event(out, "error", &super::response::error_body(502, msg));
            return;
        }
        self.start(chunk, out);
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.anthropic());
        }
        let Some(choice) = &chunk.choice else {
            return;
        };
        if let Some(t) = choice.reasoning {
            if !t.is_empty() {
                let i = self.ensure(
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    out,
                );
                Self::delta(out, i, json!({"type": "thinking_delta", "thinking": t}));
            }
        }
        for b in choice.blocks() {
            match b.kind() {
                Some("redacted_thinking") => {
                    self.ensure(Open::Tool, b.whole(), out);
                    self.close(out);
                }
                _ => {
                    let i = self.ensure(
                        Open::Thinking,
                        json!({"type": "thinking", "thinking": "", "signature": ""}),
                        out,
                    );
                    if let Some(s) = b.signature() {
                        Self::delta(out, i, json!({"type": "signature_delta", "signature": s}));
                    }
                }
            }
        }
        if let Some(t) = choice.content {
            if !t.is_empty() {
                let i = self.ensure(Open::Text, json!({"type": "text", "text": ""}), out);
                Self::delta(out, i, json!({"type": "text_delta", "text": t}));
            }
        }
        for call in choice.calls() {
            let k = call.index;
            let index = match self.tools.get(&k) {
                Some(i) if !call.id.is_set() => *i,
                _ => {
                    let id = if call.id.is_set() {
                        call.id.to_value()
                    } else {
                        json!(format!("toolu_{k}"))
                    };
                    let name = if call.name.is_absent() {
                        json!("")
                    } else {
                        call.name.to_value()
                    };
                    let i = self.ensure(
                        Open::Tool,
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                        out,
                    );
                    self.tools.insert(k, i);
                    i
                }
            };
            if let Some(a) = call.arguments {
                if !a.is_empty() {
                    Self::delta(
                        out,
                        index,
                        json!({"type": "input_json_delta", "partial_json": a}),
                    );
                }
            }
        }
        if choice.finish.is_set() {
            self.close(out);
            self.stop = stop_of_parts(choice.stop_reason.as_str(), choice.finish.as_str());
            self.stop_sequence = choice.stop_sequence.to_value();
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.start(&Chunk::none(), out);
        self.close(out);
        let usage = self
            .usage
            .take()
            .unwrap_or_else(|| json!({"input_tokens": 0, "output_tokens": 0}));
        named_event(
            out,
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop, "stop_sequence": self.stop_sequence},
                "usage": usage}),
        );
        named_event(out, "message_stop", &json!({"type": "message_stop"}));
    }
}
