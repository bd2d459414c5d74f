//! An upstream MCP server over Streamable HTTP: each message is one POST
//! to the server's endpoint; the answer is JSON or an SSE stream that ends
//! with it. The gateway's credential and the upstream session id go on
//! every request; what the server says is read within `max_message_bytes`
//! and its error text scrubbed of the credential before it goes further.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate_config::McpServerConfig;
use tollgate_core::sse::SseSplitter;
use tollgate_llm::credentials::{CredentialDefaults, Credentials};
use tollgate_llm::providers::Secrets;
use tollgate_net::{Egress, EgressDenied};

use super::{Exchange, UpstreamError};
use crate::relay::{self, FromServer, Relay};
use crate::wire::{announce, ListChanged, Notices, Outgoing, UpstreamReply};
use futures_util::stream::{BoxStream, FuturesUnordered, StreamExt as _};
use serde_json::Value;

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const PROTOCOL_HEADER: &str = "mcp-protocol-version";

/// What every HTTP transport of a server needs: the client, the static
/// headers (marked sensitive) and the credential.
pub(crate) fn parts(
    cfg: &McpServerConfig,
    egress: &Egress,
) -> Result<(tollgate_net::Client, HeaderMap, Arc<Credentials>), UpstreamError> {
    if cfg.url.is_none() {
        return Err(UpstreamError::Config {
            server: cfg.name.clone(),
            detail: "url is required".into(),
        });
    }
    client_parts(cfg, egress)
}

/// The static headers with the credential added (for `caller`, whose
/// token a `passthrough` or token-exchange credential uses).
pub(crate) async fn with_credential(
    server: &str,
    headers: &HeaderMap,
    creds: &Credentials,
    caller: &HeaderMap,
) -> Result<HeaderMap, UpstreamError> {
    let mut headers = headers.clone();
    let credential = creds
        .header(caller)
        .await
        .map_err(|e| UpstreamError::Credentials {
            server: server.to_string(),
            detail: e.to_string(),
        })?;
    if let Some((name, value)) = credential {
        headers.insert(name, value);
    }
    Ok(headers)
}

/// `parts` for a server without an MCP `url` (`transport: openapi`).
pub(crate) fn client_parts(
    cfg: &McpServerConfig,
    egress: &Egress,
) -> Result<(tollgate_net::Client, HeaderMap, Arc<Credentials>), UpstreamError> {
    let bad = |detail: String| UpstreamError::Config {
        server: cfg.name.clone(),
        detail,
    };
    let client = tollgate_net::client_builder(egress)
        .with(|b| {
            b.connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(90))
                .tcp_nodelay(true)
        })
        .build()
        .map_err(|e| bad(format!("cannot build HTTP client: {e}")))?;
    let mut headers = HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| bad(format!("bad header name {k}")))?;
        let mut value =
            HeaderValue::from_str(v).map_err(|_| bad(format!("bad value for header {k}")))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let creds = Credentials::build_auth(
        &cfg.name,
        cfg.auth.as_ref(),
        None,
        CredentialDefaults::default(),
        &tollgate_config::Timeouts::default(),
        egress,
    )
    .map_err(|e| bad(e.to_string()))?;
    Ok((client, headers, creds))
}

/// Where what a server says during one exchange goes back: its session,
/// the caller (whose token a credential may use), the caller's relay and
/// the credential values to scrub.
struct Back<'a> {
    session: Option<&'a str>,
    protocol: &'a str,
    caller: &'a HeaderMap,
    relay: Option<&'a Relay>,
    secrets: &'a Secrets,
}

pub(crate) struct HttpUpstream {
    name: String,
    url: reqwest::Url,
    client: tollgate_net::Client,
    headers: HeaderMap,
    creds: Arc<Credentials>,
    timeout: Duration,
    max_bytes: usize,
    notices: Notices,
}

