//! OpenAI chat ⇄ Gemini `generateContent`, both directions: the `gemini`
//! provider uses [`request`] and [`response`]; the mock upstream uses
//! [`to_openai_request`] and [`from_openai_response`] to answer in Gemini's
//! shape. Streaming lives in `gemini_stream.rs`.
//!
//! Mapping: `system`/`developer` messages → `systemInstruction`; `assistant`
//! → role `model`; tool calls ⇄ `functionCall` parts; `tool` messages →
//! `functionResponse` parts (the function is named through the call id);
//! images and audio ⇄ `inlineData`; tools ⇄ `functionDeclarations`;
//! `tool_choice` ⇄ `toolConfig.functionCallingConfig`; sampling settings ⇄
//! `generationConfig`; `finishReason` and `usageMetadata` ⇄ `finish_reason`
//! and `usage`.

use serde_json::{json, Map, Value};

use super::openai_parts::{
    self as oa, bad, call_id, call_names, function_tools, get, obj, tool_calls, Msg, Part,
    ToolCall, ToolChoice, Unsupported,
};

const TARGET: &str = "gemini";

/// Request fields the translation carries.
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
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "response_format",
];

/// OpenAI chat request → Gemini `GenerateContentRequest`.
pub fn request(body: &Map<String, Value>) -> Result<Value, Unsupported> {
    oa::check_fields(body, CARRIED, TARGET)?;
    if get(body, "parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        return Err(bad(
            "parallel_tool_calls",
            "`parallel_tool_calls: false` cannot be carried to gemini",
        ));
    }
    let messages = oa::messages(body, TARGET)?;
    let names = call_names(&messages);
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for (at, m) in messages {
        let (role, parts) = match m {
            Msg::System(text) => {
                system.push(obj([("text", text.into())]));
                continue;
            }
            Msg::User(parts) => ("user", parts_of(parts)),
            Msg::Assistant { parts, calls } => {
                let mut parts = parts_of(parts);
                for c in calls {
                    parts.push(function_call(c));
                }
                ("model", parts)
            }
            Msg::Tool { id, text } => {
                let name = names.get(&id).ok_or_else(|| {
                    bad(
                        format!("{at}.tool_call_id"),
                        format!(
                            "`{at}.tool_call_id` {id:?} matches no earlier assistant tool call"
                        ),
                    )
                })?;
                let response =
                    oa::json_object(&text).unwrap_or_else(|| obj([("content", text.into())]));
                let fr = obj([("name", name.as_str().into()), ("response", response)]);
                ("user", vec![obj([("functionResponse", fr)])])
            }
        };
        oa::push_turn(&mut contents, role, "parts", parts);
    }
    let mut out = obj([("contents", Value::Array(contents))]);
    if !system.is_empty() {
        out["systemInstruction"] = obj([("parts", Value::Array(system))]);
    }
    let tools = function_tools(body, TARGET)?;
    if !tools.is_empty() {
        let decls: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut d = obj([("name", t.name.as_str().into())]);
                if let Some(desc) = &t.description {
                    d["description"] = desc.as_str().into();
                }
                if let Some(p) = &t.parameters {
                    d["parameters"] = p.clone();
                }
                d
            })
            .collect();
        out["tools"] = Value::Array(vec![obj([("functionDeclarations", Value::Array(decls))])]);
    }
    if let Some(choice) = oa::tool_choice(body)? {
        let cfg = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        out["toolConfig"] = json!({"functionCallingConfig": cfg});
    }
    let gen = generation_config(body)?;
    if !gen.is_empty() {
        out["generationConfig"] = Value::Object(gen);
    }
    Ok(out)
}

fn function_call(c: ToolCall) -> Value {
    obj([(
        "functionCall",
        obj([("name", c.name.into()), ("args", c.args)]),
    )])
}

fn parts_of(parts: Vec<Part>) -> Vec<Value> {
    parts
        .into_iter()
        .map(|p| match p {
            Part::Text(t) => obj([("text", t.into())]),
            Part::Inline { mime, data } => obj([(
                "inlineData",
                obj([("mimeType", mime.into()), ("data", data.into())]),
            )]),
        })
        .collect()
}

