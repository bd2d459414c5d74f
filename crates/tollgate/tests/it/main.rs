//! The gateway's integration tests, one binary (one link of the whole
//! dependency graph instead of one per file): each module starts real
//! gateways, mock upstreams, Redis, PostgreSQL or an OIDC issuer on port 0.
//! `limits_redis.rs` (exact process-wide metric sums), `examples.rs` (runs
//! itself with a prepared environment) and `fd_limit.rs` (changes the
//! process's descriptor limit) stay their own binaries.
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code) and
// time real work.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod anthropic;
mod audit;
mod auth;
mod cache;
mod cache_depth;
mod chat;
mod common;
mod connections;
mod credentials;
mod databricks;
mod edge;
mod edge_head;
mod egress;
mod error_detail;
mod errors;
mod exact_numbers;
mod guardrails;
mod guardrails_corpus;
mod guardrails_restore;
mod identity;
mod jobs;
mod ledger;
mod ledger_stores;
mod lifecycle;
mod limits;
mod mcp_openapi;
mod no_panic;
mod no_panic_translate;
mod oidc;
mod prompts;
mod prompts_depth;
mod providers_gemini_bedrock;
mod responses;
mod routes;
mod routing;
mod secrets;
mod secrets_everywhere;
mod telemetry;
mod translate_golden;
mod translate_golden_anthropic;
mod translate_no_panic;
mod usage_depth;
mod validation;
mod vault;
mod wire_roundtrip;
