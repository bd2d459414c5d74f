//! OpenAI (legacy) completions: the request. Its chunks are
//! [`super::chat::ChatChunk`]s whose choices carry `text`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Field, Rest, StreamOptions};

/// `POST /v1/completions`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct CompletionRequest {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    /// A string, a list of strings, or token ids.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub prompt: Field<Value>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stream: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stream_options: Field<StreamOptions>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub max_tokens: Field<u64>,
    #[serde(flatten)]
    pub rest: Rest,
}
