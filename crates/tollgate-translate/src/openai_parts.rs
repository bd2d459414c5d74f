//! The OpenAI side of every translation, reading: a chat request into typed,
//! checked parts (messages, content parts, tools, tool choice, sampling
//! settings); the writing side is `openai_out.rs`. Each provider module maps
//! these to and from its own shape.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

pub use super::openai_out::*;
pub(crate) use super::Unsupported;

/// Top-level request fields every translation accepts without carrying:
/// routing and framing the gateway or the provider call already handles, and
/// `user`, an opaque end-user id that does not change the answer.
const FRAMING: &[&str] = &["model", "stream", "stream_options", "user"];

/// Rejects every top-level field that is neither framing nor in `carried`
/// (a `null` value counts as absent).
pub(crate) fn check_fields(
    body: &Map<String, Value>,
    carried: &[&str],
    target: &str,
) -> Result<(), Unsupported> {
    for (k, v) in body {
        if v.is_null() || FRAMING.contains(&k.as_str()) || carried.contains(&k.as_str()) {
            continue;
        }
        return Err(Unsupported::field(k.as_str(), target));
    }
    Ok(())
}

/// A non-null field.
pub(crate) fn get<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

/// A JSON object from moved values. `json!` copies every interpolated value
/// through serde's serializer, which costs more than the whole translation
/// on nested values; the hot paths build with this instead.
pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// The items of the array at `pointer` (none when absent or not an array).
pub(crate) fn list<'a>(v: &'a Value, pointer: &str) -> std::slice::Iter<'a, Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or([].iter(), |a| a.iter())
}

/// Copies `src[from]` to `out[to]` for each pair present.
pub(crate) fn copy_renamed(src: &Map<String, Value>, pairs: &[(&str, &str)], out: &mut Value) {
    for (from, to) in pairs {
        if let Some(v) = src.get(*from) {
            out[*to] = v.clone();
        }
    }
}

/// An OpenAI function tool from a declaration's name, description, schema.
pub(crate) fn function_tool_json(decl: &Value, parameters: Option<&Value>) -> Value {
    let mut f = json!({"name": decl.get("name").cloned().unwrap_or(Value::Null)});
    if let Some(d) = decl.get("description") {
        f["description"] = d.clone();
    }
    if let Some(p) = parameters {
        f["parameters"] = p.clone();
    }
    json!({"type": "function", "function": f})
}

pub(crate) fn bad(field: impl Into<String>, message: impl Into<String>) -> Unsupported {
    Unsupported::with_message(field, message)
}

/// One piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    /// Inline bytes, base64 as sent: an image (`image/png`, …) or audio.
    Inline {
        mime: String,
        data: String,
    },
}

/// `content` as parts: a string, or an array of `text`, `image_url` (data
/// URLs only: the gateway never fetches) and `input_audio` parts.
pub(crate) fn content_parts(
    content: Option<&Value>,
    at: &str,
    target: &str,
) -> Result<Vec<Part>, Unsupported> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| content_part(p, &format!("{at}.content[{i}]"), target))
            .collect(),
        Some(_) => Err(bad(
            format!("{at}.content"),
            format!("`{at}.content` must be a string or an array of parts"),
        )),
    }
}

fn content_part(p: &Value, at: &str, target: &str) -> Result<Part, Unsupported> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => p
            .get("text")
            .and_then(Value::as_str)
            .map(|t| Part::Text(t.to_string()))
            .ok_or_else(|| {
                bad(
                    format!("{at}.text"),
                    format!("`{at}.text` must be a string"),
                )
            }),
        "image_url" => {
            let url = p
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .unwrap_or("");
            data_url(url).ok_or_else(|| {
                bad(
                    format!("{at}.image_url.url"),
                    format!(
                        "`{at}.image_url.url` must be a base64 data: URL for {target} \
                         (the gateway does not fetch remote images)"
                    ),
                )
            })
        }
        "input_audio" => {
            let data = p.pointer("/input_audio/data").and_then(Value::as_str);
            let format = p.pointer("/input_audio/format").and_then(Value::as_str);
            match (data, format) {
                (Some(data), Some(format)) => Ok(Part::Inline {
                    mime: format!("audio/{format}"),
                    data: data.to_string(),
                }),
                _ => Err(bad(
                    format!("{at}.input_audio"),
                    format!("`{at}.input_audio` needs `data` and `format`"),
                )),
            }
        }
        other => Err(bad(
            format!("{at}.type"),
            format!("content part type `{other}` at `{at}` cannot be carried to {target}"),
        )),
    }
}

