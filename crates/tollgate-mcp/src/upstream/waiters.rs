//! Requests in flight on a connection shared by every client session (a
//! stdio process, a legacy SSE stream): the gateway numbers its own requests
//! and hands each answer, which arrives on the shared stream, to the caller
//! waiting for that number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::wire::UpstreamReply;

#[derive(Default)]
pub(crate) struct Waiters {
    pending: Mutex<HashMap<u64, oneshot::Sender<UpstreamReply>>>,
    next_id: AtomicU64,
}

/// Removes a request's waiter when its caller stops waiting.
pub(crate) struct Forget<'a>(&'a Waiters, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.0.pending.lock() {
            p.remove(&self.1);
        }
    }
}

impl Waiters {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Waits for the answer to `id` (registered before the request is sent).
    pub(crate) fn register(&self, id: u64) -> (oneshot::Receiver<UpstreamReply>, Forget<'_>) {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        (rx, Forget(self, id))
    }

    /// Hands an answer to its waiter; `false` when nobody waits for it.
    pub(crate) fn resolve(&self, reply: UpstreamReply) -> bool {
        let waiter = reply
            .id
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .and_then(|id| self.pending.lock().ok().and_then(|mut p| p.remove(&id)));
        match waiter {
            Some(w) => w.send(reply).is_ok(),
            None => false,
        }
    }

    /// The connection is gone: every request in flight fails now.
    pub(crate) fn fail_all(&self) {
        if let Ok(mut p) = self.pending.lock() {
            p.clear();
        }
    }
}

/// The pause between two lives of a shared connection: 1 s, doubling to
/// 30 s, back to 1 s after a life that lasted a minute.
pub(crate) struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_secs(1))
    }
}

impl Backoff {
    /// Counts the restart and waits; `false` when the upstream was dropped
    /// meanwhile (stop).
    pub(crate) async fn pause(
        &mut self,
        server: &str,
        started: tokio::time::Instant,
        stopped: &mut oneshot::Receiver<()>,
    ) -> bool {
        metrics::counter!("tollgate_mcp_upstream_restarts_total", "server" => server.to_string())
            .increment(1);
        if started.elapsed() > Duration::from_secs(60) {
            self.0 = Duration::from_secs(1);
        }
        let resumed = tokio::select! {
            _ = stopped => false,
            () = tokio::time::sleep(self.0) => true,
        };
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
        resumed
    }
}
