//! Anthropic Messages: the request, the whole message answer and its
//! usage. Content blocks keep their `type` typed and the rest as sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Field, Rest};

/// `POST /v1/messages`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct MessagesRequest {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub messages: Field<Vec<Message>>,
    /// A string or a list of text blocks.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub system: Field<Value>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub max_tokens: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stream: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tools: Field<Vec<Value>>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One message of a request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Message {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub role: Field<String>,
    /// A string or a list of blocks.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub content: Field<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A whole message answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct MessageResponse {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub content: Field<Vec<Block>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stop_reason: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub usage: Field<AnthropicUsage>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One content block (`text`, `thinking`, `tool_use`, …).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Block {
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub kind: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub text: Field<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Anthropic `usage` (cache counters included).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct AnthropicUsage {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub input_tokens: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub output_tokens: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cache_read_input_tokens: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cache_creation_input_tokens: Field<u64>,
    #[serde(flatten)]
    pub rest: Rest,
}
