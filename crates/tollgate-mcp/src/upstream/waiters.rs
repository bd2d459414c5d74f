//! Requests in flight on a connection shared by every client session (a
//! stdio process, a legacy SSE stream): the gateway numbers its own requests
//! and hands each answer, which arrives on the shared stream, to the caller
//! waiting for that number.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::oneshot;

use super::UpstreamError;
use crate::relay::{self, FromServer, Relay};
use crate::wire::{announce, Notices, Outgoing, UpstreamReply};

pub(crate) struct Waiters {
    pending: Mutex<HashMap<u64, oneshot::Sender<UpstreamReply>>>,
    /// Requests in flight, by the gateway's id: where what the server says
    /// about them goes (their caller's relay, if it has a stream) and the
    /// caller's own progress token, replaced by the id on the way up so
    /// two callers' tokens cannot collide on the shared connection.
    calls: Mutex<HashMap<u64, InFlight>>,
    next_id: AtomicU64,
    /// The upstream's list-change announcements (`Upstream::subscribe`).
    pub(crate) notices: Notices,
}

struct InFlight {
    relay: Option<Relay>,
    token: Option<Value>,
}

/// Removes a request's waiter when its caller stops waiting.
pub(crate) struct Forget<'a>(&'a Waiters, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.0.pending.lock() {
            p.remove(&self.1);
        }
        if let Ok(mut c) = self.0.calls.lock() {
            c.remove(&self.1);
        }
    }
}

impl Waiters {
    pub(crate) fn new(notices: Notices) -> Self {
        Self {
            pending: Mutex::default(),
            calls: Mutex::default(),
            next_id: AtomicU64::default(),
            notices,
        }
    }

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

    /// One message on the shared connection: a request is numbered, its
    /// waiter registered before `send` writes it, and its answer awaited
    /// (`Down` if the connection dies first); a notification is only sent.
    /// What the server says about the request meanwhile goes to `relay`.
    pub(crate) async fn exchange<S, F>(
        &self,
        server: &str,
        method: &str,
        params: Option<&Value>,
        is_request: bool,
        relay: Option<&Relay>,
        send: S,
    ) -> Result<Option<UpstreamReply>, UpstreamError>
    where
        S: FnOnce(String) -> F,
        F: Future<Output = Result<(), UpstreamError>>,
    {
        let id = is_request.then(|| self.next_id());
        let Some(id) = id else {
            send(outgoing(server, None, method, params)?).await?;
            return Ok(None);
        };
        let token = params.and_then(|p| p.pointer("/_meta/progressToken"));
        let text = match token {
            Some(_) => {
                let mut own = params.cloned().unwrap_or_default();
                if let Some(t) = own.pointer_mut("/_meta/progressToken") {
                    *t = Value::from(id);
                }
                outgoing(server, Some(id), method, Some(&own))?
            }
            None => outgoing(server, Some(id), method, params)?,
        };
        let (answer, _forget) = self.register(id);
        if let Ok(mut c) = self.calls.lock() {
            let relay = relay.cloned();
            let token = token.cloned();
            c.insert(id, InFlight { relay, token });
        }
        send(text).await?;
        answer.await.map(Some).map_err(|_| UpstreamError::Down {
            server: server.to_string(),
        })
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

    /// A message the server started (not an answer): a list change is
    /// announced; a progress notification goes to the request whose token
    /// it carries (the caller's own token restored), a log message to the
    /// one request in flight; a relayed server request is asked of that
    /// request's client, `ping` answered, others refused. The future, when
    /// there is one, gives the line to send back (the caller spawns it: the
    /// shared read loop must not wait for a client).
    pub(crate) fn on_server_message(&self, mut msg: Value) -> Option<BoxFuture<'static, String>> {
        let method = msg.get("method")?.as_str()?.to_string();
        let id = msg.get("id").cloned();
        let ready = |line: String| -> Option<BoxFuture<'static, String>> {
            Some(Box::pin(std::future::ready(line)))
        };
        match (FromServer::of(&method, id.is_some()), id) {
            (FromServer::ListChanged, _) => announce(&self.notices, &method),
            (FromServer::Notice, _) => {
                if let Some(relay) = self.notice_for(&method, &mut msg) {
                    relay.notify(msg.to_string());
                }
            }
            (FromServer::Ask, Some(id)) => {
                let Some(relay) = self.sole_call() else {
                    return ready(relay::response(&id, Err(relay::refused(&method))));
                };
                let params = msg.get_mut("params").map(Value::take);
                return Some(Box::pin(async move {
                    let answer = relay.ask(&method, params, |s| s).await;
                    relay::response(&id, answer)
                }));
            }
            (FromServer::Ping, Some(id)) => {
                return ready(relay::response(&id, Ok(Value::Object(Default::default()))))
            }
            (FromServer::Refuse, Some(id)) => {
                return ready(relay::response(&id, Err(relay::refused(&method))))
            }
            _ => {}
        }
        None
    }

    /// The relay a notification belongs to: progress by its token (the
    /// gateway's request id, put back to the caller's), anything else only
    /// when exactly one request is in flight (a shared connection says
    /// nothing else about which request a log line is for).
    fn notice_for(&self, method: &str, msg: &mut Value) -> Option<Relay> {
        if method != "notifications/progress" {
            return self.sole_call();
        }
        let token = msg.pointer_mut("/params/progressToken")?;
        let calls = self.calls.lock().ok()?;
        let call = calls.get(&token.as_u64()?)?;
        *token = call.token.clone()?;
        call.relay.clone()
    }

    fn sole_call(&self) -> Option<Relay> {
        let calls = self.calls.lock().ok()?;
        match calls.len() {
            1 => calls.values().next()?.relay.clone(),
            _ => None,
        }
    }

    /// The connection is gone: every request in flight fails now.
    pub(crate) fn fail_all(&self) {
        if let Ok(mut p) = self.pending.lock() {
            p.clear();
        }
    }
}

/// A JSON-RPC request (with an id) or notification, as text.
pub(crate) fn outgoing(
    server: &str,
    id: Option<u64>,
    method: &str,
    params: Option<&Value>,
) -> Result<String, UpstreamError> {
    serde_json::to_string(&Outgoing {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
    .map_err(|e| UpstreamError::Protocol {
        server: server.to_string(),
        detail: e.to_string(),
    })
}

/// Why one life of a shared connection (a stdio process, an SSE stream)
/// could not start or ended; logged by its supervisor, which starts another.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkEnd {
    #[error("cannot start: {0}")]
    Start(std::io::Error),
    #[error("no {0} pipe")]
    NoPipe(&'static str),
    #[error("initialize refused: {0}")]
    Refused(String),
    #[error("no answer to initialize")]
    NoAnswer,
    #[error("closed during initialize")]
    Closed,
    #[error("cannot wait for the process: {0}")]
    Wait(std::io::Error),
    #[error(transparent)]
    Lines(#[from] tokio_util::codec::LinesCodecError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
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
