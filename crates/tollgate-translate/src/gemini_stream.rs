//! Streaming OpenAI ⇄ Gemini. `streamGenerateContent?alt=sse` sends whole
//! `GenerateContentResponse` objects as SSE `data:` events: text grows part by
//! part, a function call arrives whole in one event, `finishReason` and the
//! cumulative `usageMetadata` come with the last ones. [`GeminiToOpenAi`]
//! turns them into OpenAI chunks (role first, content deltas, one tool-call
//! delta per call, the finish chunk, the usage chunk, `[DONE]`);
//! [`OpenAiToGemini`] is the mock upstream's way back.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::gemini::{
    candidate_parts, finish_reason, finish_to_gemini, message_to_parts, response_id, usage,
    usage_to_gemini,
};
use super::openai_parts::{self as oa, CallAccumulator, ChunkWriter, Fault};

/// Gemini SSE events → OpenAI chunk SSE bytes, one response.
#[derive(Debug)]
pub struct GeminiToOpenAi {
    model: String,
    created: u64,
    include_usage: bool,
    writer: Option<ChunkWriter>,
    /// Tool calls sent so far, per candidate (the next call's index).
    calls: HashMap<u64, usize>,
    usage: Option<Value>,
    finished: bool,
}

impl GeminiToOpenAi {
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            model: model.to_string(),
            created,
            include_usage,
            writer: None,
            calls: HashMap::new(),
            usage: None,
            finished: false,
        }
    }

    /// One event's `data`; returns the OpenAI SSE bytes it becomes.
    pub fn event(&mut self, data: &str) -> Result<Vec<u8>, Fault> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let g: Value = serde_json::from_str(data)
            .map_err(|e| Fault::Protocol(format!("stream event is not JSON: {e}")))?;
        if let Some(err) = g.get("error") {
            return Err(error_fault(err));
        }
        let writer = self.writer.get_or_insert_with(|| ChunkWriter {
            id: response_id(&g),
            model: g
                .get("modelVersion")
                .and_then(Value::as_str)
                .unwrap_or(&self.model)
                .to_string(),
            created: self.created,
        });
        let mut out = Vec::new();
        let candidates = g.get("candidates").and_then(Value::as_array);
        for (i, c) in candidates.into_iter().flatten().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            let first_call = match self.calls.get(&index) {
                Some(n) => *n,
                None => {
                    let role =
                        writer.chunk(index, json!({"role": "assistant", "content": ""}), None);
                    out.extend_from_slice(&oa::sse(&role));
                    0
                }
            };
            let (text, thought, calls) = candidate_parts(c, first_call);
            if !thought.is_empty() {
                let d = writer.chunk(index, json!({"reasoning_content": thought}), None);
                out.extend_from_slice(&oa::sse(&d));
            }
            if !text.is_empty() {
                out.extend_from_slice(&oa::sse(&writer.chunk(
                    index,
                    json!({"content": text}),
                    None,
                )));
            }
            for (k, call) in calls.iter().enumerate() {
                let delta = json!({"tool_calls": [{
                    "index": first_call + k, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": call.args.to_string()},
                }]});
                out.extend_from_slice(&oa::sse(&writer.chunk(index, delta, None)));
            }
            let sent = first_call + calls.len();
            self.calls.insert(index, sent);
            if let Some(reason) = c.get("finishReason").and_then(Value::as_str) {
                let f = finish_reason(reason, sent > 0);
                out.extend_from_slice(&oa::sse(&writer.chunk(index, json!({}), Some(f))));
                self.finished = true;
            }
        }
        if candidates.is_none_or(Vec::is_empty)
            && g.pointer("/promptFeedback/blockReason").is_some()
        {
            let f = writer.chunk(0, json!({}), Some("content_filter"));
            out.extend_from_slice(&oa::sse(&f));
            self.finished = true;
        }
        if let Some(meta) = g.get("usageMetadata") {
            self.usage = Some(usage(meta));
        }
        Ok(out)
    }

    /// The upstream stream ended: the usage chunk (when asked for) and
    /// `[DONE]`, or a fault when no candidate ever finished.
    pub fn finish(&mut self) -> Result<Vec<u8>, Fault> {
        if !self.finished {
            return Err(Fault::Interrupted(
                "the stream ended before a finishReason".into(),
            ));
        }
        let mut out = Vec::new();
        if let (true, Some(u), Some(w)) = (self.include_usage, self.usage.take(), &self.writer) {
            out.extend_from_slice(&oa::sse(&w.usage_chunk(u)));
        }
        out.extend_from_slice(oa::DONE);
        Ok(out)
    }
}

/// A Gemini `error` object → a fault with its HTTP status and retry delay.
pub fn error_fault(err: &Value) -> Fault {
    Fault::Upstream {
        status: err
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(502),
        message: err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error in stream")
            .to_string(),
        retry_after: retry_delay(err),
    }
}

/// `RetryInfo.retryDelay` ("30s", "1.5s") from an error's `details`, in whole
/// seconds rounded up: Gemini says when to retry there, not in `Retry-After`.
pub fn retry_delay(err: &Value) -> Option<u64> {
    err.get("details")?
        .as_array()?
        .iter()
        .filter_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .find_map(|s| s.strip_suffix('s')?.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s.ceil() as u64)
}

/// OpenAI chunk events → Gemini SSE events (mock upstream). Text goes out as
/// it comes; tool calls are assembled and sent whole with the last event,
/// which also carries `finishReason` and `usageMetadata`.
#[derive(Debug)]
pub struct OpenAiToGemini {
    calls: CallAccumulator,
    finish: Option<String>,
    head: Value,
}

impl OpenAiToGemini {
    pub fn new() -> Self {
        Self {
            calls: CallAccumulator::default(),
            finish: None,
            head: Value::Null,
        }
    }

    fn event_bytes(&self, candidate: Value, usage: Option<&Value>) -> Bytes {
        let mut g = json!({"candidates": [candidate]});
        if let Some(u) = usage {
            g["usageMetadata"] = usage_to_gemini(u);
        }
        g["modelVersion"] = self.head.get("model").cloned().unwrap_or(Value::Null);
        g["responseId"] = json!(self
            .head
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_start_matches("chatcmpl-"));
        Bytes::from(format!("data: {g}\r\n\r\n"))
    }

    fn last_event(&mut self, usage: Option<&Value>) -> Option<Bytes> {
        let reason = self.finish.take()?;
        let mut parts = message_to_parts("", &self.calls.take());
        if parts.is_empty() {
            parts.push(json!({"text": ""}));
        }
        let candidate = json!({
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_to_gemini(&reason), "index": 0,
        });
        Some(self.event_bytes(candidate, usage))
    }

    /// One OpenAI event's `data` → the Gemini events it becomes.
    pub fn event(&mut self, data: &str) -> Vec<Bytes> {
        if data == "[DONE]" {
            return self.last_event(None).into_iter().collect();
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return Vec::new();
        };
        if self.head.is_null() {
            self.head = chunk.clone();
        }
        let mut out = Vec::new();
        for c in oa::list(&chunk, "/choices") {
            let delta = c.get("delta").unwrap_or(&Value::Null);
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                if !t.is_empty() {
                    let candidate =
                        json!({"content": {"role": "model", "parts": [{"text": t}]}, "index": 0});
                    out.push(self.event_bytes(candidate, None));
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                self.calls.push(calls);
            }
            if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(f.to_string());
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            out.extend(self.last_event(Some(u)));
        }
        out
    }
}

impl Default for OpenAiToGemini {
    fn default() -> Self {
        Self::new()
    }
}
