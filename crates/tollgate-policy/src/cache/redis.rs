//! Redis backend, shared by every gateway process using the same server.
//! Connects in the background (a Redis that is down at start does not stop
//! the gateway; until connected every lookup is a miss). Lookups wait at
//! most `lookup_timeout`; stores are spawned and never awaited by a request.
//! Expiry is Redis's own (`PSETEX`).

use std::sync::Arc;
use std::time::Duration;
use tollgate_core::error::BuildError;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio::sync::OnceCell;

use super::entry::Entry;
use super::key::Key;
use super::purge::{redis_name, Labels, PurgeFilter};
use super::PurgeError;

pub(super) struct Redis {
    conn: Arc<OnceCell<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
}

impl Redis {
    pub(super) fn new(url: &str, prefix: String, timeout: Duration) -> Result<Self, BuildError> {
        let client = redis::Client::open(url).map_err(|e| format!("cache.redis_url: {e}"))?;
        let conn = Arc::new(OnceCell::new());
        let cell = conn.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            // Stops once the gateway dropped its cache (only this task holds the cell).
            while Arc::strong_count(&cell) > 1 {
                match client.get_connection_manager().await {
                    Ok(c) => {
                        let _ = cell.set(c);
                        tracing::info!("response cache connected to redis");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "response cache: redis unreachable; retrying");
                        metrics::counter!("tollgate_cache_errors_total", "op" => "connect")
                            .increment(1);
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
        Ok(Self {
            conn,
            prefix,
            timeout,
        })
    }

    pub(super) async fn get(&self, key: &Key, labels: &Labels) -> Option<Arc<Entry>> {
        let mut c = self.conn.get()?.clone();
        let name = redis_name(&self.prefix, key, labels);
        let got = tokio::time::timeout(self.timeout, c.get::<_, Option<Vec<u8>>>(name)).await;
        match got {
            Ok(Ok(Some(bytes))) => Entry::decode(&bytes).map(Arc::new),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "response cache: redis lookup failed");
                metrics::counter!("tollgate_cache_errors_total", "op" => "get").increment(1);
                None
            }
            Err(_) => {
                metrics::counter!("tollgate_cache_errors_total", "op" => "get_timeout")
                    .increment(1);
                None
            }
        }
    }

    pub(super) fn put(&self, key: &Key, labels: &Labels, entry: &Entry, ttl: Duration) {
        let Some(c) = self.conn.get() else {
            return;
        };
        let mut c = c.clone();
        let name = redis_name(&self.prefix, key, labels);
        let bytes = entry.encode();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        tokio::spawn(async move {
            if let Err(e) = c.pset_ex::<_, _, ()>(name, bytes, ms).await {
                tracing::debug!(error = %e, "response cache: redis store failed");
                metrics::counter!("tollgate_cache_errors_total", "op" => "put").increment(1);
            }
        });
    }

    /// `SCAN MATCH` over the filter's pattern, `UNLINK` of each page found.
    pub(super) async fn purge(&self, filter: &PurgeFilter) -> Result<u64, PurgeError> {
        let Some(c) = self.conn.get() else {
            return Err(PurgeError("redis is not connected".into()));
        };
        let mut c = c.clone();
        let pattern = filter.redis_pattern(&self.prefix);
        let fail = |e: redis::RedisError| PurgeError(e.to_string());
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, names): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .map_err(fail)?;
            if !names.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&names)
                    .query_async(&mut c)
                    .await
                    .map_err(fail)?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}
