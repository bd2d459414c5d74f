//! Requests: OpenAI chat ⇄ Anthropic Messages. Everything both sides can
//! express maps field for field; Anthropic-only fields ride in the OpenAI
//! body as the documented extensions (`top_k`, `thinking`, `cache_control`
//! on parts, tools and tool messages, `thinking_blocks` on assistant
//! messages, `is_error` on tool messages); anything else is refused with
//! the field's path.

use serde_json::{json, Map, Value};

use crate::{object, split_data_url, string, Result, Unsupported};

/// `max_tokens` sent to Anthropic (which requires it) when the caller set none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

const NOT_ANTHROPIC: &str = "cannot be expressed in Anthropic's Messages API";
const NOT_OPENAI: &str = "has no equivalent in the OpenAI chat format the gateway routes on";

// ---------------------------------------------------------------- egress

/// OpenAI chat request → Anthropic Messages request (egress).
pub fn to_anthropic(body: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut max_tokens = None;
    let mut tool_choice = None;
    let mut parallel = true;
    for (key, v) in body {
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "temperature" | "top_p" | "top_k" | "thinking" | "stream" => {
                out.insert(key.clone(), v.clone());
            }
            "messages" | "stream_options" => {}
            "max_tokens" | "max_completion_tokens" => {
                max_tokens = Some(
                    v.as_u64()
                        .ok_or_else(|| Unsupported::new(key, "must be a positive integer"))?,
                );
            }
            "stop" => {
                let list = match v {
                    Value::String(s) => vec![Value::String(s.clone())],
                    Value::Array(a) => a.clone(),
                    _ => return Err(Unsupported::new("stop", "must be a string or an array")),
                };
                out.insert("stop_sequences".into(), Value::Array(list));
            }
            "tools" => {
                out.insert("tools".into(), tools_to_anthropic(v)?);
            }
            "tool_choice" => tool_choice = Some(v),
            "parallel_tool_calls" => parallel = v.as_bool().unwrap_or(true),
            "user" => {
                out.insert("metadata".into(), json!({ "user_id": v }));
            }
            "n" if v.as_u64() == Some(1) => {}
            "presence_penalty" | "frequency_penalty" if v.as_f64() == Some(0.0) => {}
            "logprobs" if v.as_bool() == Some(false) => {}
            "response_format" if v.get("type").and_then(Value::as_str) == Some("text") => {}
            other => return Err(Unsupported::new(other, NOT_ANTHROPIC)),
        }
    }
    out.insert(
        "max_tokens".into(),
        json!(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if let Some(choice) = tool_choice {
        out.insert(
            "tool_choice".into(),
            tool_choice_to_anthropic(choice, parallel)?,
        );
    } else if !parallel && out.contains_key("tools") {
        out.insert(
            "tool_choice".into(),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        );
    }
    let (system, messages) = messages_to_anthropic(body.get("messages"))?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(out)
}

fn tools_to_anthropic(tools: &Value) -> Result<Value> {
    let list = tools
        .as_array()
        .ok_or_else(|| Unsupported::new("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let t = object(t, &at)?;
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(Unsupported::new(
                format!("{at}.type"),
                "must be `function` (Anthropic only takes function tools here)",
            ));
        }
        let f = object(
            t.get("function").unwrap_or(&Value::Null),
            &format!("{at}.function"),
        )?;
        let mut tool = Map::new();
        for (k, v) in f {
            match k.as_str() {
                "name" | "description" | "strict" => {
                    tool.insert(k.clone(), v.clone());
                }
                "parameters" => {
                    tool.insert("input_schema".into(), v.clone());
                }
                other => {
                    return Err(Unsupported::new(
                        format!("{at}.function.{other}"),
                        NOT_ANTHROPIC,
                    ))
                }
            }
        }
        string(&tool, "name", &format!("{at}.function"))?;
        tool.entry("input_schema")
            .or_insert_with(|| json!({"type": "object", "properties": {}}));
        if let Some(cc) = t.get("cache_control") {
            tool.insert("cache_control".into(), cc.clone());
        }
        out.push(Value::Object(tool));
    }
    Ok(Value::Array(out))
}

fn tool_choice_to_anthropic(choice: &Value, parallel: bool) -> Result<Value> {
    let mut out = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => return Ok(json!({"type": "none"})),
            "required" => json!({"type": "any"}),
            _ => return Err(Unsupported::new("tool_choice", "is not a known choice")),
        },
        Value::Object(o) => match o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => json!({"type": "tool", "name": name}),
            None => return Err(Unsupported::new("tool_choice.function.name", "is required")),
        },
        _ => {
            return Err(Unsupported::new(
                "tool_choice",
                "must be a string or an object",
            ))
        }
    };
    if !parallel {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(out)
}

