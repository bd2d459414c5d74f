//! Requests in flight on a connection shared by every client session (a
//! stdio process, a legacy SSE stream): the gateway numbers its own requests
//! and hands each answer, which arrives on the shared stream, to the caller
//! waiting for that number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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
