//! OpenAI embeddings: the request and the response.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Field, Rest, Usage};

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct EmbeddingsRequest {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    /// A string, a list of strings, or token ids.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub input: Field<Value>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub dimensions: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub encoding_format: Field<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// The embeddings answer; each vector stays a `Value` (floats or base64).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct EmbeddingsResponse {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub data: Field<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub usage: Field<Usage>,
    #[serde(flatten)]
    pub rest: Rest,
}