fn messages_to_anthropic(messages: Option<&Value>) -> Result<(Option<Value>, Vec<Value>)> {
    let list = messages
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported::new("messages", "must be an array"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut system_strings = 0usize;
    let mut turns: Vec<(String, Value)> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let m = object(m, &at)?;
        let role = string(m, "role", &at)?;
        let allowed: &[&str] = match role {
            "system" | "developer" => &["role", "content"],
            "user" => &["role", "content"],
            "assistant" => &[
                "role",
                "content",
                "tool_calls",
                "thinking_blocks",
                "refusal",
            ],
            "tool" => &[
                "role",
                "content",
                "tool_call_id",
                "is_error",
                "cache_control",
            ],
            _ => {
                return Err(Unsupported::new(
                    format!("{at}.role"),
                    format!("`{role}` {NOT_ANTHROPIC}"),
                ))
            }
        };
        if let Some(k) = m
            .iter()
            .find(|(k, v)| !v.is_null() && !allowed.contains(&k.as_str()))
            .map(|(k, _)| k)
        {
            return Err(Unsupported::new(format!("{at}.{k}"), NOT_ANTHROPIC));
        }
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => {
                if content.is_string() {
                    system_strings += 1;
                }
                system.extend(parts_to_blocks(content, &format!("{at}.content"), false)?);
            }
            "user" => {
                let c = match content {
                    Value::String(s) => Value::String(s.clone()),
                    _ => Value::Array(parts_to_blocks(content, &format!("{at}.content"), true)?),
                };
                push_turn(&mut turns, "user", c);
            }
            "assistant" => push_turn(&mut turns, "assistant", assistant_blocks(m, &at)?),
            _ => {
                let id = string(m, "tool_call_id", &at)?;
                let mut block = json!({"type": "tool_result", "tool_use_id": id});
                block["content"] = match content {
                    Value::String(s) => Value::String(s.clone()),
                    Value::Null => Value::String(String::new()),
                    _ => Value::Array(parts_to_blocks(content, &format!("{at}.content"), false)?),
                };
                if m.get("is_error").and_then(Value::as_bool) == Some(true) {
                    block["is_error"] = Value::Bool(true);
                }
                if let Some(cc) = m.get("cache_control") {
                    block["cache_control"] = cc.clone();
                }
                push_turn(&mut turns, "user", Value::Array(vec![block]));
            }
        }
    }
    let system = match (system.len(), system_strings) {
        (0, _) => None,
        (1, 1) => system[0].get("text").cloned(),
        _ => Some(Value::Array(system)),
    };
    let messages = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, messages))
}

