#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! The MCP layer: JSON-RPC wire models that keep unknown fields (`wire`),
//! upstream MCP servers over Streamable HTTP, SSE, stdio, and REST APIs
//! published from their OpenAPI documents (`upstream`, `openapi`),
//! session ids that carry their own sealed state (`session`), abandoned
//! upstream sessions closed after their client's expired (`reaper`), and the
//! served servers with their name mapping (`catalog`) and each member's
//! tools as served, prepared once per distinct upstream list (`listing`). No policy here: the
//! pipeline's MCP phases authenticate, authorize, limit, guard and record
//! each message with the same code as model calls.

pub mod approval;
pub mod catalog;
pub mod listing;
pub mod openapi;
pub mod pins;
pub mod reaper;
pub mod relay;
pub mod session;
pub mod upstream;
pub mod wire;

pub use catalog::{Catalog, CatalogError, Member, Served};
pub use upstream::{RelayedRpc, Upstream, UpstreamError};
