//! The gateway's two clocks, the only place that reads time for policy
//! decisions (clippy.toml bans `SystemTime::now` elsewhere):
//!
//! - [`now_ms`]: milliseconds on Tokio's clock since the first call, so
//!   windows, health and latency rings follow a paused clock in tests
//!   (`tokio::time::pause` / `advance`).
//! - [`wall_ms`]: Unix milliseconds, for calendar windows, key expiry,
//!   JWT `exp`/`nbf` and ledger timestamps.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds on Tokio's clock since the first call in this process.
pub fn now_ms() -> u64 {
    static BASE: OnceLock<tokio::time::Instant> = OnceLock::new();
    let base = *BASE.get_or_init(tokio::time::Instant::now);
    tokio::time::Instant::now()
        .saturating_duration_since(base)
        .as_millis() as u64
}

/// Unix time in milliseconds (0 if the system clock is before 1970).
#[allow(clippy::disallowed_methods)] // the one wall-clock read
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
