#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! The mock: deterministic OpenAI-shaped answers with fault knobs. Shared by
//! the in-process `mock` provider and `tollgate mock-upstream`, the real HTTP
//! server that tests, benchmarks and demos run against (with an MCP face,
//! `POST /mcp`, for the MCP gateway's benchmark, and the Databricks Jobs
//! API, `jobs.rs`).

mod anthropic;
mod bedrock;
mod cloud;
mod gemini;
mod generate;
mod jobs;
mod knobs;
mod mcp;
mod oauth;
pub mod server;
mod tools;

pub use generate::{
    chat_json, chat_stream, completion_json, completion_stream, embeddings_json, models_json,
    EmbeddingsError, StreamCut,
};
pub use knobs::Knobs;