/// `data:<mime>;base64,<data>` → an inline part.
pub(crate) fn data_url(url: &str) -> Option<Part> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some(Part::Inline {
        mime: if mime.is_empty() {
            "application/octet-stream".into()
        } else {
            mime.to_string()
        },
        data: data.to_string(),
    })
}

/// The OpenAI content part for inline bytes (images as data URLs).
pub(crate) fn inline_to_openai(mime: &str, data: &str) -> Value {
    match mime.strip_prefix("audio/") {
        Some(format) => {
            json!({"type": "input_audio", "input_audio": {"data": data, "format": format}})
        }
        None => {
            json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{data}")}})
        }
    }
}

/// All text of a content value (tool results): a string or text parts.
pub(crate) fn content_text(
    content: Option<&Value>,
    at: &str,
    target: &str,
) -> Result<String, Unsupported> {
    let mut out = String::new();
    for p in content_parts(content, at, target)? {
        match p {
            Part::Text(t) => out.push_str(&t),
            Part::Inline { .. } => {
                return Err(bad(
                    format!("{at}.content"),
                    format!("`{at}.content` of a tool message must be text for {target}"),
                ))
            }
        }
    }
    Ok(out)
}

/// One chat message, read and checked: every key it holds is carried
/// (`name` and other extras are refused, `null`s count as absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Msg {
    /// `system` and `developer` messages (text only).
    System(String),
    User(Vec<Part>),
    Assistant {
        parts: Vec<Part>,
        calls: Vec<ToolCall>,
    },
    Tool {
        id: String,
        text: String,
    },
}

/// `messages`, each with its parameter path (`messages[3]`).
pub(crate) fn messages(
    body: &Map<String, Value>,
    target: &str,
) -> Result<Vec<(String, Msg)>, Unsupported> {
    let messages = get(body, "messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("messages", "`messages` must be an array"))?;
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("messages[{i}]");
            for (k, v) in m.as_object().into_iter().flatten() {
                let carried = matches!(
                    k.as_str(),
                    "role" | "content" | "tool_calls" | "tool_call_id"
                );
                if !carried && !v.is_null() {
                    return Err(Unsupported::field(format!("{at}.{k}"), target));
                }
            }
            let msg = match m.get("role").and_then(Value::as_str).unwrap_or("") {
                "system" | "developer" => Msg::System(content_text(m.get("content"), &at, target)?),
                "user" => Msg::User(content_parts(m.get("content"), &at, target)?),
                "assistant" => Msg::Assistant {
                    parts: content_parts(m.get("content"), &at, target)?
                        .into_iter()
                        .filter(|p| *p != Part::Text(String::new()))
                        .collect(),
                    calls: tool_calls(m, &at)?,
                },
                "tool" => Msg::Tool {
                    id: m
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            bad(
                                format!("{at}.tool_call_id"),
                                "a tool message needs `tool_call_id`",
                            )
                        })?
                        .to_string(),
                    text: content_text(m.get("content"), &at, target)?,
                },
                other => {
                    return Err(bad(
                        format!("{at}.role"),
                        format!("role `{other}` cannot be carried to {target}"),
                    ))
                }
            };
            Ok((at, msg))
        })
        .collect()
}

/// A tool result that is a JSON object, as the object.
pub(crate) fn json_object(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

/// Appends `items` to the last turn when it has the same role (the target
/// shapes want one turn per speaker change), else starts a turn
/// `{"role": role, key: items}`.
pub(crate) fn push_turn(turns: &mut Vec<Value>, role: &str, key: &str, items: Vec<Value>) {
    if let Some(last) = turns.last_mut().filter(|t| t["role"] == role) {
        if let Some(list) = last[key].as_array_mut() {
            list.extend(items);
            return;
        }
    }
    turns.push(obj([("role", role.into()), (key, Value::Array(items))]));
}

/// One assistant tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The parsed arguments object.
    pub args: Value,
}

pub(crate) fn tool_calls(msg: &Value, at: &str) -> Result<Vec<ToolCall>, Unsupported> {
    let Some(calls) = msg.get("tool_calls").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let calls = calls
        .as_array()
        .ok_or_else(|| bad(format!("{at}.tool_calls"), "`tool_calls` must be an array"))?;
    calls
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let at = format!("{at}.tool_calls[{j}]");
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{at}.function.name"), "a tool call needs a name"))?;
            let raw = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let args = parse_arguments(raw, &format!("{at}.function.arguments"))?;
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| call_id(name, raw, j), str::to_owned);
            Ok(ToolCall {
                id,
                name: name.to_string(),
                args,
            })
        })
        .collect()
}

/// Tool-call arguments: a JSON object (empty text counts as `{}`).
pub(crate) fn parse_arguments(raw: &str, field: &str) -> Result<Value, Unsupported> {
    if raw.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad(field, format!("`{field}` must be a JSON object"))),
    }
}

