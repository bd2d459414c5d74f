//! Streaming OpenAI ⇄ Bedrock ConverseStream. ConverseStream answers with
//! `application/vnd.amazon.eventstream`: binary frames (prelude, headers,
//! JSON payload, CRC32 checks) decoded with `aws-smithy-eventstream`. Each
//! frame's `:event-type` is one of messageStart, contentBlockStart (a tool
//! use begins), contentBlockDelta (text, tool input JSON, reasoning),
//! contentBlockStop, messageStop (the stop reason) and metadata (usage);
//! `:message-type: exception` frames carry errors (throttlingException, …).
//! [`BedrockToOpenAi`] turns them into OpenAI chunks; [`OpenAiToBedrock`] is
//! the mock upstream's way back, writing real frames.

use std::collections::HashMap;

use aws_smithy_eventstream::frame::{write_message_to, DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::bedrock::{finish_reason, finish_to_bedrock, usage, usage_to_bedrock};
use super::openai_parts::{self as oa, ChunkWriter, Fault};

/// Largest frame buffered while waiting for its end (Bedrock's own limit is
/// 16 MiB per message).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Incremental frame decoder over reads of any size.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
}

impl FrameDecoder {
    /// Adds bytes; returns every frame now complete (CRCs checked).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Message>, Fault> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => out.push(m),
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => return Err(Fault::Protocol(format!("bad event stream frame: {e}"))),
            }
        }
        if self.buf.len() > MAX_FRAME_BYTES {
            return Err(Fault::Protocol(format!(
                "event stream frame larger than {MAX_FRAME_BYTES} bytes"
            )));
        }
        Ok(out)
    }
}

/// A string header of a frame.
pub fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// The HTTP status Bedrock gives each exception type (the in-stream name is
/// lowerCamel, the HTTP `x-amzn-ErrorType` is UpperCamel).
pub fn exception_status(kind: &str) -> u16 {
    match kind.to_ascii_lowercase().as_str() {
        "throttlingexception" | "modelnotreadyexception" | "servicequotaexceededexception" => 429,
        "validationexception" => 400,
        "accessdeniedexception" => 403,
        "resourcenotfoundexception" => 404,
        "modeltimeoutexception" => 408,
        "serviceunavailableexception" => 503,
        "modelstreamerrorexception" => 424,
        _ => 500,
    }
}

/// ConverseStream frames → OpenAI chunk SSE bytes, one response.
#[derive(Debug)]
pub struct BedrockToOpenAi {
    writer: ChunkWriter,
    include_usage: bool,
    /// Content block index → tool call index.
    tools: HashMap<u64, usize>,
    usage: Option<Value>,
    stopped: bool,
}

impl BedrockToOpenAi {
    pub fn new(writer: ChunkWriter, include_usage: bool) -> Self {
        Self {
            writer,
            include_usage,
            tools: HashMap::new(),
            usage: None,
            stopped: false,
        }
    }

    pub fn frame(&mut self, m: &Message) -> Result<Vec<u8>, Fault> {
        let payload: Value = serde_json::from_slice(m.payload()).unwrap_or(Value::Null);
        match header(m, ":message-type") {
            Some("exception") => {
                let kind = header(m, ":exception-type").unwrap_or("unknown");
                let message = payload
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error in stream");
                return Err(Fault::Upstream {
                    status: exception_status(kind),
                    message: format!("{kind}: {message}"),
                    retry_after: None,
                });
            }
            Some("error") => {
                let code = header(m, ":error-code").unwrap_or("error");
                let message = header(m, ":error-message").unwrap_or("");
                return Err(Fault::Upstream {
                    status: 502,
                    message: format!("{code}: {message}"),
                    retry_after: None,
                });
            }
            _ => {}
        }
        self.event(header(m, ":event-type").unwrap_or(""), &payload)
    }

