//! The data-plane HTTP surface: routes, the request-id edge middleware and
//! the OpenAI-shaped handlers. Handlers are thin: model calls go straight
//! into `crate::pipeline::handle`.

mod anthropic;
mod databricks;
pub use tollgate_pipeline::error;
mod openai;
mod prompts;
mod responses;

pub use openai::router;
