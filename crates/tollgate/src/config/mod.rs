//! Configuration: one YAML file, `${ENV}` interpolation, unknown fields
//! rejected, path-aware errors. Raw form (`model`) → checked (`validate`) →
//! runtime form (`crate::snapshot`). Loading never touches the network.

mod cache;
mod credentials;
pub mod duration;
mod guardrails;
mod limits;
mod load;
mod model;
mod observability;
mod prompts;
mod routing;
mod validate;

pub use cache::{CacheBackendKind, CacheConfig, CacheRule, CacheScope};
pub use credentials::*;
pub use guardrails::*;
pub use limits::*;
pub use load::{load_file, parse_str, ConfigError};
pub use model::*;
pub use observability::*;
pub use prompts::{PromptsConfig, TemplateConfig, TemplateMessage, RESERVED_PARAMS};
pub use routing::*;
pub use validate::OIDC_ALGORITHMS;
