//! Upstream sessions a client abandoned: a client that never sends
//! `DELETE` leaves the upstream sessions opened for it behind. Each one
//! opened with a credential of the gateway's own is remembered with its
//! client session's expiry (absolute, sealed in the session id, so any
//! replica may close it); once that has passed, the background task
//! (`server/reload.rs::reap_mcp_sessions`) closes it upstream (`DELETE`).
//! Sessions opened with the caller's own token (passthrough, exchange of
//! the caller's JWT) are not remembered: closing them would need the
//! caller's token, which the gateway does not keep; they end when the
//! upstream expires them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::upstream::Upstream;

/// Most upstream sessions remembered (one entry is ~150 bytes); beyond it
/// new ones are left to the upstream's own expiry.
const MAX_TRACKED: usize = 200_000;

#[derive(Default)]
pub struct Reaper {
    /// (upstream server, upstream session id) → when to close it.
    open: Mutex<HashMap<(String, String), Tracked>>,
}

struct Tracked {
    upstream: Weak<Upstream>,
    expires_ms: i64,
}

impl Reaper {
    /// Remembers an upstream session opened for a client session that
    /// expires at `expires_ms`.
    pub fn track(&self, upstream: &Arc<Upstream>, session: &str, expires_ms: i64) {
        if upstream.config().uses_caller_token() {
            return;
        }
        if let Ok(mut open) = self.open.lock() {
            if open.len() < MAX_TRACKED {
                open.insert(
                    (upstream.name.clone(), session.to_string()),
                    Tracked {
                        upstream: Arc::downgrade(upstream),
                        expires_ms,
                    },
                );
            }
        }
    }

    /// The client closed it (`DELETE`).
    pub fn forget(&self, upstream: &str, session: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&(upstream.to_string(), session.to_string()));
        }
    }

    /// Sessions whose client session expired before `now_ms`, taken (an
    /// upstream since dropped by a reload is skipped).
    pub fn due(&self, now_ms: i64) -> Vec<(Arc<Upstream>, String)> {
        let Ok(mut open) = self.open.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        open.retain(|(_, session), t| {
            if t.expires_ms > now_ms {
                return true;
            }
            if let Some(u) = t.upstream.upgrade() {
                out.push((u, session.clone()));
            }
            false
        });
        out
    }

    pub fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_config::{McpServerConfig, McpTransport, UpstreamAuth};

    fn upstream(auth: Option<UpstreamAuth>) -> Arc<Upstream> {
        let cfg = McpServerConfig {
            name: "wh".into(),
            transport: McpTransport::StreamableHttp,
            url: Some("http://127.0.0.1:9/mcp".into()),
            command: None,
            args: vec![],
            env: Default::default(),
            cwd: None,
            auth,
            headers: Default::default(),
            timeout: std::time::Duration::from_secs(1),
            expose: true,
            tools: Default::default(),
            pin_tools: true,
            openapi: None,
        };
        Arc::new(Upstream::build(&cfg, 1024, &Default::default()).unwrap())
    }

    #[test]
    fn expired_sessions_are_due_once_and_caller_token_sessions_are_not_kept() {
        let r = Reaper::default();
        let own = upstream(None);
        r.track(&own, "a", 1_000);
        r.track(&own, "b", 5_000);
        r.track(&own, "c", 1_000);
        r.forget("wh", "c");
        assert!(r.due(999).is_empty());
        let due = r.due(1_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1, "a");
        assert!(r.due(1_000).is_empty(), "taken once");
        assert_eq!(r.len(), 1);

        let theirs = upstream(Some(UpstreamAuth::Passthrough));
        r.track(&theirs, "d", 0);
        assert_eq!(r.len(), 1);
        drop((own, due));
        assert!(r.due(10_000).is_empty(), "a dropped upstream is skipped");
        assert!(r.is_empty());
    }
}