/// A stable id for a tool call a shape gives none: the same call (name,
/// arguments, position) always gets the same id, so a client's follow-up
/// tool message finds its call again.
pub(crate) fn call_id(name: &str, args: &str, index: usize) -> String {
    let h = [name, "\u{0}", args]
        .iter()
        .flat_map(|s| s.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("call_{index}_{h:016x}")
}

/// Tool call id → function name over the conversation (tool results in
/// Gemini name the function, not the call).
pub(crate) fn call_names(messages: &[(String, Msg)]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (_, m) in messages {
        if let Msg::Assistant { calls, .. } = m {
            for c in calls {
                out.insert(c.id.clone(), c.name.clone());
            }
        }
    }
    out
}

/// A function tool.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionTool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

pub(crate) fn function_tools(
    body: &Map<String, Value>,
    target: &str,
) -> Result<Vec<FunctionTool>, Unsupported> {
    let Some(tools) = get(body, "tools") else {
        return Ok(Vec::new());
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| bad("tools", "`tools` must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "function" {
                return Err(bad(
                    format!("tools[{i}].type"),
                    format!("tool type `{kind}` cannot be carried to {target}"),
                ));
            }
            let f = t.get("function").unwrap_or(&Value::Null);
            for k in f.as_object().into_iter().flat_map(|o| o.keys()) {
                if !matches!(k.as_str(), "name" | "description" | "parameters" | "strict") {
                    return Err(Unsupported::field(
                        format!("tools[{i}].function.{k}"),
                        target,
                    ));
                }
            }
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                bad(
                    format!("tools[{i}].function.name"),
                    "a function tool needs a name",
                )
            })?;
            Ok(FunctionTool {
                name: name.to_string(),
                description: f
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters: f.get("parameters").filter(|v| !v.is_null()).cloned(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

pub(crate) fn tool_choice(body: &Map<String, Value>) -> Result<Option<ToolChoice>, Unsupported> {
    let Some(tc) = get(body, "tool_choice") else {
        return Ok(None);
    };
    let choice = match tc {
        Value::String(s) if s == "auto" => ToolChoice::Auto,
        Value::String(s) if s == "none" => ToolChoice::None,
        Value::String(s) if s == "required" => ToolChoice::Required,
        Value::Object(_) => match tc.pointer("/function/name").and_then(Value::as_str) {
            Some(name) if tc.get("type").and_then(Value::as_str) == Some("function") => {
                ToolChoice::Function(name.to_string())
            }
            _ => {
                return Err(bad(
                    "tool_choice",
                    "`tool_choice` must be auto, none, required or a function",
                ))
            }
        },
        _ => {
            return Err(bad(
                "tool_choice",
                "`tool_choice` must be auto, none, required or a function",
            ))
        }
    };
    Ok(Some(choice))
}

pub(crate) fn tool_choice_to_openai(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

/// `max_completion_tokens`, else `max_tokens`.
pub(crate) fn max_tokens(body: &Map<String, Value>) -> Result<Option<u64>, Unsupported> {
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = get(body, key) {
            return v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(key, format!("`{key}` must be a non-negative integer")));
        }
    }
    Ok(None)
}

/// `stop` as a list.
pub(crate) fn stop_sequences(
    body: &Map<String, Value>,
) -> Result<Option<Vec<String>>, Unsupported> {
    match get(body, "stop") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("stop", "`stop` must be a string or an array of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad(
            "stop",
            "`stop` must be a string or an array of strings",
        )),
    }
}

/// A number field, checked.
pub(crate) fn number(body: &Map<String, Value>, key: &str) -> Result<Option<Value>, Unsupported> {
    match get(body, key) {
        None => Ok(None),
        Some(v @ Value::Number(_)) => Ok(Some(v.clone())),
        Some(_) => Err(bad(key, format!("`{key}` must be a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_and_ids() {
        assert_eq!(
            data_url("data:image/png;base64,AAA="),
            Some(Part::Inline {
                mime: "image/png".into(),
                data: "AAA=".into()
            })
        );
        assert_eq!(data_url("https://x/y.png"), None);
        assert_eq!(call_id("f", "{}", 0), call_id("f", "{}", 0));
        assert_ne!(call_id("f", "{}", 0), call_id("f", "{}", 1));
    }

    #[test]
    fn unknown_fields_are_named() {
        let body = json!({"model": "m", "logit_bias": {"1": 2}, "user": "u", "seed": null});
        let e = check_fields(body.as_object().unwrap(), &[], "x").unwrap_err();
        assert_eq!(e.field, "logit_bias");
    }
}