impl HttpUpstream {
    pub(crate) fn new(
        cfg: &McpServerConfig,
        max_bytes: usize,
        egress: &Egress,
        notices: Notices,
    ) -> Result<Self, UpstreamError> {
        let (client, headers, creds) = parts(cfg, egress)?;
        let url = reqwest::Url::parse(cfg.url.as_deref().unwrap_or_default()).map_err(|e| {
            UpstreamError::Config {
                server: cfg.name.clone(),
                detail: format!("bad url: {e}"),
            }
        })?;
        Ok(Self {
            notices,
            name: cfg.name.clone(),
            url,
            client,
            headers,
            creds,
            timeout: cfg.timeout,
            max_bytes,
        })
    }

    /// Sends one message; for a request, waits for its answer (what the
    /// server says about it meanwhile goes to `relay`).
    pub(crate) async fn exchange(
        &self,
        session: Option<&str>,
        protocol: &str,
        msg: &Outgoing<'_>,
        caller: &HeaderMap,
        relay: Option<&Relay>,
    ) -> Result<Exchange, UpstreamError> {
        let body = serde_json::to_vec(msg).map_err(|e| self.protocol(e.to_string()))?;
        let (headers, secrets) = self.post_headers(session, protocol, caller).await?;
        let send = self
            .client
            .post(self.url.clone())
            .map_err(|denied| self.denied(denied))?
            .headers(headers)
            .body(body)
            .send();
        let work = async {
            let resp = send.await.map_err(|e| self.unreachable(&e))?;
            let to = Back {
                session,
                protocol,
                caller,
                relay,
                secrets: &secrets,
            };
            self.answer(resp, msg.id, &to).await
        };
        super::within(&self.name, self.timeout, work).await
    }

