#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! Configuration: one YAML file, `${ENV}` interpolation, unknown fields
//! rejected, path-aware errors. Raw form (`model`) → checked (`validate`) →
//! runtime form (`tollgate_pipeline::snapshot`). Loading never touches the network.

mod cache;
mod credentials;
pub mod duration;
mod egress;
mod forward;
mod guardrails;
mod jobs;
mod limits;
mod load;
mod mcp;
mod model;
mod observability;
mod prompts;
mod redact;
mod routing;
mod secrets;
pub mod template;
mod validate;

pub use cache::{CacheBackendKind, CacheConfig, CacheRule, CacheScope};
pub use credentials::*;
pub use egress::*;
pub use forward::*;
pub use guardrails::*;
pub use jobs::JobConfig;
pub use limits::*;
pub use load::{load_file, parse_str, ConfigError};
pub use mcp::*;
pub use model::*;
pub use observability::*;
pub use prompts::{
    PromptsConfig, TemplateConfig, TemplateMessage, VariableSpec, VariableType, RESERVED_PARAMS,
};
pub use redact::shown_url;
pub use routing::*;
pub use secrets::{SecretKeySource, SecretsConfig};
pub use validate::OIDC_ALGORITHMS;

/// Headers the gateway owns: never copied from the caller, whatever
/// `forward_headers` says (credentials, framing, hop-by-hop).
pub const NEVER_FORWARDED: &[&str] = &[
    // `auth: {type: passthrough}` is the one explicit exception: the
    // credentials module forwards the caller's own Authorization itself.
    "authorization",
    "x-api-key",
    "api-key",
    "proxy-authorization",
    "cookie",
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "accept",
    "accept-encoding",
];

/// Which store a `storage.url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A `storage.url` that names no supported store.
#[derive(Debug, thiserror::Error)]
#[error("must start with sqlite: or postgres://")]
pub struct UnknownBackend;

impl Backend {
    pub fn of(url: &str) -> Result<Self, UnknownBackend> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(UnknownBackend)
        }
    }
}
