//! Token counts when an upstream reports none, and the prompt estimate that
//! rate limits reserve: OpenAI's cl100k_base through `tollgate_llm::cl100k`
//! (a counting-only encoder over a ~2 MB table, the same counts as
//! `bpe-openai` and tiktoken; `bpe-openai` itself cost ~43 MB of resident
//! memory). Loaded on first use, so a gateway that never needs a count
//! never pays its memory. Counts made here are marked estimated.

use serde_json::{Map, Value};

pub(super) fn count(text: &str) -> i64 {
    if text.is_empty() {
        return 0;
    }
    i64::try_from(tollgate_llm::cl100k::count(text)).unwrap_or(i64::MAX)
}

/// Calls `f` with each text of a content value (a string, or the `text`
/// of content parts), in order.
fn each_text<'a>(v: &'a Value, f: &mut impl FnMut(&'a str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| each_text(i, f)),
        Value::Object(o) => {
            if let Some(t) = o.get("text") {
                each_text(t, f);
            }
        }
        _ => {}
    }
}

fn text_of(v: &Value, out: &mut String) {
    each_text(v, &mut |s| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(s);
    });
}

/// Entries per thread in the prompt-count memo.
const MEMO_ENTRIES: usize = 4096;

thread_local! {
    /// Token counts of recently seen prompt texts, per thread, keyed by a
    /// 64-bit hash of the text (randomly seeded per thread). Chat clients
    /// resend the whole conversation and the same system prompt on every
    /// turn, so most texts were counted on an earlier request; the
    /// tokenizer (its regex pre-splitting and per-piece encoders) was the
    /// largest cost of a token-limited request (bench/history/LIMITS.md). A hash
    /// collision can only misestimate one reservation, which settlement
    /// corrects to the usage the upstream reports. Cleared when full.
    static MEMO: std::cell::RefCell<(foldhash::fast::RandomState, std::collections::HashMap<u64, u32>)> =
        std::cell::RefCell::new(Default::default());
}

/// `count`, memoised per thread (`MEMO`).
fn count_memo(text: &str) -> i64 {
    if text.is_empty() {
        return 0;
    }
    use std::hash::BuildHasher as _;
    let found = MEMO.with(|m| {
        let (seed, map) = &*m.borrow();
        let key = seed.hash_one(text);
        (key, map.get(&key).copied())
    });
    match found {
        (_, Some(n)) => i64::from(n),
        (key, None) => {
            let n = count(text);
            MEMO.with(|m| {
                let (_, map) = &mut *m.borrow_mut();
                if map.len() >= MEMO_ENTRIES {
                    map.clear();
                }
                map.insert(key, u32::try_from(n).unwrap_or(u32::MAX));
            });
            n
        }
    }
}

/// Prompt tokens of a request, as OpenAI's cookbook counts them: each
/// message's content counted on its own (+3 per message, +3 for the reply's
/// priming), or the `prompt` / `input` text.
pub(super) fn prompt_tokens(body: &Map<String, Value>) -> i64 {
    let mut total = 0;
    if let Some(Value::Array(messages)) = body.get("messages") {
        for m in messages {
            total += 3;
            if let Some(c) = m.get("content") {
                each_text(c, &mut |s| total += count_memo(s));
            }
        }
        total += 3;
    }
    for field in ["prompt", "input"] {
        if let Some(v) = body.get(field) {
            each_text(v, &mut |s| total += count_memo(s));
        }
    }
    total
}

/// Prompt tokens of a raw request body (0 when it does not parse).
pub(super) fn prompt_tokens_of(request: &[u8]) -> i64 {
    match serde_json::from_slice::<Value>(request) {
        Ok(Value::Object(map)) => prompt_tokens(&map),
        _ => 0,
    }
}

/// Completion tokens of a non-streamed response body.
pub(super) fn completion_tokens(response: &Value) -> i64 {
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
    fn memo_gives_the_tokenizer_counts() {
        let body = json!({"messages": [
            {"role": "system", "content": "Say hello to the benchmark in a few words."},
            {"role": "user", "content": [{"type": "text", "text": "hello world"}, {"type": "image_url"}]}
        ]});
        let body = body.as_object().unwrap_or(&Map::new()).clone();
        let want = 3 + 10 + 3 + 2 + 3;
        assert_eq!(prompt_tokens(&body), want, "first, counted");
        assert_eq!(prompt_tokens(&body), want, "again, from the memo");
        for i in 0..(MEMO_ENTRIES + 10) {
            assert_eq!(
                count_memo(&format!("word{i} ")),
                count(&format!("word{i} "))
            );
        }
        assert!(MEMO.with(|m| m.borrow().1.len()) <= MEMO_ENTRIES);
        assert_eq!(
            prompt_tokens(
                &json!({"input": ["tiktoken is great!", "hello world"]})
                    .as_object()
                    .unwrap_or(&Map::new())
                    .clone()
            ),
            8
        );
    }

    #[test]
    fn counts_like_tiktoken_cl100k() {
        // Reference counts from OpenAI's tiktoken (cl100k_base).
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("tiktoken is great!"), 6);
        assert_eq!(count("Say hello to the benchmark in a few words."), 10);
    }
}
