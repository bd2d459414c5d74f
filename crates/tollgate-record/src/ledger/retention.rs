//! Retention: usage older than `ledger.retention` is deleted, at start and
//! then every hour (or every half retention when that is shorter); a store
//! unreachable at start is first waited for.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{now_ms, Store};

pub async fn run_retention(store: Store, retention: Duration, mut stop: watch::Receiver<bool>) {
    tokio::select! {
        () = store.ready() => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let every = (retention / 2).clamp(Duration::from_secs(30), Duration::from_secs(3600));
    loop {
        let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        match store.delete_usage_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "ledger retention: old usage deleted"),
            Err(e) => tracing::warn!(error = %e, "ledger retention failed; retrying later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