/// Appends content to the last turn when it has the same role (Anthropic
/// wants tool results and the next user text in one user turn).
fn push_turn(turns: &mut Vec<(String, Value)>, role: &str, content: Value) {
    let as_blocks = |c: Value| match c {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    match turns.last_mut() {
        Some((r, prev)) if r == role => {
            let mut blocks = as_blocks(std::mem::take(prev));
            blocks.extend(as_blocks(content));
            *prev = Value::Array(blocks);
        }
        _ => turns.push((role.to_string(), content)),
    }
}

/// OpenAI content (string or parts) → Anthropic blocks.
fn parts_to_blocks(content: &Value, at: &str, images: bool) -> Result<Vec<Value>> {
    let parts = match content {
        Value::String(s) => return Ok(vec![json!({"type": "text", "text": s})]),
        Value::Null => return Ok(Vec::new()),
        Value::Array(p) => p,
        _ => {
            return Err(Unsupported::new(
                at,
                "must be a string or an array of parts",
            ))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let pat = format!("{at}[{j}]");
        let p = object(p, &pat)?;
        let kind = string(p, "type", &pat)?;
        let mut block = match kind {
            "text" => json!({"type": "text", "text": string(p, "text", &pat)?}),
            "image_url" if images => {
                let url = p
                    .get("image_url")
                    .and_then(|u| u.get("url").or(Some(u)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Unsupported::new(format!("{pat}.image_url.url"), "is required")
                    })?;
                json!({"type": "image", "source": image_source(url, &pat)?})
            }
            other => {
                return Err(Unsupported::new(
                    format!("{pat}.type"),
                    format!("`{other}` {NOT_ANTHROPIC} here"),
                ))
            }
        };
        if let Some(cc) = p.get("cache_control") {
            block["cache_control"] = cc.clone();
        }
        out.push(block);
    }
    Ok(out)
}

fn image_source(url: &str, at: &str) -> Result<Value> {
    if let Some((media, data)) = split_data_url(url) {
        return Ok(json!({"type": "base64", "media_type": media, "data": data}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "url", "url": url}));
    }
    Err(Unsupported::new(
        format!("{at}.image_url.url"),
        "must be an http(s) URL or a base64 data URL",
    ))
}

fn assistant_blocks(m: &Map<String, Value>, at: &str) -> Result<Value> {
    let mut blocks: Vec<Value> = match m.get("thinking_blocks") {
        Some(Value::Array(b)) => b.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(Unsupported::new(
                format!("{at}.thinking_blocks"),
                "must be an array",
            ))
        }
    };
    let content = m.get("content").unwrap_or(&Value::Null);
    let calls = match m.get("tool_calls") {
        Some(Value::Array(c)) => c.as_slice(),
        _ => &[],
    };
    if blocks.is_empty() && calls.is_empty() {
        if let Value::String(s) = content {
            return Ok(Value::String(s.clone()));
        }
    }
    if !matches!(content, Value::String(s) if s.is_empty()) {
        blocks.extend(parts_to_blocks(content, &format!("{at}.content"), false)?);
    }
    for (k, c) in calls.iter().enumerate() {
        let cat = format!("{at}.tool_calls[{k}]");
        let c = object(c, &cat)?;
        let f = object(
            c.get("function").unwrap_or(&Value::Null),
            &format!("{cat}.function"),
        )?;
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
        let input: Value = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|_| {
                Unsupported::new(format!("{cat}.function.arguments"), "is not valid JSON")
            })?
        };
        blocks.push(json!({
            "type": "tool_use",
            "id": string(c, "id", &cat)?,
            "name": string(f, "name", &format!("{cat}.function"))?,
            "input": input,
        }));
    }
    Ok(Value::Array(blocks))
}

// --------------------------------------------------------------- ingress

/// Anthropic Messages request → OpenAI chat request (ingress).
pub fn from_anthropic(body: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut messages: Vec<Value> = Vec::new();
    let mut tool_choice: Option<Value> = None;
    let mut parallel = None;
    for (key, v) in body {
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "max_tokens" | "temperature" | "top_p" | "top_k" | "stream" => {
                out.insert(key.clone(), v.clone());
            }
            "thinking" => {
                out.insert(key.clone(), v.clone());
            }
            "stop_sequences" => {
                out.insert("stop".into(), v.clone());
            }
            "system" => messages.push(system_message(v)?),
            "messages" => {}
            "metadata" => {
                let m = object(v, "metadata")?;
                if let Some((k, _)) = m.iter().find(|(k, _)| k.as_str() != "user_id") {
                    return Err(Unsupported::new(format!("metadata.{k}"), NOT_OPENAI));
                }
                if let Some(u) = m.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("user".into(), u.clone());
                }
            }
            "tools" => {
                out.insert("tools".into(), tools_from_anthropic(v)?);
            }
            "tool_choice" => {
                let (choice, par) = tool_choice_from_anthropic(v)?;
                tool_choice = choice;
                parallel = par;
            }
            other => return Err(Unsupported::new(other, NOT_OPENAI)),
        }
    }
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported::new("messages", "is required and must be an array"))?;
    for (i, m) in list.iter().enumerate() {
        message_from_anthropic(m, &format!("messages[{i}]"), &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(c) = tool_choice {
        out.insert("tool_choice".into(), c);
    }
    if let Some(p) = parallel {
        out.insert("parallel_tool_calls".into(), Value::Bool(p));
    }
    Ok(out)
}

fn system_message(v: &Value) -> Result<Value> {
    let content = match v {
        Value::String(s) => Value::String(s.clone()),
        Value::Array(blocks) => Value::Array(blocks_to_parts(blocks, "system", &["text"])?),
        _ => return Err(Unsupported::new("system", "must be a string or an array")),
    };
    Ok(json!({"role": "system", "content": content}))
}

fn tools_from_anthropic(v: &Value) -> Result<Value> {
    let list = v
        .as_array()
        .ok_or_else(|| Unsupported::new("tools", "must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let t = object(t, &at)?;
        let mut f = Map::new();
        let mut tool = Map::new();
        tool.insert("type".into(), json!("function"));
        for (k, v) in t {
            match k.as_str() {
                "name" | "description" | "strict" => {
                    f.insert(k.clone(), v.clone());
                }
                "input_schema" => {
                    f.insert("parameters".into(), v.clone());
                }
                "cache_control" => {
                    tool.insert(k.clone(), v.clone());
                }
                "type" if v.as_str() == Some("custom") => {}
                "type" => {
                    return Err(Unsupported::new(
                        format!("{at}.type"),
                        format!("server tool `{}` {NOT_OPENAI}", v.as_str().unwrap_or("?")),
                    ))
                }
                other => return Err(Unsupported::new(format!("{at}.{other}"), NOT_OPENAI)),
            }
        }
        string(&f, "name", &at)?;
        tool.insert("function".into(), Value::Object(f));
        out.push(Value::Object(tool));
    }
    Ok(Value::Array(out))
}

fn tool_choice_from_anthropic(v: &Value) -> Result<(Option<Value>, Option<bool>)> {
    let o = object(v, "tool_choice")?;
    let parallel = o
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|d| !d);
    let choice = match string(o, "type", "tool_choice")? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            json!({"type": "function", "function": {"name": string(o, "name", "tool_choice")?}})
        }
        other => {
            return Err(Unsupported::new(
                "tool_choice.type",
                format!("`{other}` is not a known choice"),
            ))
        }
    };
    Ok((Some(choice), parallel))
}

