//! A streamed answer, assembled event by event (as the caller saw them)
//! into the non-streaming response it is equivalent to, so one cached entry
//! serves streaming and non-streaming callers alike. Anything the assembly
//! does not reproduce (log-probabilities, an error event) spoils it: such a
//! stream is not cached.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

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

    /// One event's `data` as forwarded to the caller.
    pub fn push(&mut self, data: &str) {
        if self.spoiled || data == "[DONE]" || !data.starts_with('{') {
            return;
        }
        let Ok(Value::Object(ev)) = serde_json::from_str::<Value>(data) else {
            self.spoiled = true;
            return;
        };
        if ev.contains_key("error") {
            self.spoiled = true;
            return;
        }
        if self.head.is_empty() {
            for k in ["id", "created", "model", "system_fingerprint"] {
                if let Some(v) = ev.get(k) {
                    self.head.insert(k.into(), v.clone());
                }
            }
        }
        for c in ev
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if c.get("logprobs").is_some_and(|l| !l.is_null()) {
                self.spoiled = true;
                return;
            }
            let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let choice = self.choices.entry(idx).or_default();
            if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
                choice.finish_reason = f.clone();
            }
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                choice.content.push_str(t);
                choice.saw_content = true;
            }
            let Some(d) = c.get("delta") else { continue };
            if let Some(r) = d.get("role").and_then(Value::as_str) {
                choice.role = Some(r.to_string());
            }
            if let Some(t) = d.get("content").and_then(Value::as_str) {
                choice.content.push_str(t);
                choice.saw_content = true;
            }
            if let Some(t) = d.get("refusal").and_then(Value::as_str) {
                choice.refusal.get_or_insert_with(String::new).push_str(t);
            }
            for call in d
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ti = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let slot = choice.tool_calls.entry(ti).or_default();
                for k in ["id", "type"] {
                    if let Some(v) = call.get(k).filter(|v| !v.is_null()) {
                        slot.insert(k.into(), v.clone());
                    }
                }
                if let Some(f) = call.get("function") {
                    let func = slot
                        .entry("function")
                        .or_insert_with(|| json!({"name": "", "arguments": ""}));
                    for k in ["name", "arguments"] {
                        if let Some(part) = f.get(k).and_then(Value::as_str) {
                            if let Some(Value::String(s)) = func.get_mut(k) {
                                s.push_str(part);
                            }
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
