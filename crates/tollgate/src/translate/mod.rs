//! Translations between OpenAI's chat shape and other providers' wire
//! shapes. Pure functions over JSON: no I/O, no clock, no randomness (ids
//! that a shape lacks are derived from the content), so the same input always
//! gives the same output and golden tests can pin every direction.
//!
//! A field the target shape cannot carry is an [`Unsupported`] error naming
//! it (the caller gets a 400), never a silent drop.

pub mod bedrock;
pub mod bedrock_stream;
pub mod gemini;
pub mod gemini_stream;
mod openai_out;
mod openai_parts;

pub use openai_parts::{include_usage, ChunkWriter, Fault, Unsupported};
