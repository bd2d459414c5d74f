//! Whether the store can be reached, and what waits for it.
//!
//! A PostgreSQL server may be down when the gateway starts or go down
//! while it runs; neither may stop requests from being served. So: the
//! ledger reaches for a connection for at most `REACH_TIMEOUT` (sqlx itself
//! retries a refused connect until its 3 s acquire timeout, and the ledger
//! must spool well before that); an error that says the server is not
//! there (`is_unreachable`) is not retried; and a store opened while its
//! server is down (`Store::open_deferred`) is not *ready* until a
//! background task has applied the migrations
//! (`Store::migrate_when_reachable`) and restored the budgets: the ledger
//! and retention wait for it.

use std::time::Duration;

use tokio::sync::watch;

use super::StoreError;

/// Longest the ledger waits for a connection before spooling the batch:
/// long enough for a new PostgreSQL connection over TLS to a nearby
/// server, short next to the crash bound (`flush_interval` plus this).
pub const REACH_TIMEOUT: Duration = Duration::from_millis(500);

/// Delays between migration attempts while the server is down.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(15);

impl StoreError {
    /// The server is not there (refused, reset, timed out, pool closed):
    /// trying again at once would only wait again.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unreachable(_) => true,
            StoreError::Sql(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

/// Set once the migrations have been applied; clones share it.
#[derive(Clone)]
pub(super) struct Ready(std::sync::Arc<watch::Sender<bool>>);

impl Ready {
    pub(super) fn new(ready: bool) -> Self {
        Self(std::sync::Arc::new(watch::Sender::new(ready)))
    }

    pub(super) fn get(&self) -> bool {
        *self.0.borrow()
    }

    pub(super) fn set(&self) {
        self.0.send_replace(true);
    }

    pub(super) async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }
}

impl super::Store {
    /// True once the migrations have been applied (always, for a store
    /// from `open`).
    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// Returns once the store is ready.
    pub async fn ready(&self) {
        self.ready.wait().await;
    }

    /// A pooled connection within `REACH_TIMEOUT`, or `Unreachable`.
    pub(super) async fn reach(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, StoreError> {
        if !self.is_ready() {
            return Err(StoreError::Unreachable("not migrated yet".into()));
        }
        match tokio::time::timeout(REACH_TIMEOUT, self.pool.acquire()).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(StoreError::Unreachable(format!(
                "no connection within {REACH_TIMEOUT:?}"
            ))),
        }
    }

    /// Applies the migrations once the server answers, retrying with a
    /// growing delay. Run in the background after `open_deferred`; the
    /// caller then restores what must come first and calls `set_ready`
    /// (the ledger writes nothing before).
    pub async fn migrate_when_reachable(&self) {
        let mut delay = RETRY_FIRST;
        loop {
            tokio::time::sleep(delay).await;
            match self.migrate().await {
                Ok(()) => {
                    tracing::info!("store reachable and migrated");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "store still unreachable");
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// The store is migrated and what needed it first is done: the ledger
    /// may write.
    pub fn set_ready(&self) {
        self.ready.set();
    }
}
