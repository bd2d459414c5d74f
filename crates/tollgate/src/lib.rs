//! Tollgate: an AI gateway. The binary (`tollgate-cli`) only parses the
//! command line; everything lives here. See ARCHITECTURE.md for the map.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod guard;
pub mod guardrails;
pub mod json_text;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod mock;
pub mod pipeline;
pub mod prompts;
pub mod providers;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod translate;
