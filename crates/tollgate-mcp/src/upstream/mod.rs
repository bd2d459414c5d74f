//! Upstream MCP servers: one type over every transport (Streamable HTTP,
//! `http.rs`; a supervised local process, `stdio.rs`; legacy HTTP+SSE,
//! `sse.rs`; a REST API described by OpenAPI, `openapi.rs`). The gateway is the
//! upstream's client: it opens one upstream session per client session
//! (HTTP) or shares one initialized process (stdio), injects the
//! credential, and hands back the answer or a typed error.

mod http;
mod openapi;
mod sse;
mod stdio;
mod waiters;

pub use self::http::{PROTOCOL_HEADER, SESSION_HEADER};
pub use self::openapi::Connection;

use std::sync::atomic::{AtomicU64, Ordering};

use ::http::HeaderMap;
use serde_json::Value;
use tollgate_config::{McpServerConfig, McpTransport};
use tollgate_core::error::{ErrorKind, GatewayError};
use tollgate_llm::providers::Secrets;

use crate::relay::Relay;
use crate::wire::{
    code, ListChanged, Notices, Outgoing, RpcError, UpstreamReply, UPSTREAM_PROTOCOL_VERSION,
};

/// Why an upstream exchange failed. Messages name the server, never a
/// credential or the server's address.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("MCP server {server} answered with an error")]
    Rpc { server: String, error: RpcError },
    #[error("MCP server {server} could not be reached")]
    Unreachable { server: String, detail: String },
    #[error("MCP server {server} did not answer within {secs} s")]
    Timeout { server: String, secs: u64 },
    #[error("MCP server {server} answered HTTP {status}")]
    Status { server: String, status: u16 },
    #[error("MCP server {server} sent an invalid answer")]
    Protocol { server: String, detail: String },
    #[error("MCP server {server} sent a message larger than {limit} bytes")]
    TooLarge { server: String, limit: usize },
    #[error("MCP server {server} no longer knows this session; initialize again")]
    SessionGone { server: String },
    #[error("no credential for MCP server {server}")]
    Credentials { server: String, detail: String },
    #[error("MCP server {server} is not running")]
    Down { server: String },
    #[error("MCP server {server}: {detail}")]
    Config { server: String, detail: String },
    /// The egress allowlist refused the server's URL, a redirect, or the
    /// addresses its name resolved to.
    #[error("MCP server {server}: {}", denied.public())]
    Egress {
        server: String,
        denied: tollgate_net::EgressDenied,
    },
}

impl UpstreamError {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Rpc { .. } => "upstream_rpc_error",
            Self::Unreachable { .. } | Self::Down { .. } => "upstream_unreachable",
            Self::Timeout { .. } => "upstream_timeout",
            Self::Status { .. } => "upstream_status",
            Self::Protocol { .. } => "upstream_protocol",
            Self::TooLarge { .. } => "upstream_too_large",
            Self::SessionGone { .. } => "session_gone",
            Self::Credentials { .. } => "upstream_credentials",
            Self::Config { .. } => "config",
            Self::Egress { .. } => "egress_denied",
        }
    }

    /// Server-side detail for the log line (never sent to the caller).
    fn detail(&self) -> Option<String> {
        match self {
            Self::Unreachable { detail, .. }
            | Self::Protocol { detail, .. }
            | Self::Credentials { detail, .. }
            | Self::Config { detail, .. } => Some(detail.clone()),
            Self::Egress { denied, .. } => Some(denied.to_string()),
            _ => None,
        }
    }
}

impl From<UpstreamError> for GatewayError {
    fn from(e: UpstreamError) -> Self {
        if let UpstreamError::Rpc { error, .. } = e {
            // The upstream's own JSON-RPC error (already scrubbed) is
            // relayed as it is; the caller's fault when it says so.
            let client_fault = matches!(
                error.code,
                code::INVALID_PARAMS | code::METHOD_NOT_FOUND | code::INVALID_REQUEST
            );
            let (status, kind) = if client_fault {
                (400, ErrorKind::InvalidRequest)
            } else {
                (502, ErrorKind::Server)
            };
            return GatewayError::new(kind, status, "upstream_rpc_error", error.message.clone())
                .with_source(RelayedRpc(error));
        }
        let (status, kind) = match &e {
            UpstreamError::Timeout { .. } => (504, ErrorKind::Server),
            UpstreamError::SessionGone { .. } => (404, ErrorKind::InvalidRequest),
            UpstreamError::Down { .. } => (503, ErrorKind::Server),
            _ => (502, ErrorKind::Server),
        };
        let mut g = GatewayError::new(kind, status, e.label(), e.to_string());
        if matches!(e, UpstreamError::Egress { .. }) {
            g = g.with_code("egress_denied");
        }
        if let Some(d) = e.detail() {
            g = g.with_detail(d);
        }
        if matches!(
            e,
            UpstreamError::Down { .. } | UpstreamError::Unreachable { .. }
        ) {
            g = g.retryable();
        }
        g
    }
}

