//! Deterministic OpenAI wire responses. The same request always gets the same
//! text, tokens and vectors; a "token" here is one word, so usage is exact and
//! easy to check: prompt tokens = words in the input, completion tokens = the
//! words written.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Map, Value};

use super::tools::{forced_call, ForcedCall};
use super::Knobs;

const WORDS: [&str; 32] = [
    "the", "gateway", "routes", "every", "request", "through", "one", "governed", "path", "tokens",
    "flow", "fast", "and", "exact", "models", "answer", "while", "limits", "hold", "steady",
    "under", "load", "with", "clear", "errors", "streams", "arrive", "chunk", "by", "chunk", "as",
    "promised",
];

const DEFAULT_TOKENS: usize = 16;

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn words(seed: u64, n: usize) -> Vec<&'static str> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            WORDS[(x % WORDS.len() as u64) as usize]
        })
        .collect()
}

/// One word of the mock's vocabulary, picked by `seed`.
pub(super) fn word(seed: u64) -> &'static str {
    words(seed, 1).first().copied().unwrap_or("the")
}

fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Text of a message `content`: a string, or an array of `{type:"text", text}` parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn strings_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings_of).collect(),
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

fn model_of(body: &Map<String, Value>) -> String {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock");
    Knobs::base_model(model).to_string()
}

fn now() -> u64 {
    tollgate_core::clock::wall_secs()
}

/// (seed, prompt tokens) of a chat request.
fn chat_prompt(body: &Map<String, Value>) -> (u64, usize) {
    let texts: Vec<String> = body
        .get("messages")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .map(|m| m.get("content").map(content_text).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let prompt = texts.iter().map(|t| count_words(t)).sum::<usize>().max(1);
    (fnv1a(texts.last().map_or("", String::as_str)), prompt)
}

fn completion_prompt(body: &Map<String, Value>) -> (u64, usize) {
    let texts = body.get("prompt").map(strings_of).unwrap_or_default();
    let joined = texts.join(" ");
    (fnv1a(&joined), count_words(&joined).max(1))
}

/// The words of the last message (chat) or the prompt (completions).
fn echo_words(body: &Map<String, Value>) -> Vec<String> {
    let text = match body.get("messages").and_then(Value::as_array) {
        Some(ms) => ms
            .last()
            .and_then(|m| m.get("content"))
            .map(content_text)
            .unwrap_or_default(),
        None => body
            .get("prompt")
            .map(strings_of)
            .unwrap_or_default()
            .join(" "),
    };
    text.split_whitespace().map(str::to_owned).collect()
}

/// The completion's words: generated, or echoed with the `echo` knob.
fn answer(body: &Map<String, Value>, knobs: &Knobs, seed: u64) -> Vec<String> {
    if knobs.echo {
        let mut w = echo_words(body);
        w.truncate(n_tokens(
            body,
            &Knobs {
                tokens: Some(w.len()),
                ..Knobs::default()
            },
        ));
        return w;
    }
    words(seed, n_tokens(body, knobs))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn n_tokens(body: &Map<String, Value>, knobs: &Knobs) -> usize {
    let max = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .map_or(usize::MAX, |m| m as usize);
    knobs.tokens.unwrap_or(DEFAULT_TOKENS).min(max)
}

fn finish_reason(n: usize, body: &Map<String, Value>, knobs: &Knobs) -> &'static str {
    let capped = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .is_some_and(|m| (m as usize) <= n);
    let wanted = if knobs.echo {
        echo_words(body).len()
    } else {
        knobs.tokens.unwrap_or(DEFAULT_TOKENS)
    };
    if n < wanted || (capped && n == 0) {
        "length"
    } else {
        "stop"
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// Completion tokens of a forced tool call: a quarter of its arguments'
/// characters, rounded up (the mock's documented rule).
fn call_tokens(call: &ForcedCall) -> usize {
    call.arguments.len().div_ceil(4).max(1)
}

pub fn chat_json(body: &Map<String, Value>, knobs: &Knobs) -> Value {
    let (seed, prompt) = chat_prompt(body);
    let (message, finish, n) = match forced_call(body, seed) {
        Some(call) => {
            let n = call_tokens(&call);
            let message = json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }]});
            (message, "tool_calls", n)
        }
        None => {
            let answer = answer(body, knobs, seed);
            let n = answer.len();
            let message = json!({"role": "assistant", "content": answer.join(" ")});
            (message, finish_reason(n, body, knobs), n)
        }
    };
    let mut out = json!({
        "id": format!("chatcmpl-mock-{seed:016x}"),
        "object": "chat.completion",
        "created": now(),
        "model": model_of(body),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish,
        }],
    });
    if !knobs.no_usage {
        out["usage"] = usage(prompt, n);
    }
    out
}

