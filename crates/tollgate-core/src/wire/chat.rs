//! OpenAI chat completions: the request (the pipeline still carries a
//! `serde_json` map of it), the whole response and the stream chunk.

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
        /// Anthropic's own stop reason, when OpenAI's `finish_reason`
        /// cannot say it (an extension, docs/ingress.md).
        stop_reason: Field<String>,
        /// The stop sequence an Anthropic answer stopped at (an extension).
        stop_sequence: Field<String>,
    }
}

wire_struct! {
    /// What a chunk adds to its choice's message.
    pub struct Delta {
        role: Field<String>,
        content: Field<String>,
        refusal: Field<String>,
        tool_calls: Field<Vec<ToolCall>>,
        /// Thinking text (an extension: Anthropic's thinking blocks).
        reasoning_content: Field<String>,
        /// Thinking blocks' signatures and redacted blocks (an extension).
        thinking_blocks: Field<Vec<ThinkingBlock>>,
    }
}

wire_struct! {
    /// A thinking block carried in a delta: `thinking` with its
    /// `signature`, or `redacted_thinking` (its `data` stays in `rest`).
    pub struct ThinkingBlock {
        kind as "type": Field<String>,
        signature: Field<String>,
    }
}

/// What usage accounting reads off one streamed chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChunkFacts {
    /// It has at least one choice (a first token, for time-to-first-token).
    pub has_choices: bool,
    /// It is an upstream's in-stream error.
    pub error: bool,
    /// Its `usage`: prompt and completion tokens.
    pub usage: Option<(Option<i64>, Option<i64>)>,
}

impl ChatChunk {
    /// The accounting facts; the text the chunk adds (content, completions
    /// text, tool-call arguments) is appended to `text`.
    pub fn facts(&self, text: &mut String) -> ChunkFacts {
        let choices = self.choices.get();
        for c in choices.into_iter().flatten() {
            if let Some(t) = c.text.get() {
                text.push_str(t);
            }
            if let Some(d) = c.delta.get() {
                if let Some(t) = d.content.get() {
                    text.push_str(t);
                }
                for call in d.tool_calls.get().into_iter().flatten() {
                    if let Some(args) = call.function.get().and_then(|f| f.arguments.get()) {
                        text.push_str(args);
                    }
                }
            }
        }
        ChunkFacts {
            has_choices: choices.is_some_and(|c| !c.is_empty()),
            error: self.error.get().is_some(),
            usage: self.usage.get().map(|u| {
                (
                    u.prompt_tokens.get().copied(),
                    u.completion_tokens.get().copied(),
                )
            }),
        }
    }
}

/// A chunk read for accounting only: the fields [`ChatChunk::facts`] reads,
/// borrowed from the event's text, every other field skipped without being
/// built. The stream parses into this when no observer keeps, rewrites or
/// translates the chunk (no output guardrail, no cache fill, no restore,
/// an OpenAI-shaped caller): keeping every unknown
/// field in `rest` costs about 2 k instructions per event that nothing
/// reads.
#[derive(Debug, Default, Deserialize)]
pub struct ChunkPeek<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoicePeek<'a>>>,
    #[serde(default)]
    usage: Option<UsagePeek>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct ChoicePeek<'a> {
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<DeltaPeek<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct DeltaPeek<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<CallPeek<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
struct CallPeek<'a> {
    #[serde(default, borrow)]
    function: Option<ArgumentsPeek<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct ArgumentsPeek<'a> {
    #[serde(default, borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct UsagePeek {
    #[serde(default)]
    prompt_tokens: Option<i64>,
    #[serde(default)]
    completion_tokens: Option<i64>,
}

impl ChunkPeek<'_> {
    /// As [`ChatChunk::facts`].
    pub fn facts(&self, text: &mut String) -> ChunkFacts {
        for c in self.choices.iter().flatten() {
            if let Some(t) = &c.text {
                text.push_str(t);
            }
            if let Some(d) = &c.delta {
                if let Some(t) = &d.content {
                    text.push_str(t);
                }
                for call in d.tool_calls.iter().flatten() {
                    if let Some(args) = call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                        text.push_str(args);
                    }
                }
            }
        }
        ChunkFacts {
            has_choices: self.choices.as_ref().is_some_and(|c| !c.is_empty()),
            error: self.error.is_some(),
            usage: self
                .usage
                .as_ref()
                .map(|u| (u.prompt_tokens, u.completion_tokens)),
        }
    }
}