fn generation_config(body: &Map<String, Value>) -> Result<Map<String, Value>, Unsupported> {
    let mut g = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
        ("n", "candidateCount"),
    ] {
        if let Some(v) = oa::number(body, from)? {
            g.insert(to.into(), v);
        }
    }
    if let Some(m) = oa::max_tokens(body)? {
        g.insert("maxOutputTokens".into(), json!(m));
    }
    if let Some(stop) = oa::stop_sequences(body)? {
        g.insert("stopSequences".into(), json!(stop));
    }
    if let Some(rf) = get(body, "response_format") {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                g.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                g.insert("responseMimeType".into(), json!("application/json"));
                if let Some(s) = rf.pointer("/json_schema/schema") {
                    g.insert("responseSchema".into(), s.clone());
                }
            }
            _ => {
                return Err(bad(
                    "response_format",
                    "`response_format.type` must be text, json_object or json_schema",
                ))
            }
        }
    }
    Ok(g)
}

/// Gemini `finishReason` → OpenAI `finish_reason`.
pub fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` → OpenAI usage (thinking tokens count as completion).
pub fn usage(meta: &Value) -> Value {
    let n = |k: &str| meta.get(k).and_then(Value::as_u64);
    let thoughts = n("thoughtsTokenCount");
    oa::usage(
        n("promptTokenCount").unwrap_or(0),
        n("candidatesTokenCount").unwrap_or(0) + thoughts.unwrap_or(0),
        n("cachedContentTokenCount"),
        thoughts,
    )
}

/// The OpenAI id of a Gemini response: `responseId` when sent.
pub fn response_id(g: &Value) -> String {
    match g.get("responseId").and_then(Value::as_str) {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-gemini-{}", &call_id("", &g.to_string(), 0)[7..]),
    }
}

/// The parts of one candidate: (text, thought text, calls).
pub fn candidate_parts(c: &Value, first_call: usize) -> (String, String, Vec<ToolCall>) {
    let (mut text, mut thought, mut calls) = (String::new(), String::new(), Vec::new());
    for p in oa::list(c, "/content/parts") {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                thought.push_str(t);
            } else {
                text.push_str(t);
            }
        }
        if let Some(fc) = p.get("functionCall") {
            let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
            let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
            let id = fc.get("id").and_then(Value::as_str).map_or_else(
                || call_id(name, &args.to_string(), first_call + calls.len()),
                str::to_owned,
            );
            calls.push(ToolCall {
                id,
                name: name.to_string(),
                args,
            });
        }
    }
    (text, thought, calls)
}

/// Gemini `GenerateContentResponse` → OpenAI chat completion.
pub fn response(g: &Value, model: &str, created: u64) -> Value {
    let mut choices = Vec::new();
    for (i, c) in oa::list(g, "/candidates").enumerate() {
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        let (text, thought, calls) = candidate_parts(c, 0);
        let mut message = oa::assistant_message(&text, &calls);
        if !thought.is_empty() {
            message["reasoning_content"] = json!(thought);
        }
        let reason = c
            .get("finishReason")
            .and_then(Value::as_str)
            .unwrap_or("STOP");
        choices.push(obj([
            ("index", index.into()),
            ("message", message),
            ("logprobs", Value::Null),
            (
                "finish_reason",
                finish_reason(reason, !calls.is_empty()).into(),
            ),
        ]));
    }
    if choices.is_empty() {
        // A blocked prompt: no candidates, only `promptFeedback.blockReason`.
        choices.push(json!({
            "index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": null,
            "finish_reason": "content_filter",
        }));
    }
    let model = g
        .get("modelVersion")
        .and_then(Value::as_str)
        .unwrap_or(model);
    oa::completion(
        &response_id(g),
        model,
        created,
        choices,
        usage(g.get("usageMetadata").unwrap_or(&Value::Null)),
    )
}

// ---- The other direction (the mock upstream speaks Gemini) ----

/// Gemini request → OpenAI chat request for `model` (mock upstream).
pub fn to_openai_request(g: &Value, model: &str, stream: bool) -> Value {
    let mut messages = Vec::new();
    let sys: Vec<&str> = oa::list(g, "/systemInstruction/parts")
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    if !sys.is_empty() {
        messages.push(json!({"role": "system", "content": sys.join("\n")}));
    }
    // Function name → ids of its calls not yet answered, oldest first.
    let mut open: Vec<(String, String)> = Vec::new();
    for c in oa::list(g, "/contents") {
        let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
        let mut content = Vec::new();
        let mut calls = Vec::new();
        let mut results = Vec::new();
        for p in oa::list(c, "/parts") {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                content.push(json!({"type": "text", "text": t}));
            } else if let Some(d) = p.get("inlineData") {
                let mime = d.get("mimeType").and_then(Value::as_str).unwrap_or("");
                let data = d.get("data").and_then(Value::as_str).unwrap_or("");
                content.push(oa::inline_to_openai(mime, data));
            } else if let Some(fc) = p.get("functionCall") {
                let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
                let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
                let id = call_id(name, &args.to_string(), calls.len());
                open.push((name.to_string(), id.clone()));
                calls.push(ToolCall {
                    id,
                    name: name.to_string(),
                    args,
                });
            } else if let Some(fr) = p.get("functionResponse") {
                let name = fr.get("name").and_then(Value::as_str).unwrap_or("");
                let id = match open.iter().position(|(n, _)| n == name) {
                    Some(k) => open.remove(k).1,
                    None => call_id(name, "", 0),
                };
                let resp = fr.get("response").cloned().unwrap_or(Value::Null);
                let text = match resp.get("content").and_then(Value::as_str) {
                    Some(t) if resp.as_object().is_some_and(|o| o.len() == 1) => t.to_string(),
                    _ => resp.to_string(),
                };
                results.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
        }
        messages.extend(results);
        if role == "model" {
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
    let decls: Vec<Value> = oa::list(g, "/tools")
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .map(|d| oa::function_tool_json(d, d.get("parameters")))
        .collect();
    if !decls.is_empty() {
        out["tools"] = json!(decls);
    }
    if let Some(cfg) = g.pointer("/toolConfig/functionCallingConfig") {
        let names = cfg.get("allowedFunctionNames").and_then(Value::as_array);
        let choice = match cfg.get("mode").and_then(Value::as_str) {
            Some("NONE") => ToolChoice::None,
            Some("ANY") => match names.map(Vec::as_slice) {
                Some([one]) => ToolChoice::Function(one.as_str().unwrap_or("").to_string()),
                _ => ToolChoice::Required,
            },
            _ => ToolChoice::Auto,
        };
        out["tool_choice"] = oa::tool_choice_to_openai(&choice);
    }
    if let Some(gen) = g.get("generationConfig").and_then(Value::as_object) {
        let pairs = [
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("presencePenalty", "presence_penalty"),
            ("frequencyPenalty", "frequency_penalty"),
            ("seed", "seed"),
            ("candidateCount", "n"),
            ("maxOutputTokens", "max_tokens"),
            ("stopSequences", "stop"),
        ];
        oa::copy_renamed(gen, &pairs, &mut out);
        if gen.get("responseMimeType").and_then(Value::as_str) == Some("application/json") {
            out["response_format"] = match gen.get("responseSchema") {
                Some(s) => {
                    json!({"type": "json_schema", "json_schema": {"name": "response", "schema": s}})
                }
                None => json!({"type": "json_object"}),
            };
        }
    }
    out
}

/// OpenAI `finish_reason` → Gemini `finishReason`.
pub fn finish_to_gemini(reason: &str) -> &'static str {
    match reason {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

/// OpenAI usage → `usageMetadata`.
pub fn usage_to_gemini(u: &Value) -> Value {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let mut meta = json!({
        "promptTokenCount": n("/prompt_tokens"),
        "candidatesTokenCount": n("/completion_tokens"),
        "totalTokenCount": n("/prompt_tokens") + n("/completion_tokens"),
    });
    if let Some(c) = u
        .pointer("/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
    {
        meta["cachedContentTokenCount"] = json!(c);
    }
    meta
}

/// The Gemini parts of an OpenAI assistant message.
pub fn message_to_parts(text: &str, calls: &[ToolCall]) -> Vec<Value> {
    let mut parts = Vec::new();
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    for c in calls {
        parts.push(function_call(c.clone()));
    }
    parts
}

/// OpenAI chat completion → Gemini response (mock upstream).
pub fn from_openai_response(o: &Value) -> Value {
    let candidates: Vec<Value> = oa::list(o, "/choices")
        .map(|c| {
            let msg = c.get("message").unwrap_or(&Value::Null);
            let text = msg.get("content").and_then(Value::as_str).unwrap_or("");
            let calls = tool_calls(msg, "message").unwrap_or_default();
            let reason = c
                .get("finish_reason")
                .and_then(Value::as_str)
                .unwrap_or("stop");
            json!({
                "content": {"role": "model", "parts": message_to_parts(text, &calls)},
                "finishReason": finish_to_gemini(reason),
                "index": c.get("index").cloned().unwrap_or(json!(0)),
            })
        })
        .collect();
    let mut out = json!({
        "candidates": candidates,
        "modelVersion": o.get("model").cloned().unwrap_or(Value::Null),
        "responseId": o.get("id").and_then(Value::as_str).map(|s| s.trim_start_matches("chatcmpl-")),
    });
    if let Some(u) = o.get("usage") {
        out["usageMetadata"] = usage_to_gemini(u);
    }
    out
}

// ---- Embeddings ----

/// OpenAI embeddings request → `batchEmbedContents` for `model`.
pub fn embed_request(body: &Map<String, Value>, model: &str) -> Result<Value, Unsupported> {
    oa::check_fields(body, &["input", "dimensions", "encoding_format"], TARGET)?;
    let inputs: Vec<String> = match get(body, "input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| {
                    bad(
                        "input",
                        "`input` must be text for gemini (token arrays cannot be carried)",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(bad(
                "input",
                "`input` must be a string or a non-empty array",
            ))
        }
    };
    let dims = oa::number(body, "dimensions")?;
    let requests: Vec<Value> = inputs
        .iter()
        .map(|t| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}});
            if let Some(d) = &dims {
                r["outputDimensionality"] = d.clone();
            }
            r
        })
        .collect();
    Ok(json!({"requests": requests}))
}

/// `batchEmbedContents` response → OpenAI embeddings list.
pub fn embed_response(g: &Value, model: &str, base64: bool) -> Value {
    use base64::Engine;
    let data: Vec<Value> = oa::list(g, "/embeddings")
        .enumerate()
        .map(|(i, e)| {
            let values = e.get("values").cloned().unwrap_or_else(|| json!([]));
            let embedding = if base64 {
                let bytes: Vec<u8> = values
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .flat_map(|f| (f as f32).to_le_bytes())
                    .collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                values
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model})
}

/// `batchEmbedContents` request → OpenAI embeddings request (mock upstream).
pub fn embed_to_openai(g: &Value, model: &str) -> Value {
    let reqs: Vec<&Value> = oa::list(g, "/requests").collect();
    let input: Vec<String> = reqs
        .iter()
        .map(|r| {
            oa::list(r, "/content/parts")
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut out = json!({"model": model, "input": input});
    if let Some(d) = reqs.first().and_then(|r| r.get("outputDimensionality")) {
        out["dimensions"] = d.clone();
    }
    out
}

/// OpenAI embeddings list → `batchEmbedContents` response (mock upstream).
pub fn embed_from_openai(o: &Value) -> Value {
    let embeddings: Vec<Value> = oa::list(o, "/data")
        .map(|d| json!({"values": d.get("embedding").cloned().unwrap_or(Value::Null)}))
        .collect();
    json!({"embeddings": embeddings})
}
