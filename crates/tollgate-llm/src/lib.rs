//! The LLM layer: model providers (the `Provider` trait, one adapter per
//! upstream API, the shared HTTP transport) and the upstream credentials
//! they send, and the cl100k_base token count (`cl100k`). Depends on core,
//! config and the translators; knows nothing of callers, policies or the
//! pipeline.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cl100k;
pub mod credentials;
pub mod providers;
mod upstream_text;
