//! The OpenAI side of every translation, writing: chat completions, usage,
//! `chat.completion.chunk` SSE events, and what a streamed answer carries
//! (tool-call assembly, stream faults). Re-exported by `openai_parts`.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::openai_parts::{call_id, obj, ToolCall};

/// OpenAI usage, with the optional detail blocks only when known.
pub(crate) fn usage(
    prompt: u64,
    completion: u64,
    cached: Option<u64>,
    reasoning: Option<u64>,
) -> Value {
    let mut u = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    if let Some(c) = cached {
        u["prompt_tokens_details"] = json!({"cached_tokens": c});
    }
    if let Some(r) = reasoning {
        u["completion_tokens_details"] = json!({"reasoning_tokens": r});
    }
    u
}

/// The message of a chat completion: text (or null), tool calls.
pub(crate) fn assistant_message(text: &str, calls: &[ToolCall]) -> Value {
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    let mut msg = obj([("role", "assistant".into()), ("content", content)]);
    if !calls.is_empty() {
        msg["tool_calls"] = calls
            .iter()
            .map(|c| {
                let function = obj([
                    ("name", c.name.as_str().into()),
                    ("arguments", c.args.to_string().into()),
                ]);
                obj([
                    ("id", c.id.as_str().into()),
                    ("type", "function".into()),
                    ("function", function),
                ])
            })
            .collect();
    }
    msg
}

pub(crate) fn completion(
    id: &str,
    model: &str,
    created: u64,
    choices: Vec<Value>,
    usage: Value,
) -> Value {
    obj([
        ("id", id.into()),
        ("object", "chat.completion".into()),
        ("created", created.into()),
        ("model", model.into()),
        ("choices", Value::Array(choices)),
        ("usage", usage),
    ])
}

/// Writes OpenAI `chat.completion.chunk` SSE events for one response.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    pub id: String,
    pub model: String,
    pub created: u64,
}

impl ChunkWriter {
    fn head(&self, choices: Value) -> Value {
        obj([
            ("id", self.id.as_str().into()),
            ("object", "chat.completion.chunk".into()),
            ("created", self.created.into()),
            ("model", self.model.as_str().into()),
            ("choices", choices),
        ])
    }

    pub fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> Value {
        let choice = obj([
            ("index", index.into()),
            ("delta", delta),
            ("logprobs", Value::Null),
            ("finish_reason", finish.map_or(Value::Null, Value::from)),
        ]);
        self.head(Value::Array(vec![choice]))
    }

    pub fn usage_chunk(&self, usage: Value) -> Value {
        let mut v = self.head(Value::Array(Vec::new()));
        v["usage"] = usage;
        v
    }
}

/// One SSE `data:` event.
pub(crate) fn sse(v: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, v);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

pub(crate) const DONE: &[u8] = b"data: [DONE]\n\n";

/// Whether the caller asked for a usage chunk at the end of a stream.
pub fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The assembled calls of one streamed OpenAI response, by tool index
/// (used where a target shape sends whole calls, not deltas).
#[derive(Debug, Default)]
pub(crate) struct CallAccumulator {
    calls: Vec<(String, String, String)>,
}

impl CallAccumulator {
    /// Folds one `delta.tool_calls` array in.
    pub(crate) fn push(&mut self, deltas: &[Value]) {
        for d in deltas {
            let i = d.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            while self.calls.len() <= i {
                self.calls.push(Default::default());
            }
            let slot = &mut self.calls[i];
            if let Some(id) = d.get("id").and_then(Value::as_str) {
                slot.0 = id.to_string();
            }
            if let Some(n) = d.pointer("/function/name").and_then(Value::as_str) {
                slot.1.push_str(n);
            }
            if let Some(a) = d.pointer("/function/arguments").and_then(Value::as_str) {
                slot.2.push_str(a);
            }
        }
    }

    pub(crate) fn take(&mut self) -> Vec<ToolCall> {
        std::mem::take(&mut self.calls)
            .into_iter()
            .enumerate()
            .map(|(i, (id, name, args))| ToolCall {
                id: if id.is_empty() {
                    call_id(&name, &args, i)
                } else {
                    id
                },
                args: serde_json::from_str(&args).unwrap_or_else(|_| json!({})),
                name,
            })
            .collect()
    }
}

/// Why a translated stream cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The upstream reported an error inside the stream (status as it would
    /// have had over HTTP).
    Upstream {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// Bytes that are not the upstream's wire format.
    Protocol(String),
    /// The stream ended before its final event.
    Interrupted(String),
}
