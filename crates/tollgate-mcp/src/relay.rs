//! What an upstream server says to the client of one call while the call
//! runs: progress and logging notifications, and the server's own requests
//! (sampling, elicitation) whose answers the client sends back. A `Relay`
//! belongs to one client request; the pipeline turns what arrives on its
//! channel into events of that request's SSE answer. A server request gets
//! a gateway id (random, so requests of two upstreams, or two callers,
//! never collide and a client cannot guess another's); the client's answer
//! is matched by that id in `Asks`, checked against the session owner, and
//! goes back to the upstream under the upstream's own id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::wire::{code, RpcError};

/// Notifications relayed to the caller of the request they belong to.
pub const RELAYED_NOTIFICATIONS: &[&str] = &["notifications/progress", "notifications/message"];
/// Server requests relayed to the caller; any other server request (but
/// `ping`) is answered `-32601` by the gateway.
pub const RELAYED_REQUESTS: &[&str] = &["sampling/createMessage", "elicitation/create"];

/// How many messages one call's relay holds before dropping notifications
/// (a client that does not read its stream loses progress, not the call).
const DEPTH: usize = 64;

/// One message for the client, as JSON text (one line: it becomes an SSE
/// `data:` line).
pub type ToClient = String;

/// The client's answer to a server request: its `result`, or its error.
pub type ClientAnswer = Result<Value, RpcError>;

/// Server requests waiting for their client's answer, by gateway id (this
/// process's: the answer must reach the replica that holds the call).
#[derive(Default)]
pub struct Asks {
    waiting: Mutex<HashMap<String, Waiting>>,
}

struct Waiting {
    owner: String,
    answer: oneshot::Sender<ClientAnswer>,
}

impl Asks {
    /// A client's JSON-RPC response: handed to the request it answers when
    /// `owner` is the caller it was sent to; `false` when nobody waits for
    /// it (unknown id, another caller's, or already answered).
    pub fn answer(&self, id: &Value, owner: &str, answer: ClientAnswer) -> bool {
        let Some(id) = id.as_str() else {
            return false;
        };
        let Ok(mut waiting) = self.waiting.lock() else {
            return false;
        };
        match waiting.get(id) {
            Some(w) if w.owner == owner => {}
            _ => return false,
        }
        waiting
            .remove(id)
            .is_some_and(|w| w.answer.send(answer).is_ok())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(id);
        }
    }

    /// Requests waiting now (tests, metrics).
    pub fn len(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The way from upstreams to the client of one request.
#[derive(Clone)]
pub struct Relay {
    tx: mpsc::Sender<ToClient>,
    asks: Arc<Asks>,
    owner: String,
}

/// One request's channel: the sending end for its `Relay`, the receiving
/// end its answer reads.
pub fn channel() -> (mpsc::Sender<ToClient>, mpsc::Receiver<ToClient>) {
    mpsc::channel(DEPTH)
}

impl Relay {
    /// The relay of a request of the caller `owner` (the session owner,
    /// who alone may answer what it asks).
    pub fn new(tx: mpsc::Sender<ToClient>, asks: Arc<Asks>, owner: String) -> Relay {
        Relay { tx, asks, owner }
    }

    /// A notification (the whole JSON-RPC message), dropped when the
    /// client's stream is full or gone.
    pub fn notify(&self, message: ToClient) {
        if self.tx.try_send(message).is_err() {
            tracing::debug!("mcp notification for a client dropped (stream full or closed)");
        }
    }

    /// Sends a server request to the client under a fresh gateway id and
    /// waits for the answer; an error when the client's request ended
    /// first. `scrub` is applied to the message's text (credentials an
    /// upstream might echo).
    pub async fn ask(
        &self,
        method: &str,
        params: Option<Value>,
        scrub: impl FnOnce(String) -> String,
    ) -> ClientAnswer {
        let id = format!("tollgate-{:032x}", rand::random::<u128>());
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(p) = params {
            msg["params"] = p;
        }
        let (answer, answered) = oneshot::channel();
        if let Ok(mut w) = self.asks.waiting.lock() {
            w.insert(
                id.clone(),
                Waiting {
                    owner: self.owner.clone(),
                    answer,
                },
            );
        }
        let _forget = Forget(&self.asks, &id);
        if self.tx.send(scrub(msg.to_string())).await.is_err() {
            return Err(gone(method));
        }
        tokio::select! {
            a = answered => a.unwrap_or_else(|_| Err(gone(method))),
            () = self.tx.closed() => Err(gone(method)),
        }
    }
}

struct Forget<'a>(&'a Asks, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

fn gone(method: &str) -> RpcError {
    RpcError::new(
        code::INTERNAL_ERROR,
        format!("the client's request ended before it answered {method}"),
    )
}

/// The answer to a server request the gateway does not relay (or cannot:
/// the call has no client stream, or a shared upstream's request cannot be
/// attributed to one call).
pub fn refused(method: &str) -> RpcError {
    RpcError::new(
        code::METHOD_NOT_FOUND,
        format!("{method} is not relayed to a client by the gateway here"),
    )
}

/// A JSON-RPC response to a server request, under the upstream's own id.
pub fn response(id: &Value, answer: ClientAnswer) -> String {
    match answer {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e}),
    }
    .to_string()
}

