#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! Translation between API shapes. Every translator is a pure function (or
//! a small state machine for streams) over `serde_json` values, so the same
//! code serves the egress providers, the ingress routes, the mock upstream,
//! the golden tests and the benches. The OpenAI → Anthropic and OpenAI →
//! Responses stream translators also take each chunk typed, as the
//! gateway's stream parsed it once (`chunk_read.rs`).
//!
//! The gateway's internal shape is OpenAI chat. Fields only another shape
//! can express travel inside the OpenAI body as documented extensions
//! (docs/ingress.md, "Extensions"): they survive Anthropic → Anthropic
//! untouched and are removed or refused (400 naming the field) before a
//! request reaches an upstream that cannot express them.

pub mod anthropic;
pub mod bedrock;
pub mod bedrock_stream;
mod chunk_read;
pub mod gemini;
pub mod gemini_stream;
mod openai_out;
mod openai_parts;
pub mod responses;
#[cfg(test)]
mod stream_tests;

pub use openai_parts::{include_usage, ChunkWriter, Fault};

use serde_json::{Map, Value};

/// A field one side has and the other cannot express: the caller gets a 400
/// naming it (`field` also goes in the error's `param`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unsupported {
    /// JSON path of the field, e.g. `messages[2].content[0].type`.
    pub field: String,
    /// The whole sentence the caller reads, naming the field.
    pub message: String,
}

impl Unsupported {
    /// "`field` reason".
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            message: format!("`{field}` {}", reason.into()),
            field,
        }
    }

    /// A message written out in full (it names the field itself).
    pub fn with_message(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `field` cannot be carried to `target` at all.
    pub fn field(field: impl Into<String>, target: &str) -> Self {
        let field = field.into();
        Self {
            message: format!("`{field}` cannot be carried to {target}; remove it"),
            field,
        }
    }
}

pub type Result<T> = std::result::Result<T, Unsupported>;

/// Why an answer (a whole response or one stream event) could not be
/// translated into the other shape; the provider or the pipeline turns it
/// into a protocol error (502) or an error event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("message has no `content` array")]
    NoContent,
    #[error("content block type `{0}` cannot be expressed in an OpenAI response")]
    BlockType(String),
    #[error("response has no choices")]
    NoChoices,
    #[error("choice has no message")]
    NoMessage,
    #[error("a tool call's arguments are not valid JSON")]
    ToolArguments,
    /// An upstream `error` event in a stream: its type and message.
    #[error("{kind}: {message}")]
    Upstream { kind: String, message: String },
}

/// A JSON object from a value, or a 400 naming the field.
pub(crate) fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Unsupported::new(field, "must be an object"))
}

/// A required string member of an object.
pub(crate) fn string<'a>(o: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a str> {
    o.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Unsupported::new(format!("{at}.{key}"), "is required and must be a string"))
}

/// `data:<media>;base64,<data>` → (media, data).
pub(crate) fn split_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (media, data) = rest.split_once(',')?;
    let media = media.strip_suffix(";base64")?;
    Some((media, data))
}

/// One Server-Sent Event with a name, as Anthropic and the Responses API frame them.
pub(crate) fn named_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// One unnamed `data:` event (OpenAI chunks).
pub(crate) fn data_event(out: &mut Vec<u8>, data: &Value) {
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

pub(crate) fn now_secs() -> u64 {
    tollgate_core::clock::wall_secs()
}
