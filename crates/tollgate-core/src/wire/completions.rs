//! OpenAI (legacy) completions: the request. Its chunks are
//! [`super::chat::ChatChunk`]s whose choices carry `text`.

use serde_json::Value;

use super::{Field, Rest, StreamOptions};

wire_struct! {
    /// `POST /v1/completions`.
    pub struct CompletionRequest {
        model: Field<String>,
        /// A string, a list of strings, or token ids.
        prompt: Field<Value>,
        stream: Field<bool>,
        stream_options: Field<StreamOptions>,
        max_tokens: Field<u64>,
    }
}