    /// One event by type and JSON payload.
    pub fn event(&mut self, kind: &str, p: &Value) -> Result<Vec<u8>, Fault> {
        let w = &self.writer;
        let chunk =
            |delta: Value, finish: Option<&str>| oa::sse(&w.chunk(0, delta, finish)).to_vec();
        let block = p
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(match kind {
            "messageStart" => chunk(json!({"role": "assistant", "content": ""}), None),
            "contentBlockStart" => match p.pointer("/start/toolUse") {
                Some(tu) => {
                    let index = self.tools.len();
                    self.tools.insert(block, index);
                    chunk(
                        json!({"tool_calls": [{"index": index,
                            "id": tu.get("toolUseId").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {"name": tu.get("name").cloned().unwrap_or(Value::Null),
                                "arguments": ""}}]}),
                        None,
                    )
                }
                None => Vec::new(),
            },
            "contentBlockDelta" => {
                let d = p.get("delta").unwrap_or(&Value::Null);
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    chunk(json!({"content": t}), None)
                } else if let Some(input) = d.pointer("/toolUse/input").and_then(Value::as_str) {
                    let index = self.tools.get(&block).copied().ok_or_else(|| {
                        Fault::Protocol(format!(
                            "tool input for block {block}, which never started"
                        ))
                    })?;
                    chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": input}}]}),
                        None,
                    )
                } else if let Some(t) = d.pointer("/reasoningContent/text").and_then(Value::as_str)
                {
                    chunk(json!({"reasoning_content": t}), None)
                } else {
                    Vec::new()
                }
            }
            "messageStop" => {
                self.stopped = true;
                let reason = p
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                chunk(json!({}), Some(finish_reason(reason)))
            }
            "metadata" => {
                if let Some(u) = p.get("usage") {
                    self.usage = Some(usage(u));
                }
                Vec::new()
            }
            _ => Vec::new(),
        })
    }

    /// The upstream stream ended: usage chunk (when asked for) and `[DONE]`.
    pub fn finish(&mut self) -> Result<Vec<u8>, Fault> {
        if !self.stopped {
            return Err(Fault::Interrupted(
                "the event stream ended before messageStop".into(),
            ));
        }
        let mut out = Vec::new();
        if let (true, Some(u)) = (self.include_usage, self.usage.take()) {
            out.extend_from_slice(&oa::sse(&self.writer.usage_chunk(u)));
        }
        out.extend_from_slice(oa::DONE);
        Ok(out)
    }
}

/// One event frame (`:message-type: event`) with a JSON payload.
pub fn event_frame(kind: &str, payload: &Value) -> Bytes {
    frame("event", (":event-type", kind), payload)
}

/// One exception frame, as Bedrock sends mid-stream errors.
pub fn exception_frame(kind: &str, message: &str) -> Bytes {
    frame(
        "exception",
        (":exception-type", kind),
        &json!({"message": message}),
    )
}

fn frame(message_type: &'static str, (name, kind): (&'static str, &str), payload: &Value) -> Bytes {
    let text = |s: String| HeaderValue::String(s.into());
    let msg = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(name, text(kind.to_string())))
        .add_header(Header::new(
            ":content-type",
            text("application/json".into()),
        ))
        .add_header(Header::new(":message-type", text(message_type.into())));
    encode(&msg)
}

fn encode(msg: &Message) -> Bytes {
    let mut buf = Vec::new();
    // Writing fails only past the format's size limits, which these small
    // JSON frames never reach; an empty frame is then the honest result.
    if write_message_to(msg, &mut buf).is_err() {
        buf.clear();
    }
    Bytes::from(buf)
}

/// OpenAI chunk events → ConverseStream frames (mock upstream).
#[derive(Debug, Default)]
pub struct OpenAiToBedrock {
    /// The open content block: (index, is text).
    open: Option<(u64, bool)>,
    next_block: u64,
    /// OpenAI tool call index → content block index.
    tools: HashMap<u64, u64>,
    stopped: bool,
}

impl OpenAiToBedrock {
    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some((i, _)) = self.open.take() {
            out.push(event_frame(
                "contentBlockStop",
                &json!({"contentBlockIndex": i}),
            ));
        }
    }

    fn open_block(&mut self, text: bool, out: &mut Vec<Bytes>) -> u64 {
        match self.open {
            Some((i, t)) if t == text && text => i,
            _ => {
                self.close(out);
                let i = self.next_block;
                self.next_block += 1;
                self.open = Some((i, text));
                i
            }
        }
    }

    pub fn event(&mut self, data: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return out;
        };
        for c in oa::list(&chunk, "/choices") {
            let delta = c.get("delta").unwrap_or(&Value::Null);
            if delta.get("role").is_some() {
                out.push(event_frame("messageStart", &json!({"role": "assistant"})));
            }
            if let Some(t) = delta
                .get("content")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                let i = self.open_block(true, &mut out);
                out.push(event_frame(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": i, "delta": {"text": t}}),
                ));
            }
            for call in oa::list(delta, "/tool_calls") {
                let ti = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(id) = call.get("id") {
                    let i = self.open_block(false, &mut out);
                    self.tools.insert(ti, i);
                    let name = call
                        .pointer("/function/name")
                        .cloned()
                        .unwrap_or(Value::Null);
                    out.push(event_frame(
                        "contentBlockStart",
                        &json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
                    ));
                }
                let args = call.pointer("/function/arguments").and_then(Value::as_str);
                if let (Some(args), Some(i)) = (args.filter(|a| !a.is_empty()), self.tools.get(&ti))
                {
                    out.push(event_frame(
                        "contentBlockDelta",
                        &json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": args}}}),
                    ));
                }
            }
            if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
                self.close(&mut out);
                self.stopped = true;
                out.push(event_frame(
                    "messageStop",
                    &json!({"stopReason": finish_to_bedrock(f)}),
                ));
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            out.push(event_frame(
                "metadata",
                &json!({"usage": usage_to_bedrock(u), "metrics": {"latencyMs": 0}}),
            ));
        }
        out
    }
}
