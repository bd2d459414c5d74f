//! Where the text is in OpenAI-shaped requests and responses: mutable
//! references to every string a guardrail must see (message contents and
//! parts, tool-call arguments, prompts, embedding inputs, completions).

use serde_json::{Map, Value};

fn content<'a>(v: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(parts) => {
            for p in parts {
                if let Some(Value::String(t)) = p.get_mut("text") {
                    out.push(t);
                }
            }
        }
        _ => {}
    }
}

fn strings<'a>(v: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => {
            for i in items {
                if let Value::String(s) = i {
                    out.push(s);
                }
            }
        }
        _ => {}
    }
}

/// A message's text: `content` (string or text parts) and its tool calls'
/// `function.arguments`.
fn message<'a>(m: &'a mut Map<String, Value>, out: &mut Vec<&'a mut String>) {
    for (k, v) in m.iter_mut() {
        match (k.as_str(), v) {
            ("content", v) => content(v, out),
            ("tool_calls", Value::Array(calls)) => {
                for call in calls {
                    if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                        out.push(args);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Request text: `messages[].content` (and parts), `messages[].tool_calls[].function.arguments`,
/// `prompt`, `input`.
pub fn request_texts(body: &mut Map<String, Value>) -> Vec<&mut String> {
    let mut out = Vec::new();
    for (key, value) in body.iter_mut() {
        match (key.as_str(), value) {
            ("messages", Value::Array(ms)) => {
                for m in ms {
                    if let Value::Object(m) = m {
                        message(m, &mut out);
                    }
                }
            }
            ("prompt" | "input", value) => strings(value, &mut out),
            _ => {}
        }
    }
    out
}

/// Response text: `choices[].message.content` (and parts), tool-call
/// arguments, `choices[].text`.
pub fn response_texts(resp: &mut Value) -> Vec<&mut String> {
    let mut out = Vec::new();
    if let Some(Value::Array(choices)) = resp.get_mut("choices") {
        for c in choices {
            let Value::Object(c) = c else { continue };
            for (k, v) in c.iter_mut() {
                match (k.as_str(), v) {
                    ("text", Value::String(t)) => out.push(t),
                    ("message", Value::Object(m)) => message(m, &mut out),
                    _ => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_every_request_and_response_text() {
        let mut body = json!({"model": "m", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image_url"}]},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{\"a\":1}"}}]}
        ], "prompt": ["p1", "p2"], "input": "in"});
        let mut texts: Vec<String> = request_texts(body.as_object_mut().unwrap())
            .into_iter()
            .map(|s| s.clone())
            .collect();
        texts.sort();
        assert_eq!(texts, ["in", "p1", "p2", "part", "sys", "{\"a\":1}"]);
        let mut resp = json!({"choices": [{"message": {"content": "out", "tool_calls": [{"function": {"arguments": "{}"}}]}}, {"text": "t"}]});
        let texts: Vec<String> = response_texts(&mut resp)
            .into_iter()
            .map(|s| s.clone())
            .collect();
        assert_eq!(texts, ["out", "{}", "t"]);
    }
}
