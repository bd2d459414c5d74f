//! Tollgate's core: what every layer shares and nothing above it may be
//! needed for. SSE framing, the clocks, JSON text for background lines, the
//! stored key-hash form, limit decisions as typed values (policy → ledger),
//! the named-secret seam (`secret`), the LLM APIs' typed wire models
//! (`wire`), what a request presents as its credential (`bearer`), a
//! request body parsed into the gateway's form (`ingress`)
//! and the W3C trace-context header name. No I/O, no
//! config, no policy; every other crate may depend on this one, it depends
//! on none of them.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod bearer;
pub mod clock;
pub mod error;
pub mod ingress;
pub mod json_text;
pub mod keyhash;
pub mod limit_decision;
pub mod secret;
pub mod sse;
pub mod wire;

/// The W3C trace-context header (`traceparent`), read at the edge and sent
/// upstream.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
