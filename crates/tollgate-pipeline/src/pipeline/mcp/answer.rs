//! What an MCP request answers, typed: a JSON-RPC result or error under
//! the request's id, an acknowledgement, the relayed messages of a request
//! whose upstream spoke meanwhile, or a session's stream of list changes.
//! Nothing here knows HTTP: the server crate (`api/mcp_reply.rs`) turns
//! these into status codes, headers (`Mcp-Session-Id`, `WWW-Authenticate`,
//! `Retry-After`), JSON-RPC bodies and SSE events.

use futures_util::stream::BoxStream;
use serde_json::Value;
use tollgate_mcp::wire::ListChanged;

use super::super::finish::Finish;
use crate::error::GatewayError;

/// A message's answer.
pub enum Answer {
    /// A JSON-RPC result under the request's id. `session` is the session
    /// `initialize` opened, for the `Mcp-Session-Id` header.
    Result {
        id: Value,
        result: RpcResult,
        session: Option<String>,
    },
    /// A JSON-RPC error.
    Error(RpcFailure),
    /// A notification or a client's answer to a relayed server request:
    /// accepted, no body, not recorded.
    Accepted,
    /// The session ended (`DELETE`): no body.
    Closed,
}

/// A method's result: a JSON value, or JSON text already written (a tool
/// list, assembled from its members' prepared tools).
pub enum RpcResult {
    Value(Value),
    Text(String),
}

/// A failure under the request's id (null when the message was unread).
pub struct RpcFailure {
    pub id: Value,
    pub error: GatewayError,
    /// Answered inside JSON-RPC (the method failed: HTTP 200 with an error
    /// object) or at the HTTP level (the message was not accepted: the
    /// error's own status, 401, 403, 404, 400, 413).
    pub in_band: bool,
    /// For a refused authentication (401): the protected-resource metadata
    /// the client is pointed at (`mcp.public_url`, else the `Host`).
    pub resource_metadata: Option<String>,
}

/// An answer whose record waits for the size of what is sent: the edge
/// renders `answer`, then calls [`Outcome::sent`]. Dropped without it
/// (the caller left first), the request is recorded as `client_closed`.
pub struct Outcome {
    pub answer: Answer,
    pub(super) fin: Option<Box<Finish>>,
    pub(super) span: tracing::Span,
}

impl Outcome {
    /// Records the request (`bytes`: the body sent), once; an `Accepted`
    /// answer is not recorded.
    pub fn sent(self, bytes: u64) {
        let Some(mut fin) = self.fin else {
            return;
        };
        let _entered = self.span.enter();
        match &self.answer {
            Answer::Error(f) => {
                let err = &f.error;
                fin.end(|_, ctx| {
                    ctx.status = err.status();
                    ctx.error = err.label();
                    ctx.response_bytes = bytes;
                    crate::error::log_denial(err, &ctx.request_id);
                    crate::error::log_detail(err, &ctx.request_id);
                });
            }
            _ => fin.end(|_, ctx| ctx.response_bytes = bytes),
        }
    }
}

/// `POST`'s answer: whole, or, once an upstream said something for the
/// caller while the request ran, an event stream (`relay.rs`).
pub enum Posted {
    Whole(Outcome),
    Events(BoxStream<'static, Relayed>),
}

/// One item of a request's event stream.
pub enum Relayed {
    /// A message an upstream sent for the caller (one line of JSON).
    Message(String),
    /// The request's own answer, the last item: its status and headers can
    /// no longer be sent, only its body.
    Last(Outcome),
}

/// One item of a session's server-to-client stream (`GET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listened {
    /// `notifications/{tools,prompts,resources}/list_changed`.
    Changed(ListChanged),
    /// Nothing for a while: a comment keeps proxies from closing the stream.
    Keepalive,
}

/// OAuth 2.0 protected-resource metadata (RFC 9728): the resource and the
/// configured OIDC issuers, its authorization servers.
pub struct ResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
}
