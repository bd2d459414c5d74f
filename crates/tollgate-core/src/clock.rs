//! The gateway's two clocks, the only place that reads time for policy
//! decisions (clippy.toml bans `SystemTime::now` elsewhere):
//!
//! - [`now_ms`]: milliseconds on Tokio's clock since the first call, so
//!   windows, health and latency rings follow a paused clock in tests
//!   (`tokio::time::pause` / `advance`).
//! - [`wall_ms`]: Unix milliseconds, for calendar windows, key expiry,
//!   JWT `exp`/`nbf` and ledger timestamps. With the `test-clock` feature
//!   (tests only, through dev-dependencies) [`advance_wall`] moves it
//!   forward, so expiry is tested without sleeping.

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
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    #[cfg(feature = "test-clock")]
    let ms = ms + test_clock::OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed);
    ms
}

#[cfg(feature = "test-clock")]
mod test_clock {
    pub(super) static OFFSET_MS: std::sync::atomic::AtomicI64 =
        std::sync::atomic::AtomicI64::new(0);
}

/// Tests only: moves this process's wall clock forward by `by` (every
/// later [`wall_ms`] reads that much later).
#[cfg(feature = "test-clock")]
pub fn advance_wall(by: std::time::Duration) {
    let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
    test_clock::OFFSET_MS.fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
}

/// Unix time in whole seconds (`created` fields).
pub fn wall_secs() -> u64 {
    u64::try_from(wall_ms() / 1000).unwrap_or(0)
}

/// The wall clock as a `SystemTime` (request signing).
pub fn wall_time() -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(wall_ms()).unwrap_or(0))
}