pub fn completion_json(body: &Map<String, Value>, knobs: &Knobs) -> Value {
    let (seed, prompt) = completion_prompt(body);
    let answer = answer(body, knobs, seed);
    let n = answer.len();
    let mut out = json!({
        "id": format!("cmpl-mock-{seed:016x}"),
        "object": "text_completion",
        "created": now(),
        "model": model_of(body),
        "choices": [{
            "index": 0,
            "text": answer.join(" "),
            "logprobs": null,
            "finish_reason": finish_reason(n, body, knobs),
        }],
    });
    if !knobs.no_usage {
        out["usage"] = usage(prompt, n);
    }
    out
}

fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// A streamed answer's content pieces: one word per chunk (the first
/// bare, the others after a space), or with the `chunk_chars` knob the
/// same text in pieces of that many characters (splitting words).
fn pieces(answer: &[String], knobs: &Knobs) -> Vec<String> {
    let words = answer.iter().enumerate().map(|(i, w)| {
        if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        }
    });
    match knobs.chunk_chars {
        None => words.collect(),
        Some(n) => {
            let chars: Vec<char> = words.collect::<String>().chars().collect();
            chars.chunks(n).map(|c| c.iter().collect()).collect()
        }
    }
}

/// The whole event list of a streamed chat completion, `[DONE]` included.
fn chat_events(body: &Map<String, Value>, knobs: &Knobs) -> Vec<Bytes> {
    let (seed, prompt) = chat_prompt(body);
    let answer = answer(body, knobs, seed);
    let n = answer.len();
    let id = format!("chatcmpl-mock-{seed:016x}");
    let (created, model) = (now(), model_of(body));
    let chunk = |delta: Value, finish: Value| {
        sse(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    };
    if let Some(call) = forced_call(body, seed) {
        return tool_call_events(body, knobs, prompt, call, &chunk, &id);
    }
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for piece in pieces(&answer, knobs) {
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!(finish_reason(n, body, knobs))));
    if include_usage(body) && !knobs.no_usage {
        events.push(sse(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage(prompt, n),
        })));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// A streamed forced tool call: the call's id and name first, then its
/// arguments in pieces of at most 16 characters, like OpenAI's deltas.
fn tool_call_events(
    body: &Map<String, Value>,
    knobs: &Knobs,
    prompt: usize,
    call: ForcedCall,
    chunk: &dyn Fn(Value, Value) -> Bytes,
    id: &str,
) -> Vec<Bytes> {
    let n = call_tokens(&call);
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "index": 0, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }]}),
        Value::Null,
    )];
    let chars: Vec<char> = call.arguments.chars().collect();
    for piece in chars.chunks(16) {
        let piece: String = piece.iter().collect();
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            Value::Null,
        ));
    }
    events.push(chunk(json!({}), json!("tool_calls")));
    if include_usage(body) && !knobs.no_usage {
        events.push(sse(&json!({
            "id": id, "object": "chat.completion.chunk", "created": now(), "model": model_of(body),
            "choices": [], "usage": usage(prompt, n),
        })));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

fn completion_events(body: &Map<String, Value>, knobs: &Knobs) -> Vec<Bytes> {
    let (seed, prompt) = completion_prompt(body);
    let answer = answer(body, knobs, seed);
    let n = answer.len();
    let id = format!("cmpl-mock-{seed:016x}");
    let (created, model) = (now(), model_of(body));
    let chunk = |text: &str, finish: Value| {
        sse(&json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}],
        }))
    };
    let mut events = Vec::with_capacity(n + 3);
    for piece in pieces(&answer, knobs) {
        events.push(chunk(&piece, Value::Null));
    }
    events.push(chunk("", json!(finish_reason(n, body, knobs))));
    if include_usage(body) && !knobs.no_usage {
        events.push(sse(&json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [], "usage": usage(prompt, n),
        })));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// A stream cut by the `cut_after` knob ends with this error.
#[derive(Debug, thiserror::Error)]
#[error("mock stream cut after {0} chunks")]
pub struct StreamCut(pub usize);

