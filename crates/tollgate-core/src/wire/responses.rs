//! OpenAI Responses: the request and the whole response (items stay
//! `Value`s: the translator reads them, golden-tested).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Field, Rest};

/// `POST /v1/responses`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ResponsesRequest {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    /// A string or a list of input items.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub input: Field<Value>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub instructions: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stream: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub max_output_tokens: Field<u64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tools: Field<Vec<Value>>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A whole Responses answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ResponsesResponse {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub model: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub status: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub output: Field<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub usage: Field<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}