/// An upstream's JSON-RPC error carried inside a `GatewayError` (its
/// source), so the edge relays the upstream's code, message and data.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub struct RelayedRpc(pub RpcError);

/// What one HTTP exchange gave back: the upstream session id it set (on
/// `initialize`) and the answer (none for a notification).
pub(crate) struct Exchange {
    pub session_id: Option<String>,
    pub reply: Option<UpstreamReply>,
}

impl UpstreamReply {
    /// The answer with any credential the gateway sent removed from the
    /// error's text (a server that echoes what it received).
    fn scrubbed(mut self, secrets: &Secrets) -> Self {
        if let Some(e) = &mut self.error {
            e.message = secrets.scrub(std::mem::take(&mut e.message));
            if let Some(d) = e.data.take() {
                e.data = serde_json::from_str(&secrets.scrub(d.to_string())).ok();
            }
        }
        self
    }
}

/// `work`, or `Timeout` once `limit` has passed.
async fn within<T>(
    server: &str,
    limit: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| UpstreamError::Timeout {
            server: server.to_string(),
            secs: limit.as_secs(),
        })?
}

/// `initialize` params the gateway sends as a client.
pub(crate) fn initialize_params() -> Value {
    serde_json::json!({
        "protocolVersion": UPSTREAM_PROTOCOL_VERSION,
        // What the gateway relays to its clients (docs/mcp.md): a client
        // without the capability answers such a request with its error.
        "capabilities": {"sampling": {}, "elicitation": {}},
        "clientInfo": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")},
    })
}

enum Transport {
    Http(http::HttpUpstream),
    Sse(sse::SseUpstream),
    Stdio(stdio::StdioUpstream),
    OpenApi(openapi::OpenApiUpstream),
}

/// One configured upstream MCP server.
pub struct Upstream {
    pub name: String,
    config: McpServerConfig,
    transport: Transport,
    next_id: AtomicU64,
    notices: Notices,
}

impl Upstream {
    /// Builds the client (stdio: spawns the process; needs a Tokio runtime).
    /// HTTP transports call out under `egress`.
    pub fn build(
        cfg: &McpServerConfig,
        max_bytes: usize,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, UpstreamError> {
        let notices = crate::wire::notices();
        let transport = match cfg.transport {
            McpTransport::StreamableHttp => Transport::Http(http::HttpUpstream::new(
                cfg,
                max_bytes,
                egress,
                notices.clone(),
            )?),
            McpTransport::Sse => {
                let (client, headers, creds) = http::parts(cfg, egress)?;
                Transport::Sse(sse::SseUpstream::spawn(
                    cfg,
                    client,
                    headers,
                    creds,
                    max_bytes,
                    notices.clone(),
                ))
            }
            McpTransport::Stdio => {
                Transport::Stdio(stdio::StdioUpstream::spawn(cfg, max_bytes, notices.clone()))
            }
            McpTransport::Openapi => {
                Transport::OpenApi(openapi::OpenApiUpstream::new(cfg, max_bytes, egress)?)
            }
        };
        Ok(Self {
            name: cfg.name.clone(),
            config: cfg.clone(),
            transport,
            next_id: AtomicU64::new(1),
            notices,
        })
    }

    /// The upstream's list-change announcements, from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ListChanged> {
        self.notices.subscribe()
    }

    /// The outbound connection a REST API server's calls go through.
    pub fn connection_name(&self) -> Option<&str> {
        self.config
            .openapi
            .as_ref()
            .and_then(|o| o.connection.as_deref())
    }

    /// The config it was built from (a reload keeps an upstream whose
    /// config is unchanged, so a stdio process is not restarted).
    pub fn config(&self) -> &McpServerConfig {
        &self.config
    }

    /// Credentials from files are re-read (reload).
    pub fn reload(&self) {
        match &self.transport {
            Transport::Http(h) => h.reload(),
            Transport::OpenApi(o) => o.reload(),
            _ => {}
        }
    }

