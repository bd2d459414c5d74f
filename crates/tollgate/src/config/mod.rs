//! Configuration: one YAML file, `${ENV}` interpolation, unknown fields
//! rejected, path-aware errors. Raw form (`model`) → checked (`validate`) →
//! runtime form (`crate::snapshot`). Loading never touches the network.

pub mod duration;
mod guardrails;
mod load;
mod model;
mod observability;
mod routing;
mod validate;

pub use guardrails::*;
pub use load::{load_file, parse_str, ConfigError};
pub use model::*;
pub use observability::*;
pub use routing::*;
pub use validate::OIDC_ALGORITHMS;
