//! The record layer: what is written after a request, never on its path.
//! The store (SQLite or PostgreSQL), the usage ledger and its spool, the
//! audit log and OpenTelemetry traces, and the encrypted named secrets
//! (`vault`). Depends on core, config and the
//! detectors (payload redaction) only.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit;
mod background;
pub mod ledger;
pub mod limits_column;
pub mod store;
pub mod tags;
pub mod telemetry;
pub mod usage_record;
pub mod vault;