/// Anthropic blocks → OpenAI parts (text, images), keeping `cache_control`.
fn blocks_to_parts(blocks: &[Value], at: &str, kinds: &[&str]) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        let bat = format!("{at}[{j}]");
        let b = object(b, &bat)?;
        let kind = string(b, "type", &bat)?;
        if !kinds.contains(&kind) {
            return Err(Unsupported::new(
                format!("{bat}.type"),
                format!("`{kind}` {NOT_OPENAI} here"),
            ));
        }
        let mut part = match kind {
            "text" => {
                if b.get("citations").is_some_and(|c| !c.is_null()) {
                    return Err(Unsupported::new(format!("{bat}.citations"), NOT_OPENAI));
                }
                json!({"type": "text", "text": string(b, "text", &bat)?})
            }
            _ => json!({"type": "image_url", "image_url": {"url": image_url(b, &bat)?}}),
        };
        if let Some(cc) = b.get("cache_control") {
            part["cache_control"] = cc.clone();
        }
        out.push(part);
    }
    Ok(out)
}

fn image_url(b: &Map<String, Value>, at: &str) -> Result<String> {
    let src = object(
        b.get("source").unwrap_or(&Value::Null),
        &format!("{at}.source"),
    )?;
    let sat = format!("{at}.source");
    match string(src, "type", &sat)? {
        "base64" => Ok(format!(
            "data:{};base64,{}",
            string(src, "media_type", &sat)?,
            string(src, "data", &sat)?
        )),
        "url" => Ok(string(src, "url", &sat)?.to_string()),
        other => Err(Unsupported::new(
            format!("{sat}.type"),
            format!("`{other}` {NOT_OPENAI}"),
        )),
    }
}

fn message_from_anthropic(m: &Value, at: &str, out: &mut Vec<Value>) -> Result<()> {
    let m = object(m, at)?;
    if let Some((k, _)) = m
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "role" | "content"))
    {
        return Err(Unsupported::new(format!("{at}.{k}"), NOT_OPENAI));
    }
    let role = string(m, "role", at)?;
    let content = m.get("content").unwrap_or(&Value::Null);
    let cat = format!("{at}.content");
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(b) => b,
        _ => return Err(Unsupported::new(cat, "must be a string or an array")),
    };
    match role {
        "user" => user_from_anthropic(blocks, &cat, out),
        "assistant" => {
            out.push(assistant_from_anthropic(blocks, &cat)?);
            Ok(())
        }
        other => Err(Unsupported::new(
            format!("{at}.role"),
            format!("`{other}` must be `user` or `assistant`"),
        )),
    }
}

