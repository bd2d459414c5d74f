//! OpenAI chat ⇄ Amazon Bedrock Converse, both directions: the `bedrock`
//! provider uses [`request`] and [`response`]; the mock upstream uses
//! [`to_openai_request`] and [`from_openai_response`]. Streaming
//! (ConverseStream's binary event stream) lives in `bedrock_stream.rs`.
//!
//! Mapping: `system`/`developer` messages → `system` blocks; user and
//! assistant content → content blocks (`text`, `image` with raw bytes);
//! tool calls ⇄ `toolUse`; `tool` messages → `toolResult` blocks in a user
//! turn (consecutive same-role turns merged, as Converse requires
//! alternation); tools ⇄ `toolConfig.tools[].toolSpec`; `tool_choice` ⇄
//! `toolConfig.toolChoice`; sampling ⇄ `inferenceConfig`; `stopReason` and
//! `usage` (cache reads and writes included) ⇄ `finish_reason` and `usage`.

use serde_json::{json, Map, Value};

use super::openai_parts::{
    self as oa, bad, function_tools, get, obj, tool_calls, Msg, Part, ToolCall, ToolChoice,
    Unsupported,
};

const TARGET: &str = "bedrock";

const CARRIED: &[&str] = &[
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "response_format",
];

/// OpenAI chat request → Converse request body (the model id goes in the path).
pub fn request(body: &Map<String, Value>) -> Result<Value, Unsupported> {
    oa::check_fields(body, CARRIED, TARGET)?;
    if get(body, "parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        return Err(bad(
            "parallel_tool_calls",
            "`parallel_tool_calls: false` cannot be carried to bedrock",
        ));
    }
    if get(body, "n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(bad("n", "bedrock returns one choice: `n` must be 1"));
    }
    if let Some(rf) = get(body, "response_format") {
        if rf.get("type").and_then(Value::as_str) != Some("text") {
            return Err(bad(
                "response_format",
                "`response_format` json modes cannot be carried to bedrock Converse",
            ));
        }
    }
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    let mut tool_history = false;
    for (at, m) in oa::messages(body, TARGET)? {
        let (role, blocks) = match m {
            Msg::System(text) => {
                system.push(obj([("text", text.into())]));
                continue;
            }
            Msg::User(parts) => ("user", blocks_of(parts, &at)?),
            Msg::Assistant { parts, calls } => {
                tool_history |= !calls.is_empty();
                let mut blocks = blocks_of(parts, &at)?;
                blocks.extend(message_to_blocks("", &calls));
                ("assistant", blocks)
            }
            Msg::Tool { id, text } => {
                tool_history = true;
                let content = match oa::json_object(&text) {
                    Some(v) => obj([("json", v)]),
                    None => obj([("text", text.into())]),
                };
                let result = obj([
                    ("toolUseId", id.into()),
                    ("content", Value::Array(vec![content])),
                ]);
                ("user", vec![obj([("toolResult", result)])])
            }
        };
        oa::push_turn(&mut turns, role, "content", blocks);
    }
    let mut out = obj([("messages", Value::Array(turns))]);
    if !system.is_empty() {
        out["system"] = Value::Array(system);
    }
    if let Some(cfg) = tool_config(body, tool_history)? {
        out["toolConfig"] = cfg;
    }
    let mut inf = Map::new();
    if let Some(m) = oa::max_tokens(body)? {
        inf.insert("maxTokens".into(), json!(m));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(v) = oa::number(body, from)? {
            inf.insert(to.into(), v);
        }
    }
    if let Some(stop) = oa::stop_sequences(body)? {
        inf.insert("stopSequences".into(), json!(stop));
    }
    if !inf.is_empty() {
        out["inferenceConfig"] = Value::Object(inf);
    }
    Ok(out)
}

fn blocks_of(parts: Vec<Part>, at: &str) -> Result<Vec<Value>, Unsupported> {
    parts
        .into_iter()
        .map(|p| match p {
            Part::Text(t) => Ok(obj([("text", t.into())])),
            Part::Inline { mime, data } => {
                let format = match mime.as_str() {
                    "image/png" => "png",
                    "image/jpeg" | "image/jpg" => "jpeg",
                    "image/gif" => "gif",
                    "image/webp" => "webp",
                    _ => {
                        return Err(bad(
                            format!("{at}.content"),
                            format!("`{mime}` content at `{at}` cannot be carried to bedrock (png, jpeg, gif or webp images only)"),
                        ))
                    }
                };
                let source = obj([("bytes", data.into())]);
                Ok(obj([(
                    "image",
                    obj([("format", format.into()), ("source", source)]),
                )]))
            }
        })
        .collect()
}

