//! OpenAI Responses: the request and the whole response (items stay
//! `Value`s: the translator reads them, golden-tested).

use serde_json::Value;

use super::{Field, Rest};

wire_struct! {
    /// `POST /v1/responses`.
    pub struct ResponsesRequest {
        model: Field<String>,
        /// A string or a list of input items.
        input: Field<Value>,
        instructions: Field<String>,
        stream: Field<bool>,
        max_output_tokens: Field<u64>,
        tools: Field<Vec<Value>>,
    }
}

wire_struct! {
    /// A whole Responses answer.
    pub struct ResponsesResponse {
        id: Field<String>,
        model: Field<String>,
        status: Field<String>,
        output: Field<Vec<Value>>,
        usage: Field<Value>,
    }
}
