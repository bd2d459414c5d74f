//! OpenAI chat completions: the request (the pipeline's internal form), the
//! whole response and the stream chunk.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Field, Rest, StreamOptions, Usage};

wire_struct! {
    /// `POST /v1/chat/completions`.
    pub struct ChatRequest {
        model: Field<String>,
        messages: Field<Vec<Message>>,
        stream: Field<bool>,
        stream_options: Field<StreamOptions>,
        max_tokens: Field<u64>,
        max_completion_tokens: Field<u64>,
        tools: Field<Vec<Tool>>,
    }
}

wire_struct! {
    /// One message of a request, or the message of a whole response's choice.
    pub struct Message {
        role: Field<String>,
        content: Field<Content>,
        tool_calls: Field<Vec<ToolCall>>,
    }
}

/// A message's `content`: text, or a list of parts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

wire_struct! {
    /// One content part (`text`, `image_url`, `input_audio`, …).
    pub struct Part {
        kind as "type": Field<String>,
        text: Field<String>,
    }
}

wire_struct! {
    /// A tool the caller offers (`{"type":"function","function":{…}}`).
    pub struct Tool {
        kind as "type": Field<String>,
        function: Field<Function>,
    }
}

wire_struct! {
    /// A function: its name, and (in a tool call) its arguments as JSON text;
    /// `description` and `parameters` of a tool stay in `rest`.
    pub struct Function {
        name: Field<String>,
        arguments: Field<String>,
    }
}

wire_struct! {
    /// A tool call, whole (in a message) or a piece of one (in a chunk's delta,
    /// where `index` says which call it continues).
    pub struct ToolCall {
        index: Field<u64>,
        id: Field<String>,
        kind as "type": Field<String>,
        function: Field<Function>,
    }
}

wire_struct! {
    /// A whole chat completion.
    pub struct ChatResponse {
        id: Field<String>,
        model: Field<String>,
        choices: Field<Vec<Choice>>,
        usage: Field<Usage>,
    }
}

wire_struct! {
    /// One choice of a whole completion.
    pub struct Choice {
        index: Field<u64>,
        message: Field<Message>,
        finish_reason: Field<String>,
    }
}

wire_struct! {
    /// One streamed `chat.completion.chunk` (also a completions chunk: its
    /// choices carry `text`), or an upstream's in-stream `error` event.
    pub struct ChatChunk {
        id: Field<String>,
        model: Field<String>,
        choices: Field<Vec<ChunkChoice>>,
        usage: Field<Usage>,
        error: Field<Value>,
    }
}

wire_struct! {
    /// One choice of a chunk.
    pub struct ChunkChoice {
        index: Field<u64>,
        delta: Field<Delta>,
        /// Completions chunks carry text here instead of a delta.
        text: Field<String>,
        finish_reason: Field<String>,
    }
}

wire_struct! {
    /// What a chunk adds to its choice's message.
    pub struct Delta {
        role: Field<String>,
        content: Field<String>,
        refusal: Field<String>,
        tool_calls: Field<Vec<ToolCall>>,
    }
}
