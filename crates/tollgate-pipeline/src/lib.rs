//! The pipeline layer: the ordered request phases (`pipeline`), the runtime
//! snapshot of a config they read (`snapshot`), the state shared by every
//! request (`state`), the gateway error (`error`) and the typed answer
//! (`reply`) the server crate turns into HTTP. Depends on every layer
//! below it; the server crate above it owns listeners and lifecycle.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod error;
pub mod pipeline;
pub mod reply;
pub mod snapshot;
pub mod state;