/// Tool results become `tool` messages (in order, before the rest of the turn).
fn user_from_anthropic(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<()> {
    let mut rest = Vec::new();
    let mut rest_at = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bat = format!("{at}[{j}]");
        if b.get("type").and_then(Value::as_str) != Some("tool_result") {
            rest.push(b.clone());
            rest_at.push(j);
            continue;
        }
        let b = object(b, &bat)?;
        let mut msg = json!({"role": "tool", "tool_call_id": string(b, "tool_use_id", &bat)?});
        msg["content"] = match b.get("content") {
            None | Some(Value::Null) => json!(""),
            Some(Value::String(s)) => json!(s),
            Some(Value::Array(parts)) => Value::Array(blocks_to_parts(
                parts,
                &format!("{bat}.content"),
                &["text"],
            )?),
            Some(_) => {
                return Err(Unsupported::new(
                    format!("{bat}.content"),
                    "must be a string or an array",
                ))
            }
        };
        if let Some(e) = b.get("is_error").filter(|e| e.as_bool() == Some(true)) {
            msg["is_error"] = e.clone();
        }
        if let Some(cc) = b.get("cache_control") {
            msg["cache_control"] = cc.clone();
        }
        out.push(msg);
    }
    if !rest.is_empty() {
        let parts = blocks_to_parts(&rest, at, &["text", "image"]).map_err(|mut e| {
            // Name the block by its index in the original list.
            if let Some(orig) = e
                .field
                .strip_prefix(&format!("{at}["))
                .and_then(|r| r.split_once(']'))
                .and_then(|(n, tail)| Some((rest_at.get(n.parse::<usize>().ok()?)?, tail)))
            {
                e.field = format!("{at}[{}]{}", orig.0, orig.1);
            }
            e
        })?;
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn assistant_from_anthropic(blocks: &[Value], at: &str) -> Result<Value> {
    let mut texts: Vec<Value> = Vec::new();
    let mut calls = Vec::new();
    let mut thinking = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bat = format!("{at}[{j}]");
        let o = object(b, &bat)?;
        match string(o, "type", &bat)? {
            "text" => texts.extend(blocks_to_parts(std::slice::from_ref(b), at, &["text"])?),
            "thinking" | "redacted_thinking" => thinking.push(b.clone()),
            "tool_use" => {
                let input = o.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": string(o, "id", &bat)?,
                    "type": "function",
                    "function": {"name": string(o, "name", &bat)?, "arguments": input.to_string()},
                }));
            }
            other => {
                return Err(Unsupported::new(
                    format!("{bat}.type"),
                    format!("`{other}` {NOT_OPENAI}"),
                ))
            }
        }
    }
    let plain = texts.iter().all(|p| p.get("cache_control").is_none());
    let content = if texts.is_empty() {
        Value::Null
    } else if plain {
        Value::String(
            texts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        )
    } else {
        Value::Array(texts)
    };
    let mut msg = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    if !thinking.is_empty() {
        msg["thinking_blocks"] = Value::Array(thinking);
    }
    Ok(msg)
}

// ------------------------------------------------------------ portability

/// Makes an OpenAI body produced by Anthropic ingress fit a non-Anthropic
/// upstream: caching hints and earlier turns' thinking are removed
/// (documented: neither changes what the model is asked), `is_error` tool
/// results are marked in their text, and `thinking` / `top_k` — which
/// would change the answer — are refused.
pub fn make_portable(body: &mut Map<String, Value>) -> Result<()> {
    if body
        .get("thinking")
        .is_some_and(|t| t.get("type").and_then(Value::as_str) != Some("disabled"))
    {
        return Err(Unsupported::new(
            "thinking",
            "cannot be sent to a non-Anthropic upstream",
        ));
    }
    body.remove("thinking");
    if body.contains_key("top_k") {
        return Err(Unsupported::new(
            "top_k",
            "cannot be sent to a non-Anthropic upstream",
        ));
    }
    if let Some(Value::Array(tools)) = body.get_mut("tools") {
        for t in tools.iter_mut().filter_map(Value::as_object_mut) {
            t.remove("cache_control");
        }
    }
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for m in messages.iter_mut().filter_map(Value::as_object_mut) {
            m.remove("cache_control");
            m.remove("thinking_blocks");
            if m.remove("is_error").and_then(|e| e.as_bool()) == Some(true) {
                mark_error(m);
            }
            if let Some(Value::Array(parts)) = m.get_mut("content") {
                for p in parts.iter_mut().filter_map(Value::as_object_mut) {
                    p.remove("cache_control");
                }
            }
        }
    }
    Ok(())
}

fn mark_error(m: &mut Map<String, Value>) {
    const MARK: &str = "[tool error] ";
    match m.get_mut("content") {
        Some(Value::String(s)) => s.insert_str(0, MARK),
        Some(Value::Array(parts)) => parts.insert(0, json!({"type": "text", "text": MARK})),
        _ => {
            m.insert("content".into(), json!(MARK));
        }
    }
}
