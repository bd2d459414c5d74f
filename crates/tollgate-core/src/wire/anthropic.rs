//! Anthropic Messages: the request, the whole message answer and its
//! usage. Content blocks keep their `type` typed and the rest as sent.

use serde_json::Value;

use super::{Field, Rest};

wire_struct! {
    /// `POST /v1/messages`.
    pub struct MessagesRequest {
        model: Field<String>,
        messages: Field<Vec<Message>>,
        /// A string or a list of text blocks.
        system: Field<Value>,
        max_tokens: Field<u64>,
        stream: Field<bool>,
        tools: Field<Vec<Value>>,
    }
}

wire_struct! {
    /// One message of a request.
    pub struct Message {
        role: Field<String>,
        /// A string or a list of blocks.
        content: Field<Value>,
    }
}

wire_struct! {
    /// A whole message answer.
    pub struct MessageResponse {
        id: Field<String>,
        model: Field<String>,
        content: Field<Vec<Block>>,
        stop_reason: Field<String>,
        usage: Field<AnthropicUsage>,
    }
}

wire_struct! {
    /// One content block (`text`, `thinking`, `tool_use`, …).
    pub struct Block {
        kind as "type": Field<String>,
        text: Field<String>,
    }
}

wire_struct! {
    /// Anthropic `usage` (cache counters included).
    pub struct AnthropicUsage {
        input_tokens: Field<u64>,
        output_tokens: Field<u64>,
        cache_read_input_tokens: Field<u64>,
        cache_creation_input_tokens: Field<u64>,
    }
}