/// What to do with a server-initiated message.
pub enum FromServer {
    /// A list change (`announce` it).
    ListChanged,
    /// A notification the caller sees.
    Notice,
    /// A request the caller answers.
    Ask,
    /// `ping`: the gateway answers `{}` itself.
    Ping,
    /// Another request: refused with `-32601`.
    Refuse,
    /// Another notification: dropped.
    Drop,
}

impl FromServer {
    pub fn of(method: &str, is_request: bool) -> Self {
        match (is_request, method) {
            (true, "ping") => Self::Ping,
            (true, m) if RELAYED_REQUESTS.contains(&m) => Self::Ask,
            (true, _) => Self::Refuse,
            (false, m) if RELAYED_NOTIFICATIONS.contains(&m) => Self::Notice,
            (false, m) if crate::wire::ListChanged::from_method(m).is_some() => Self::ListChanged,
            (false, _) => Self::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_reaches_its_request_only_from_its_owner() {
        let asks = Arc::new(Asks::default());
        let (tx, mut rx) = channel();
        let relay = Relay::new(tx, asks.clone(), "alice".into());
        let ask = tokio::spawn(async move {
            relay
                .ask("sampling/createMessage", Some(json!({"x": 1})), |s| s)
                .await
        });
        let sent: Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(sent["method"], "sampling/createMessage");
        assert_eq!(sent["params"], json!({"x": 1}));
        let id = sent["id"].clone();
        assert!(id.as_str().unwrap().starts_with("tollgate-"));
        assert!(!asks.answer(&id, "mallory", Ok(json!({}))));
        assert!(asks.answer(&id, "alice", Ok(json!({"ok": true}))));
        assert_eq!(ask.await.unwrap().unwrap(), json!({"ok": true}));
        assert!(asks.is_empty());
        assert!(!asks.answer(&id, "alice", Ok(json!({}))), "answered once");
    }

    #[tokio::test]
    async fn a_request_whose_client_left_fails_and_is_forgotten() {
        let asks = Arc::new(Asks::default());
        let (tx, rx) = channel();
        let relay = Relay::new(tx, asks.clone(), "alice".into());
        drop(rx);
        let e = relay.ask("elicitation/create", None, |s| s).await;
        assert_eq!(e.unwrap_err().code, code::INTERNAL_ERROR);
        assert!(asks.is_empty());
    }

    #[test]
    fn server_messages_are_sorted() {
        assert!(matches!(
            FromServer::of("notifications/progress", false),
            FromServer::Notice
        ));
        assert!(matches!(
            FromServer::of("elicitation/create", true),
            FromServer::Ask
        ));
        assert!(matches!(
            FromServer::of("roots/list", true),
            FromServer::Refuse
        ));
        assert!(matches!(FromServer::of("ping", true), FromServer::Ping));
        assert!(matches!(
            FromServer::of("notifications/tools/list_changed", false),
            FromServer::ListChanged
        ));
    }
}
