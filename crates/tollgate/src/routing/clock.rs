//! Milliseconds on Tokio's clock since the first call, so windows follow a
//! paused clock in tests (`tokio::time::pause` / `advance`).

use std::sync::OnceLock;

pub fn now_ms() -> u64 {
    static BASE: OnceLock<tokio::time::Instant> = OnceLock::new();
    let base = *BASE.get_or_init(tokio::time::Instant::now);
    tokio::time::Instant::now()
        .saturating_duration_since(base)
        .as_millis() as u64
}
