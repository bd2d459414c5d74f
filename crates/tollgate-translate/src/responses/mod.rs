//! OpenAI Responses API (stateless part) ⇄ OpenAI chat. Requests: `input`
//! (a string or items: messages, `function_call`, `function_call_output`),
//! `instructions`, function tools, `tool_choice`, `text.format`. Anything
//! that needs server-side state or built-in tools (`previous_response_id`,
//! `store: true`, `conversation`, `background`, web/file search, …) is
//! refused with a 400 naming the field. See docs/ingress.md.

mod stream;

pub use stream::{error_event, ResponsesStream};

use serde_json::{json, Map, Value};

use super::{now_secs, object, string, AnswerError, Result, Unsupported};
use crate::chunk_read::Tokens;

const STATEFUL: &str =
    "needs server-side state, which this gateway does not keep (stateless Responses only)";
const NOT_CHAT: &str = "has no equivalent in the chat format the gateway routes on";

/// Responses request → chat request.
pub fn to_chat(body: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut messages = Vec::new();
    if let Some(i) = body.get("instructions").filter(|v| !v.is_null()) {
        let text = i
            .as_str()
            .ok_or_else(|| Unsupported::new("instructions", "must be a string"))?;
        messages.push(json!({"role": "system", "content": text}));
    }
    for (key, v) in body {
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "model"
            | "temperature"
            | "top_p"
            | "stream"
            | "parallel_tool_calls"
            | "user"
            | "service_tier"
            | "safety_identifier"
            | "prompt_cache_key" => {
                out.insert(key.clone(), v.clone());
            }
            "instructions" | "input" => {}
            "max_output_tokens" => {
                out.insert("max_tokens".into(), v.clone());
            }
            "store" if v.as_bool() == Some(false) => {}
            "store" => return Err(Unsupported::new("store", STATEFUL)),
            "previous_response_id" | "conversation" => return Err(Unsupported::new(key, STATEFUL)),
            "background" if v.as_bool() == Some(false) => {}
            "truncation" if v.as_str() == Some("disabled") => {}
            "include" if v.as_array().is_some_and(Vec::is_empty) => {}
            "metadata" if v.as_object().is_some_and(Map::is_empty) => {}
            "tools" => {
                out.insert("tools".into(), tools(v)?);
            }
            "tool_choice" => {
                out.insert("tool_choice".into(), tool_choice(v)?);
            }
            "text" => {
                if let Some(f) = text_format(v)? {
                    out.insert("response_format".into(), f);
                }
            }
            "reasoning" => {
                let r = object(v, "reasoning")?;
                for (k, rv) in r.iter().filter(|(_, rv)| !rv.is_null()) {
                    match k.as_str() {
                        "effort" => {
                            out.insert("reasoning_effort".into(), rv.clone());
                        }
                        other => {
                            return Err(Unsupported::new(format!("reasoning.{other}"), NOT_CHAT))
                        }
                    }
                }
            }
            other => return Err(Unsupported::new(other, NOT_CHAT)),
        }
    }
    match body.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &format!("input[{i}]"), &mut messages)?;
            }
        }
        _ => {
            return Err(Unsupported::new(
                "input",
                "is required and must be a string or an array of items",
            ))
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(out)
}

fn tools(v: &Value) -> Result<Value> {
    let list = v
        .as_array()
        .ok_or_else(|| Unsupported::new("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let t = object(t, &at)?;
        let kind = string(t, "type", &at)?;
        if kind != "function" {
            return Err(Unsupported::new(
                format!("{at}.type"),
                format!("built-in tool `{kind}` is not supported; only function tools are"),
            ));
        }
        let mut f = Map::new();
        for (k, v) in t.iter().filter(|(k, _)| k.as_str() != "type") {
            match k.as_str() {
                "name" | "description" | "parameters" | "strict" => {
                    f.insert(k.clone(), v.clone());
                }
                other => return Err(Unsupported::new(format!("{at}.{other}"), NOT_CHAT)),
            }
        }
        string(&f, "name", &at)?;
        out.push(json!({"type": "function", "function": f}));
    }
    Ok(Value::Array(out))
}

fn tool_choice(v: &Value) -> Result<Value> {
    match v {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(v.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            Ok(json!({"type": "function", "function": {"name": string(o, "name", "tool_choice")?}}))
        }
        _ => Err(Unsupported::new(
            "tool_choice",
            "must be auto, none, required or a function choice",
        )),
    }
}

fn text_format(v: &Value) -> Result<Option<Value>> {
    let t = object(v, "text")?;
    if let Some((k, _)) = t
        .iter()
        .find(|(k, v)| k.as_str() != "format" && !v.is_null())
    {
        return Err(Unsupported::new(format!("text.{k}"), NOT_CHAT));
    }
    let Some(f) = t.get("format").filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let f = object(f, "text.format")?;
    match string(f, "type", "text.format")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({"type": "json_object"}))),
        "json_schema" => {
            let mut schema = f.clone();
            schema.remove("type");
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        other => Err(Unsupported::new(
            "text.format.type",
            format!("`{other}` is not supported"),
        )),
    }
}