    /// Opens an upstream session for a new client session: the upstream's
    /// session id (HTTP servers that keep sessions), else `None`.
    pub async fn open(&self, caller: &HeaderMap) -> Result<Option<String>, UpstreamError> {
        let Transport::Http(h) = &self.transport else {
            // A shared process or stream, initialized when it started.
            return Ok(None);
        };
        let params = initialize_params();
        let init = Outgoing {
            jsonrpc: "2.0",
            id: Some(self.next_id()),
            method: "initialize",
            params: Some(&params),
        };
        let ex = h
            .exchange(None, UPSTREAM_PROTOCOL_VERSION, &init, caller, None)
            .await?;
        self.result(ex.reply)?;
        let session = ex.session_id;
        let done = Outgoing {
            jsonrpc: "2.0",
            id: None,
            method: "notifications/initialized",
            params: None,
        };
        h.exchange(
            session.as_deref(),
            UPSTREAM_PROTOCOL_VERSION,
            &done,
            caller,
            None,
        )
        .await?;
        Ok(session)
    }

    /// One request; its `result`, or the upstream's JSON-RPC error. What
    /// the server says about it meanwhile (progress, log messages, its own
    /// requests) goes to `relay`, the caller's stream, when there is one.
    /// `via` is the outbound connection a REST API server with
    /// `connection:` calls through (`connection_name`).
    pub async fn request(
        &self,
        session: Option<&str>,
        method: &str,
        params: Option<&Value>,
        caller: &HeaderMap,
        relay: Option<&Relay>,
        via: Option<&dyn Connection>,
    ) -> Result<Value, UpstreamError> {
        let reply = match &self.transport {
            Transport::Http(h) => {
                let msg = Outgoing {
                    jsonrpc: "2.0",
                    id: Some(self.next_id()),
                    method,
                    params,
                };
                h.exchange(session, UPSTREAM_PROTOCOL_VERSION, &msg, caller, relay)
                    .await?
                    .reply
            }
            Transport::Sse(s) => s.exchange(method, params, true, relay).await?,
            Transport::Stdio(s) => s.exchange(method, params, true, relay).await?,
            Transport::OpenApi(o) => return o.request(method, params, caller, via).await,
        };
        self.result(reply)
    }

    /// A notification (no answer).
    pub async fn notify(
        &self,
        session: Option<&str>,
        method: &str,
        params: Option<&Value>,
        caller: &HeaderMap,
    ) -> Result<(), UpstreamError> {
        match &self.transport {
            Transport::Http(h) => {
                let msg = Outgoing {
                    jsonrpc: "2.0",
                    id: None,
                    method,
                    params,
                };
                h.exchange(session, UPSTREAM_PROTOCOL_VERSION, &msg, caller, None)
                    .await
                    .map(|_| ())
            }
            Transport::Sse(s) => s.exchange(method, params, false, None).await.map(|_| ()),
            Transport::Stdio(s) => s.exchange(method, params, false, None).await.map(|_| ()),
            // Nothing listens for a REST API's notifications.
            Transport::OpenApi(_) => Ok(()),
        }
    }

    /// The upstream session's own server-to-client stream (HTTP servers
    /// that keep sessions); a shared process or stream announces through
    /// `subscribe` instead.
    pub async fn listen(
        &self,
        session: &str,
        caller: &HeaderMap,
    ) -> Option<futures_util::stream::BoxStream<'static, ListChanged>> {
        match &self.transport {
            Transport::Http(h) => h.listen(session, UPSTREAM_PROTOCOL_VERSION, caller).await,
            _ => None,
        }
    }

    /// Ends an upstream session (HTTP); nothing for a shared process.
    pub async fn close(&self, session: &str, caller: &HeaderMap) {
        if let Transport::Http(h) = &self.transport {
            h.close(session, caller).await;
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn result(&self, reply: Option<UpstreamReply>) -> Result<Value, UpstreamError> {
        let reply = reply.ok_or_else(|| UpstreamError::Protocol {
            server: self.name.clone(),
            detail: "no answer".into(),
        })?;
        match (reply.result, reply.error) {
            (_, Some(error)) => Err(UpstreamError::Rpc {
                server: self.name.clone(),
                error,
            }),
            (Some(result), None) => Ok(result),
            (None, None) => Err(UpstreamError::Protocol {
                server: self.name.clone(),
                detail: "an answer with neither result nor error".into(),
            }),
        }
    }
}
