//! Tollgate: an AI gateway. The binary (`tollgate-cli`) only parses the
//! command line; this crate is the server layer (HTTP edge, admin listener,
//! lifecycle, reload) and re-exports every layer below it under its module
//! name, so `tollgate::limits` is `tollgate_policy::limits`. See
//! ARCHITECTURE.md for the layers and what each may import.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod metrics;
pub mod server;

pub use tollgate_config as config;
pub use tollgate_core::json_text;
pub use tollgate_guardrails as guardrails;
pub use tollgate_llm::{credentials, providers};
pub use tollgate_mcp as mcp_gateway;
#[cfg(feature = "mock")]
pub use tollgate_mock as mock;
pub use tollgate_net as net;
pub use tollgate_pipeline::{pipeline, snapshot};
pub use tollgate_policy::{auth, cache, guard, limits, prompts, routing, subject};
pub use tollgate_record::{audit, ledger, store, telemetry, vault};
pub use tollgate_translate as translate;