fn paced(events: Vec<Bytes>, knobs: &Knobs) -> BoxStream<'static, Result<Bytes, StreamCut>> {
    let ttft = knobs.ttft;
    let gap = knobs
        .tokens_per_sec
        .map(|tps| Duration::from_secs_f64(1.0 / tps));
    let cut = knobs.cut_after;
    let needs_timer = ttft.is_some() || gap.is_some();
    if !needs_timer && cut.is_none() {
        return stream::iter(events.into_iter().map(Ok)).boxed();
    }
    let iter = events.into_iter().enumerate();
    // Each event is due at a fixed time from the stream's start (ttft, then
    // one gap per event), not one gap after the previous one left: the
    // pace does not drift with scheduling, so a benchmark can compare when
    // each event arrives through the gateway with when it was due.
    stream::unfold(
        (iter, false, None::<tokio::time::Instant>),
        move |(mut iter, done, mut due)| async move {
            if done {
                return None;
            }
            let (i, event) = iter.next()?;
            if cut == Some(i) {
                // Let the chunks before the cut reach the wire first, as they
                // would from a real upstream that dies mid-answer.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Some((Err(StreamCut(i)), (iter, true, due)));
            }
            let delay = if i == 0 { ttft } else { gap };
            let at = due.get_or_insert_with(tokio::time::Instant::now);
            if let Some(d) = delay {
                *at += d;
                tokio::time::sleep_until(*at).await;
            }
            Some((Ok(event), (iter, false, due)))
        },
    )
    .boxed()
}

pub fn chat_stream(
    body: &Map<String, Value>,
    knobs: &Knobs,
) -> BoxStream<'static, Result<Bytes, StreamCut>> {
    paced(chat_events(body, knobs), knobs)
}

pub fn completion_stream(
    body: &Map<String, Value>,
    knobs: &Knobs,
) -> BoxStream<'static, Result<Bytes, StreamCut>> {
    paced(completion_events(body, knobs), knobs)
}

/// Why an embeddings request cannot be answered (a 400 for the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbeddingsError {
    #[error("`input` must be a string or a non-empty array")]
    Input,
}

/// Embeddings: one deterministic unit vector per input (default 16 dims,
/// `dimensions` honoured, at most 4096), as floats or base64 like OpenAI.
pub fn embeddings_json(body: &Map<String, Value>) -> Result<Value, EmbeddingsError> {
    let inputs = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => return Err(EmbeddingsError::Input),
    };
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(16)
        .clamp(1, 4096) as usize;
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut prompt = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            prompt += count_words(text).max(1);
            let v = vector(fnv1a(text), dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model_of(body),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }))
}

fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut x = seed | 1;
    let raw: Vec<f32> = (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 2001) as f32 / 1000.0) - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|v| v / norm).collect()
}

pub fn models_json(names: &[&str]) -> Value {
    let data: Vec<Value> = names
        .iter()
        .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "tollgate-mock"}))
        .collect();
    json!({"object": "list", "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn chat_is_deterministic_with_exact_usage() {
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "hello there world"}]}),
        );
        let a = chat_json(&b, &Knobs::default());
        assert_eq!(
            a["choices"][0]["message"],
            chat_json(&b, &Knobs::default())["choices"][0]["message"]
        );
        assert_eq!(a["usage"]["prompt_tokens"], 3);
        assert_eq!(a["usage"]["completion_tokens"], 16);
        let text = a["choices"][0]["message"]["content"].as_str().unwrap_or("");
        assert_eq!(text.split_whitespace().count(), 16);
    }

    #[test]
    fn max_tokens_truncates_with_length() {
        let b = body(
            json!({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "x"}]}),
        );
        let a = chat_json(&b, &Knobs::default());
        assert_eq!(a["usage"]["completion_tokens"], 4);
        assert_eq!(a["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn stream_events_end_with_usage_then_done() {
        let b = body(
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "a b"}]}),
        );
        let events = chat_events(&b, &Knobs::default());
        assert_eq!(events.len(), 16 + 4);
        assert_eq!(
            events.last().map(|b| &b[..]),
            Some(&b"data: [DONE]\n\n"[..])
        );
        let usage = String::from_utf8_lossy(&events[events.len() - 2]).to_string();
        assert!(usage.contains("\"completion_tokens\":16"), "{usage}");
    }

    #[test]
    fn embeddings_base64_and_float() {
        let b = body(json!({"model": "e", "input": ["a", "b c"], "dimensions": 4}));
        let v = embeddings_json(&b).unwrap_or_default();
        assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(4));
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        let b =
            body(json!({"model": "e", "input": "a", "encoding_format": "base64", "dimensions": 4}));
        let v = embeddings_json(&b).unwrap_or_default();
        assert!(v["data"][0]["embedding"].is_string());
        assert!(embeddings_json(&body(json!({"model": "e"}))).is_err());
    }
}