fn tool_config(
    body: &Map<String, Value>,
    tool_history: bool,
) -> Result<Option<Value>, Unsupported> {
    let tools = function_tools(body, TARGET)?;
    let choice = oa::tool_choice(body)?;
    if tools.is_empty() {
        return Ok(None);
    }
    let choice = match choice {
        None | Some(ToolChoice::Auto) => json!({"auto": {}}),
        Some(ToolChoice::Required) => json!({"any": {}}),
        Some(ToolChoice::Function(name)) => json!({"tool": {"name": name}}),
        // Converse has no "none": leaving the tools out is the same thing,
        // unless the conversation already holds tool blocks (then Converse
        // requires the tool config).
        Some(ToolChoice::None) if !tool_history => return Ok(None),
        Some(ToolChoice::None) => return Err(bad(
            "tool_choice",
            "`tool_choice: none` cannot be carried to bedrock once the conversation has tool calls",
        )),
    };
    let specs: Vec<Value> = tools
        .iter()
        .map(|t| {
            let schema = t
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let mut spec = obj([
                ("name", t.name.as_str().into()),
                ("inputSchema", obj([("json", schema)])),
            ]);
            if let Some(d) = &t.description {
                spec["description"] = d.as_str().into();
            }
            obj([("toolSpec", spec)])
        })
        .collect();
    Ok(Some(obj([
        ("tools", Value::Array(specs)),
        ("toolChoice", choice),
    ])))
}

/// Converse `stopReason` → OpenAI `finish_reason`.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Converse usage → OpenAI usage. Bedrock counts cache reads and writes apart
/// from `inputTokens`; OpenAI's `prompt_tokens` includes them, with reads as
/// `cached_tokens` and writes as `cache_write_tokens`.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let read = n("cacheReadInputTokens");
    let write = n("cacheWriteInputTokens");
    let prompt = n("inputTokens").unwrap_or(0) + read.unwrap_or(0) + write.unwrap_or(0);
    let mut out = oa::usage(prompt, n("outputTokens").unwrap_or(0), read, None);
    if let Some(w) = write {
        out["prompt_tokens_details"]["cache_write_tokens"] = json!(w);
        if read.is_none() {
            out["prompt_tokens_details"]["cached_tokens"] = json!(0);
        }
    }
    out
}

/// A `toolUse` block as a tool call.
fn tool_use(tu: &Value) -> ToolCall {
    let text = |k: &str| tu.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    ToolCall {
        id: text("toolUseId"),
        name: text("name"),
        args: tu.get("input").cloned().unwrap_or_else(|| json!({})),
    }
}

/// Converse response → OpenAI chat completion.
pub fn response(b: &Value, id: &str, model: &str, created: u64) -> Value {
    let (mut text, mut thought, mut calls) = (String::new(), String::new(), Vec::new());
    for block in oa::list(b, "/output/message/content") {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(t) = block
            .pointer("/reasoningContent/reasoningText/text")
            .and_then(Value::as_str)
        {
            thought.push_str(t);
        } else if let Some(tu) = block.get("toolUse") {
            calls.push(tool_use(tu));
        }
    }
    let mut message = oa::assistant_message(&text, &calls);
    if !thought.is_empty() {
        message["reasoning_content"] = json!(thought);
    }
    let reason = b
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let choice = obj([
        ("index", 0.into()),
        ("message", message),
        ("logprobs", Value::Null),
        ("finish_reason", finish_reason(reason).into()),
    ]);
    oa::completion(
        id,
        model,
        created,
        vec![choice],
        usage(b.get("usage").unwrap_or(&Value::Null)),
    )
}

// ---- The other direction (the mock upstream speaks Converse) ----

