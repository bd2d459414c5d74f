//! OpenAI chat completions: the request (the pipeline's internal form), the
//! whole response and the stream chunk.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Field, Rest, StreamOptions, Usage};

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChatRequest {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub messages: Field<Vec<Message>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stream: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stream_options: Field<StreamOptions>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub max_tokens: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub max_completion_tokens: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tools: Field<Vec<Tool>>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One message of a request, or the message of a whole response's choice.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Message {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub role: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub content: Field<Content>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tool_calls: Field<Vec<ToolCall>>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A message's `content`: text, or a list of parts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

/// One content part (`text`, `image_url`, `input_audio`, …).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Part {
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub kind: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub text: Field<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A tool the caller offers (`{"type":"function","function":{…}}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Tool {
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub kind: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub function: Field<Function>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A function: its name, and (in a tool call) its arguments as JSON text;
/// `description` and `parameters` of a tool stay in `rest`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Function {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub name: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub arguments: Field<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A tool call, whole (in a message) or a piece of one (in a chunk's delta,
/// where `index` says which call it continues).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub index: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub kind: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub function: Field<Function>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A whole chat completion.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChatResponse {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub choices: Field<Vec<Choice>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub usage: Field<Usage>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One choice of a whole completion.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Choice {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub index: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub message: Field<Message>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub finish_reason: Field<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One streamed `chat.completion.chunk` (also a completions chunk: its
/// choices carry `text`), or an upstream's in-stream `error` event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChatChunk {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub choices: Field<Vec<ChunkChoice>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub usage: Field<Usage>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub error: Field<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One choice of a chunk.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChunkChoice {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub index: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub delta: Field<Delta>,
    /// Completions chunks carry text here instead of a delta.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub text: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub finish_reason: Field<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// What a chunk adds to its choice's message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub role: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub content: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub refusal: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tool_calls: Field<Vec<ToolCall>>,
    #[serde(flatten)]
    pub rest: Rest,
}