fn input_item(item: &Value, at: &str, messages: &mut Vec<Value>) -> Result<()> {
    let o = object(item, at)?;
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("message");
    match kind {
        "message" => {
            let role = string(o, "role", at)?;
            if !matches!(role, "user" | "system" | "developer" | "assistant") {
                return Err(Unsupported::new(
                    format!("{at}.role"),
                    "is not a known role",
                ));
            }
            let content = match o.get("content") {
                Some(Value::String(s)) => json!(s),
                Some(Value::Array(parts)) => content_parts(parts, &format!("{at}.content"))?,
                _ => {
                    return Err(Unsupported::new(
                        format!("{at}.content"),
                        "must be a string or an array",
                    ))
                }
            };
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call = json!({
                "id": string(o, "call_id", at)?,
                "type": "function",
                "function": {"name": string(o, "name", at)?, "arguments": string(o, "arguments", at)?},
            });
            // Consecutive calls belong to one assistant turn.
            let last_is_calls = messages.last().is_some_and(|m| {
                m.get("role").and_then(Value::as_str) == Some("assistant")
                    && m.get("tool_calls").is_some()
            });
            match messages.last_mut() {
                Some(m) if last_is_calls => {
                    if let Some(Value::Array(calls)) = m.get_mut("tool_calls") {
                        calls.push(call);
                    }
                }
                _ => messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match o.get("output") {
                Some(Value::String(s)) => json!(s),
                Some(Value::Array(parts)) => content_parts(parts, &format!("{at}.output"))?,
                _ => {
                    return Err(Unsupported::new(
                        format!("{at}.output"),
                        "must be a string or an array",
                    ))
                }
            };
            messages.push(
                json!({"role": "tool", "tool_call_id": string(o, "call_id", at)?,
                "content": output}),
            );
        }
        other => {
            return Err(Unsupported::new(
                format!("{at}.type"),
                format!("item type `{other}` is not supported (stateless Responses only)"),
            ))
        }
    }
    Ok(())
}

fn content_parts(parts: &[Value], at: &str) -> Result<Value> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let pat = format!("{at}[{j}]");
        let p = object(p, &pat)?;
        out.push(match string(p, "type", &pat)? {
            "input_text" | "output_text" | "text" => {
                json!({"type": "text", "text": string(p, "text", &pat)?})
            }
            "input_image" => {
                let url = string(p, "image_url", &pat)?;
                let mut img = json!({"url": url});
                if let Some(d) = p.get("detail").filter(|d| !d.is_null()) {
                    img["detail"] = d.clone();
                }
                json!({"type": "image_url", "image_url": img})
            }
            other => {
                return Err(Unsupported::new(
                    format!("{pat}.type"),
                    format!("`{other}` is not supported"),
                ))
            }
        });
    }
    Ok(Value::Array(out))
}

/// Chat usage → Responses usage.
pub fn usage(u: &Value) -> Value {
    Tokens::json(u).responses()
}

/// The response object around `output`, echoing the request's settings.
pub fn envelope(id: &str, request: &Map<String, Value>, model: &Value, status: &str) -> Value {
    let get = |k: &str, d: Value| {
        request
            .get(k)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(d)
    };
    json!({
        "id": id,
        "object": "response",
        "created_at": now_secs(),
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": get("instructions", Value::Null),
        "max_output_tokens": get("max_output_tokens", Value::Null),
        "model": model,
        "output": [],
        "parallel_tool_calls": get("parallel_tool_calls", json!(true)),
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": get("temperature", json!(1.0)),
        "text": get("text", json!({"format": {"type": "text"}})),
        "tool_choice": get("tool_choice", json!("auto")),
        "tools": get("tools", json!([])),
        "top_p": get("top_p", json!(1.0)),
        "truncation": "disabled",
        "usage": null,
        "user": get("user", Value::Null),
        "metadata": {},
    })
}

/// `resp_…` id for a chat completion id.
pub fn response_id(id: Option<&str>) -> String {
    format!("resp_{}", id.unwrap_or("tollgate"))
}

/// Sets `status` / `incomplete_details` from a chat `finish_reason`.
pub fn set_status(resp: &mut Value, finish: Option<&str>) {
    let reason = match finish {
        Some("length") => "max_output_tokens",
        Some("content_filter") => "content_filter",
        _ => {
            resp["status"] = json!("completed");
            return;
        }
    };
    resp["status"] = json!("incomplete");
    resp["incomplete_details"] = json!({"reason": reason});
}

/// Chat completion → Responses response.
pub fn from_chat(
    chat: &Value,
    request: &Map<String, Value>,
) -> std::result::Result<Value, AnswerError> {
    let choice = chat
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or(AnswerError::NoChoices)?;
    let message = choice.get("message").ok_or(AnswerError::NoMessage)?;
    let id = response_id(chat.get("id").and_then(Value::as_str));
    let mut resp = envelope(
        &id,
        request,
        chat.get("model").unwrap_or(&Value::Null),
        "completed",
    );
    let mut output = Vec::new();
    let text = message.get("content").and_then(Value::as_str).unwrap_or("");
    if !text.is_empty() {
        output.push(
            json!({"type": "message", "id": format!("msg_{id}"), "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}),
        );
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let call_id = call.get("id").and_then(Value::as_str).unwrap_or("");
        output.push(
            json!({"type": "function_call", "id": format!("fc_{call_id}"),
            "call_id": call_id, "name": call.pointer("/function/name"),
            "arguments": call.pointer("/function/arguments"), "status": "completed"}),
        );
    }
    resp["output"] = Value::Array(output);
    set_status(
        &mut resp,
        choice.get("finish_reason").and_then(Value::as_str),
    );
    if let Some(u) = chat.get("usage") {
        resp["usage"] = usage(u);
    }
    Ok(resp)
}
