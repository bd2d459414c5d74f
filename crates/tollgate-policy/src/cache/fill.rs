//! A streamed answer, assembled event by event (as the caller saw them)
//! into the non-streaming response it is equivalent to, so one cached entry
//! serves streaming and non-streaming callers alike. Anything the assembly
//! does not reproduce (log-probabilities, an error event) spoils it: such a
//! stream is not cached.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tollgate_core::wire::chat::ChatChunk;
use tollgate_core::wire::Field;

use tollgate_config::Endpoint;

#[derive(Default)]
struct Choice {
    role: Option<String>,
    content: String,
    saw_content: bool,
    refusal: Option<String>,
    finish_reason: Value,
    tool_calls: BTreeMap<u64, Map<String, Value>>,
}

pub struct StreamFill {
    endpoint: Endpoint,
    head: Map<String, Value>,
    choices: BTreeMap<u64, Choice>,
    spoiled: bool,
}

impl StreamFill {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            head: Map::new(),
            choices: BTreeMap::new(),
            spoiled: false,
        }
    }

    /// One event's `data` as forwarded to the caller (parsed here; the
    /// stream parses each event once and calls `push_chunk`).
    pub fn push(&mut self, data: &str) {
        if self.spoiled || data == "[DONE]" || !data.starts_with('{') {
            return;
        }
        match serde_json::from_str::<ChatChunk>(data) {
            Ok(chunk) => self.push_chunk(&chunk),
            Err(_) => self.spoil(),
        }
    }

    /// A JSON event that is not a chunk the assembly can read.
    pub fn spoil(&mut self) {
        self.spoiled = true;
    }

    /// One parsed chunk as forwarded to the caller.
    pub fn push_chunk(&mut self, ev: &ChatChunk) {
        if self.spoiled {
            return;
        }
        if !ev.error.is_absent() {
            self.spoiled = true;
            return;
        }
        if self.head.is_empty() {
            if !ev.id.is_absent() {
                self.head.insert("id".into(), field_value(&ev.id));
            }
            if let Some(v) = ev.rest.get("created") {
                self.head.insert("created".into(), v.clone());
            }
            if !ev.model.is_absent() {
                self.head.insert("model".into(), field_value(&ev.model));
            }
            if let Some(v) = ev.rest.get("system_fingerprint") {
                self.head.insert("system_fingerprint".into(), v.clone());
            }
        }
        for c in ev.choices.get().into_iter().flatten() {
            if c.rest.get("logprobs").is_some_and(|l| !l.is_null()) {
                self.spoiled = true;
                return;
            }
            let idx = c.index.get().copied().unwrap_or(0);
            let choice = self.choices.entry(idx).or_default();
            if let Some(f) = c.finish_reason.get() {
                choice.finish_reason = Value::String(f.clone());
            }
            if let Some(t) = c.text.get() {
                choice.content.push_str(t);
                choice.saw_content = true;
            }
            let Some(d) = c.delta.get() else { continue };
            if let Some(r) = d.role.get() {
                choice.role = Some(r.clone());
            }
            if let Some(t) = d.content.get() {
                choice.content.push_str(t);
                choice.saw_content = true;
            }
            if let Some(t) = d.refusal.get() {
                choice.refusal.get_or_insert_with(String::new).push_str(t);
            }
            for call in d.tool_calls.get().into_iter().flatten() {
                let ti = call.index.get().copied().unwrap_or(0);
                let slot = choice.tool_calls.entry(ti).or_default();
                if let Some(id) = call.id.get() {
                    slot.insert("id".into(), Value::String(id.clone()));
                }
                if let Some(kind) = call.kind.get() {
                    slot.insert("type".into(), Value::String(kind.clone()));
                }
                if let Some(f) = call.function.get() {
                    let func = slot
                        .entry("function")
                        .or_insert_with(|| json!({"name": "", "arguments": ""}));
                    for (k, part) in [("name", &f.name), ("arguments", &f.arguments)] {
                        if let (Some(part), Some(Value::String(s))) = (part.get(), func.get_mut(k))
                        {
                            s.push_str(part);
                        }
                    }
                }
            }
        }
    }

    /// The equivalent non-streaming body, with `usage`; `None` when spoiled.
    pub fn finish(self, prompt_tokens: i64, completion_tokens: i64) -> Option<Vec<u8>> {
        if self.spoiled || self.choices.is_empty() {
            return None;
        }
        let chat = self.endpoint == Endpoint::Chat;
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| {
                if chat {
                    let mut msg = Map::new();
                    msg.insert(
                        "role".into(),
                        json!(c.role.as_deref().unwrap_or("assistant")),
                    );
                    msg.insert(
                        "content".into(),
                        if c.saw_content {
                            json!(c.content)
                        } else {
                            Value::Null
                        },
                    );
                    if let Some(r) = c.refusal {
                        msg.insert("refusal".into(), json!(r));
                    }
                    if !c.tool_calls.is_empty() {
                        let calls: Vec<Value> =
                            c.tool_calls.into_values().map(Value::Object).collect();
                        msg.insert("tool_calls".into(), Value::Array(calls));
                    }
                    json!({"index": index, "message": msg, "logprobs": null,
                        "finish_reason": c.finish_reason})
                } else {
                    json!({"index": index, "text": c.content, "logprobs": null,
                        "finish_reason": c.finish_reason})
                }
            })
            .collect();
        let mut out = self.head;
        let object = if chat {
            "chat.completion"
        } else {
            "text_completion"
        };
        out.insert("object".into(), json!(object));
        out.insert("choices".into(), Value::Array(choices));
        out.insert(
            "usage".into(),
            json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}),
        );
        serde_json::to_vec(&Value::Object(out)).ok()
    }
}

/// A string field as it was sent (`null` stays `null`).
fn field_value(f: &Field<String>) -> Value {
    f.get().map_or(Value::Null, |s| Value::String(s.clone()))
}
