//! OpenAI embeddings: the request and the response.

use serde_json::Value;

use super::{Field, Rest, Usage};

wire_struct! {
    /// `POST /v1/embeddings`.
    pub struct EmbeddingsRequest {
        model: Field<String>,
        /// A string, a list of strings, or token ids.
        input: Field<Value>,
        dimensions: Field<u64>,
        encoding_format: Field<String>,
    }
}

wire_struct! {
    /// The embeddings answer; each vector stays a `Value` (floats or base64).
    pub struct EmbeddingsResponse {
        model: Field<String>,
        data: Field<Vec<Value>>,
        usage: Field<Usage>,
    }
}