    /// A POST's headers: the static ones, the credential (for `caller`),
    /// the protocol revision and the upstream session; and the credential
    /// values to scrub from what comes back.
    async fn post_headers(
        &self,
        session: Option<&str>,
        protocol: &str,
        caller: &HeaderMap,
    ) -> Result<(HeaderMap, Secrets), UpstreamError> {
        let mut headers = with_credential(&self.name, &self.headers, &self.creds, caller).await?;
        let secrets = Secrets::of(&headers);
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(protocol) {
            headers.insert(PROTOCOL_HEADER, v);
        }
        if let Some(v) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.insert(SESSION_HEADER, v);
        }
        Ok((headers, secrets))
    }

    /// The reply to a server request, posted in the same upstream session
    /// (the server answers 202); failures are only logged: the server's
    /// own request then times out on its side.
    async fn reply(&self, to: &Back<'_>, text: String) {
        let sent = async {
            let (headers, _) = self
                .post_headers(to.session, to.protocol, to.caller)
                .await?;
            let resp = self
                .client
                .post(self.url.clone())
                .map_err(|denied| self.denied(denied))?
                .headers(headers)
                .body(text)
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            match resp.status().is_success() {
                true => Ok(()),
                false => Err(UpstreamError::Status {
                    server: self.name.clone(),
                    status: resp.status().as_u16(),
                }),
            }
        };
        if let Err(e) = sent.await {
            tracing::debug!(server = %self.name, error = %e, "mcp reply to a server request not delivered");
        }
    }

    /// The upstream session's own server-to-client stream (`GET`), opened
    /// while a client listens on its stream: its list-change notifications,
    /// until either side ends. `None` when the server offers none (405) or
    /// cannot be reached (logged at debug: the client's stream still
    /// carries the other sources).
    pub(crate) async fn listen(
        &self,
        session: &str,
        protocol: &str,
        caller: &HeaderMap,
    ) -> Option<BoxStream<'static, ListChanged>> {
        let mut headers = self.headers.clone();
        if let Ok(Some((n, v))) = self.creds.header(caller).await {
            headers.insert(n, v);
        }
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        if let Ok(v) = HeaderValue::from_str(protocol) {
            headers.insert(PROTOCOL_HEADER, v);
        }
        if let Ok(v) = HeaderValue::from_str(session) {
            headers.insert(SESSION_HEADER, v);
        }
        let req = match self.client.get(self.url.clone()) {
            Ok(r) => r.headers(headers).send(),
            Err(denied) => {
                tracing::debug!(server = %self.name, error = %denied, "mcp upstream stream refused by egress");
                return None;
            }
        };
        let resp = match tokio::time::timeout(self.timeout, req).await {
            Ok(Ok(r)) if r.status().is_success() => r,
            Ok(Ok(r)) => {
                tracing::debug!(server = %self.name, status = %r.status(), "mcp upstream offers no stream");
                return None;
            }
            Ok(Err(e)) => {
                tracing::debug!(server = %self.name, error = %e, "mcp upstream stream not opened");
                return None;
            }
            Err(_) => return None,
        };
        let max = self.max_bytes;
        let events = futures_util::stream::unfold(
            (resp, SseSplitter::default(), Vec::<ListChanged>::new()),
            move |(mut resp, mut splitter, mut ready)| async move {
                loop {
                    if let Some(kind) = ready.pop() {
                        return Some((kind, (resp, splitter, ready)));
                    }
                    let chunk = resp.chunk().await.ok()??;
                    for event in splitter.push(&chunk) {
                        let Ok(msg) = serde_json::from_str::<UpstreamReply>(&event.data()) else {
                            continue;
                        };
                        if let (Some(m), None) = (&msg.method, &msg.id) {
                            ready.extend(ListChanged::from_method(m));
                        }
                    }
                    if splitter.pending() > max {
                        return None;
                    }
                }
            },
        );
        Some(Box::pin(events))
    }

    /// Ends an upstream session (DELETE); failures are only logged.
    pub(crate) async fn close(&self, session: &str, caller: &HeaderMap) {
        let mut headers = self.headers.clone();
        if let Ok(Some((n, v))) = self.creds.header(caller).await {
            headers.insert(n, v);
        }
        if let Ok(v) = HeaderValue::from_str(session) {
            headers.insert(SESSION_HEADER, v);
        }
        let req = match self.client.delete(self.url.clone()) {
            Ok(req) => req.headers(headers).send(),
            Err(_) => return,
        };
        match tokio::time::timeout(self.timeout, req).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(server = %self.name, error = %e, "mcp session close failed")
            }
            Err(_) => tracing::debug!(server = %self.name, "mcp session close timed out"),
        }
    }

    async fn answer(
        &self,
        resp: reqwest::Response,
        id: Option<u64>,
        to: &Back<'_>,
    ) -> Result<Exchange, UpstreamError> {
        let had_session = to.session.is_some();
        let status = resp.status();
        let session_id = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == http::StatusCode::NOT_FOUND && had_session {
            return Err(UpstreamError::SessionGone {
                server: self.name.clone(),
            });
        }
        if !status.is_success() {
            return Err(UpstreamError::Status {
                server: self.name.clone(),
                status: status.as_u16(),
            });
        }
        let Some(id) = id else {
            // A notification: 202 and no body.
            return Ok(Exchange {
                session_id,
                reply: None,
            });
        };
        let is_sse = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let reply = if is_sse {
            self.read_sse(resp, id, to).await?
        } else {
            let body = self.read_body(resp).await?;
            self.parse(&body)?
        };
        Ok(Exchange {
            session_id,
            reply: Some(reply.scrubbed(to.secrets)),
        })
    }

    /// Events until the one answering `id`. On the way, list-change
    /// notifications are announced to connected clients; progress and
    /// logging notifications go to the caller's relay, and the server's
    /// requests to the caller too (sampling, elicitation: their answers
    /// posted back while the stream is still read), `ping` is answered,
    /// other requests refused, other notifications dropped.
    async fn read_sse(
        &self,
        mut resp: reqwest::Response,
        id: u64,
        to: &Back<'_>,
    ) -> Result<UpstreamReply, UpstreamError> {
        let mut splitter = SseSplitter::default();
        let mut replies = FuturesUnordered::new();
        loop {
            let chunk = tokio::select! {
                Some(()) = replies.next(), if !replies.is_empty() => continue,
                chunk = resp.chunk() => chunk.map_err(|e| self.unreachable(&e))?,
            };
            let Some(chunk) = chunk else { break };
            for event in splitter.push(&chunk) {
                let data = event.data();
                if data.is_empty() {
                    continue;
                }
                let msg: Value = serde_json::from_str(&data)
                    .map_err(|e| self.protocol(format!("not JSON-RPC: {e}")))?;
                if let Some(method) = msg.get("method").and_then(Value::as_str) {
                    if let Some(reply) = self.on_server_message(method, msg.clone(), to) {
                        replies.push(reply);
                    }
                    continue;
                }
                let msg: UpstreamReply = serde_json::from_value(msg)
                    .map_err(|e| self.protocol(format!("not JSON-RPC: {e}")))?;
                if msg.id.as_ref().and_then(Value::as_u64) == Some(id) {
                    return Ok(msg);
                }
            }
            if splitter.pending() > self.max_bytes {
                return Err(self.too_large());
            }
        }
        Err(self.protocol("the event stream ended without an answer".into()))
    }

    /// A message the server started on a request's stream; the future,
    /// when there is one, posts the reply the server waits for.
    fn on_server_message<'a>(
        &'a self,
        method: &str,
        mut msg: Value,
        to: &'a Back<'a>,
    ) -> Option<futures_util::future::BoxFuture<'a, ()>> {
        let id = msg.get("id").cloned();
        let scrub = |text: String| to.secrets.scrub(text);
        let answer = match (FromServer::of(method, id.is_some()), to.relay) {
            (FromServer::ListChanged, _) => {
                announce(&self.notices, method);
                return None;
            }
            (FromServer::Notice, Some(relay)) => {
                relay.notify(scrub(msg.to_string()));
                return None;
            }
            (FromServer::Ask, Some(relay)) => {
                let method = method.to_string();
                let params = msg.get_mut("params").map(Value::take);
                let id = id?;
                return Some(Box::pin(async move {
                    let answer = relay.ask(&method, params, scrub).await;
                    self.reply(to, relay::response(&id, answer)).await;
                }));
            }
            (FromServer::Ping, _) => Ok(Value::Object(Default::default())),
            (FromServer::Ask | FromServer::Refuse, _) => Err(relay::refused(method)),
            _ => return None,
        };
        let text = relay::response(&id?, answer);
        Some(Box::pin(self.reply(to, text)))
    }

    async fn read_body(&self, mut resp: reqwest::Response) -> Result<Bytes, UpstreamError> {
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(self.too_large());
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(&e))? {
            if buf.len() + chunk.len() > self.max_bytes {
                return Err(self.too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    fn parse(&self, body: &[u8]) -> Result<UpstreamReply, UpstreamError> {
        serde_json::from_slice(body).map_err(|e| self.protocol(format!("not JSON-RPC: {e}")))
    }

    fn unreachable(&self, e: &reqwest::Error) -> UpstreamError {
        unreachable(&self.name, e)
    }

    fn denied(&self, denied: EgressDenied) -> UpstreamError {
        UpstreamError::Egress {
            server: self.name.clone(),
            denied,
        }
    }

    fn protocol(&self, detail: String) -> UpstreamError {
        UpstreamError::Protocol {
            server: self.name.clone(),
            detail,
        }
    }

    fn too_large(&self) -> UpstreamError {
        UpstreamError::TooLarge {
            server: self.name.clone(),
            limit: self.max_bytes,
        }
    }

    pub(crate) fn reload(&self) {
        self.creds.reload();
    }
}

/// A failed send: refused by the egress allowlist (resolver or redirect),
/// or the server could not be reached.
pub(crate) fn unreachable(server: &str, e: &reqwest::Error) -> UpstreamError {
    match EgressDenied::find(e) {
        Some(denied) => UpstreamError::Egress {
            server: server.to_string(),
            denied: denied.clone(),
        },
        None => UpstreamError::Unreachable {
            server: server.to_string(),
            detail: tollgate_llm::providers::error_chain(e),
        },
    }
}
