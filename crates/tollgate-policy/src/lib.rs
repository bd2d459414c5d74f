//! The policy layer: who the caller is (`auth`), what it may use (the access
//! policy), how much (`limits`), what content passes (`guard`), which
//! target serves a name (`routing`), cached answers (`cache`) and prompt
//! templates (`prompts`). Depends on core, config and the detectors only;
//! knows nothing of providers, HTTP responses or the pipeline.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
pub mod cache;
pub mod guard;
pub mod limits;
pub mod prompts;
pub mod routing;
pub mod subject;