/// Converse request → OpenAI chat request for `model` (mock upstream).
pub fn to_openai_request(b: &Value, model: &str, stream: bool) -> Value {
    let mut messages = Vec::new();
    let sys: Vec<&str> = oa::list(b, "/system")
        .filter_map(|s| s.get("text").and_then(Value::as_str))
        .collect();
    if !sys.is_empty() {
        messages.push(json!({"role": "system", "content": sys.join("\n")}));
    }
    for turn in oa::list(b, "/messages") {
        let role = turn.get("role").and_then(Value::as_str).unwrap_or("user");
        let (mut content, mut calls) = (Vec::new(), Vec::new());
        for block in oa::list(turn, "/content") {
            if let Some(t) = block.get("text").and_then(Value::as_str) {
                content.push(json!({"type": "text", "text": t}));
            } else if let Some(img) = block.get("image") {
                let format = img.get("format").and_then(Value::as_str).unwrap_or("png");
                let data = img
                    .pointer("/source/bytes")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                content.push(oa::inline_to_openai(&format!("image/{format}"), data));
            } else if let Some(tu) = block.get("toolUse") {
                calls.push(tool_use(tu));
            } else if let Some(tr) = block.get("toolResult") {
                let text: String = oa::list(tr, "/content")
                    .map(|c| match (c.get("text"), c.get("json")) {
                        (Some(Value::String(t)), _) => t.clone(),
                        (_, Some(j)) => j.to_string(),
                        _ => String::new(),
                    })
                    .collect();
                messages.push(json!({"role": "tool",
                    "tool_call_id": tr.get("toolUseId").cloned().unwrap_or(Value::Null),
                    "content": text}));
            }
        }
        if role == "assistant" {
            let text: String = content
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            messages.push(oa::assistant_message(&text, &calls));
        } else if !content.is_empty() {
            messages.push(json!({"role": "user", "content": content}));
        }
    }
    let mut out = json!({"model": model, "messages": messages});
    if stream {
        out["stream"] = json!(true);
        out["stream_options"] = json!({"include_usage": true});
    }
    if let Some(tc) = b.get("toolConfig") {
        let tools: Vec<Value> = oa::list(tc, "/tools")
            .filter_map(|t| t.get("toolSpec"))
            .map(|s| oa::function_tool_json(s, s.pointer("/inputSchema/json")))
            .collect();
        out["tools"] = json!(tools);
        let choice = match tc.get("toolChoice") {
            Some(c) if c.get("any").is_some() => ToolChoice::Required,
            Some(c) => match c.pointer("/tool/name").and_then(Value::as_str) {
                Some(name) => ToolChoice::Function(name.to_string()),
                None => ToolChoice::Auto,
            },
            None => ToolChoice::Auto,
        };
        out["tool_choice"] = oa::tool_choice_to_openai(&choice);
    }
    if let Some(inf) = b.get("inferenceConfig").and_then(Value::as_object) {
        let pairs = [
            ("maxTokens", "max_tokens"),
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("stopSequences", "stop"),
        ];
        oa::copy_renamed(inf, &pairs, &mut out);
    }
    out
}

/// OpenAI `finish_reason` → Converse `stopReason`.
pub fn finish_to_bedrock(reason: &str) -> &'static str {
    match reason {
        "tool_calls" => "tool_use",
        "length" => "max_tokens",
        "content_filter" => "content_filtered",
        _ => "end_turn",
    }
}

/// OpenAI usage → Converse usage.
pub fn usage_to_bedrock(u: &Value) -> Value {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("/prompt_tokens_details/cached_tokens");
    let input = n("/prompt_tokens").saturating_sub(cached);
    let mut out = json!({
        "inputTokens": input,
        "outputTokens": n("/completion_tokens"),
        "totalTokens": input + n("/completion_tokens"),
    });
    if cached > 0 {
        out["cacheReadInputTokens"] = json!(cached);
    }
    out
}

/// The Converse content blocks of an OpenAI assistant message.
pub fn message_to_blocks(text: &str, calls: &[ToolCall]) -> Vec<Value> {
    let mut blocks = Vec::new();
    if !text.is_empty() {
        blocks.push(obj([("text", text.into())]));
    }
    for c in calls {
        let tu = obj([
            ("toolUseId", c.id.as_str().into()),
            ("name", c.name.as_str().into()),
            ("input", c.args.clone()),
        ]);
        blocks.push(obj([("toolUse", tu)]));
    }
    blocks
}

/// OpenAI chat completion → Converse response (mock upstream).
pub fn from_openai_response(o: &Value) -> Value {
    let choice = o.pointer("/choices/0").unwrap_or(&Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let text = msg.get("content").and_then(Value::as_str).unwrap_or("");
    let calls = tool_calls(msg, "message").unwrap_or_default();
    let reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    json!({
        "output": {"message": {"role": "assistant", "content": message_to_blocks(text, &calls)}},
        "stopReason": finish_to_bedrock(reason),
        "usage": usage_to_bedrock(o.get("usage").unwrap_or(&Value::Null)),
        "metrics": {"latencyMs": 0},
    })
}
