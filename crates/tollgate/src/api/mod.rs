//! The data-plane HTTP surface: routes, the request-id edge middleware and
//! the OpenAI-shaped handlers. Handlers are thin: model calls go straight
//! into `crate::pipeline::handle`.

mod databricks;
pub mod error;
mod openai;
mod prompts;

pub use openai::router;
