//! Token counts when an upstream reports none, and the prompt estimate that
//! rate limits reserve: OpenAI's cl100k_base through `bpe-openai` (GitHub's
//! byte-pair encoder, the same counts as tiktoken at several times its
//! speed: tiktoken's regex pre-tokeniser was 6% of the gateway's CPU with
//! token limits on, bench/LIMITS.md). Loaded on first use, so a gateway that
//! never needs a count never pays its memory. Counts made here are marked
//! estimated.

use serde_json::{Map, Value};

pub fn count(text: &str) -> i64 {
    if text.is_empty() {
        return 0;
    }
    bpe_openai::cl100k_base().count(text) as i64
}

fn text_of(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|i| text_of(i, out)),
        Value::Object(o) => {
            if let Some(t) = o.get("text") {
                text_of(t, out);
            }
        }
        _ => {}
    }
}

/// Prompt tokens of a request: message contents (+3 per message, OpenAI's
/// documented framing), or the `prompt` / `input` text.
pub fn prompt_tokens(body: &Map<String, Value>) -> i64 {
    let mut text = String::new();
    let mut framing = 0;
    if let Some(Value::Array(messages)) = body.get("messages") {
        for m in messages {
            framing += 3;
            if let Some(c) = m.get("content") {
                text_of(c, &mut text);
            }
        }
        framing += 3;
    }
    for field in ["prompt", "input"] {
        if let Some(v) = body.get(field) {
            text_of(v, &mut text);
        }
    }
    count(&text) + framing
}

/// Prompt tokens of a raw request body (0 when it does not parse).
pub fn prompt_tokens_of(request: &[u8]) -> i64 {
    match serde_json::from_slice::<Value>(request) {
        Ok(Value::Object(map)) => prompt_tokens(&map),
        _ => 0,
    }
}

/// Completion tokens of a non-streamed response body.
pub fn completion_tokens(response: &Value) -> i64 {
    let mut text = String::new();
    if let Some(Value::Array(choices)) = response.get("choices") {
        for c in choices {
            if let Some(content) = c.pointer("/message/content") {
                text_of(content, &mut text);
            }
            if let Some(t) = c.get("text") {
                text_of(t, &mut text);
            }
        }
    }
    count(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_prompt_and_completion() {
        let body = json!({"messages": [{"role": "user", "content": "hello world"}]});
        let n = prompt_tokens(body.as_object().unwrap_or(&Map::new()));
        assert!(n >= 2 + 6, "{n}");
        assert_eq!(
            completion_tokens(&json!({"choices": [{"message": {"content": "hello world"}}]})),
            2
        );
        assert_eq!(count(""), 0);
    }

    #[test]
    fn counts_like_tiktoken_cl100k() {
        // Reference counts from OpenAI's tiktoken (cl100k_base).
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("tiktoken is great!"), 6);
        assert_eq!(count("Say hello to the benchmark in a few words."), 10);
    }
}
