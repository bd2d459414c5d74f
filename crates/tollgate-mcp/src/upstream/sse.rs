//! An upstream MCP server on the legacy HTTP+SSE transport (protocol
//! revision 2024-11-05): the gateway opens one event stream (`GET url`),
//! learns from its first `endpoint` event where to POST messages, and reads
//! every answer from the stream. Like a stdio server, that one upstream
//! session is shared by every client session (initialized once; request ids
//! rewritten so answers find their caller) and supervised: when the stream
//! ends, requests in flight fail at once and it is opened again after a
//! back-off (1 s doubling to 30 s). The credential is the server's own
//! (modes that depend on the caller are refused at load).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use tokio::sync::{oneshot, watch};
use tollgate_config::McpServerConfig;
use tollgate_core::sse::SseSplitter;
use tollgate_llm::credentials::Credentials;

use super::waiters::{outgoing, Backoff, Waiters};
use super::UpstreamError;
use crate::relay::Relay;
use crate::wire::{Notices, UpstreamReply};

/// Where messages are posted, once the stream said so.
#[derive(Clone)]
struct Link {
    post_url: reqwest::Url,
    headers: HeaderMap,
}

pub(crate) struct SseUpstream {
    name: String,
    timeout: Duration,
    client: tollgate_net::Client,
    link: watch::Receiver<Option<Link>>,
    waiters: Arc<Waiters>,
    _stop: oneshot::Sender<()>,
}

impl SseUpstream {
    pub(crate) fn spawn(
        cfg: &McpServerConfig,
        client: tollgate_net::Client,
        headers: HeaderMap,
        creds: Arc<Credentials>,
        max_bytes: usize,
        notices: Notices,
    ) -> Self {
        let (link_tx, link) = watch::channel(None);
        let (stop, stopped) = oneshot::channel();
        let waiters = Arc::new(Waiters::new(notices));
        let sup = Supervisor {
            cfg: cfg.clone(),
            client: client.clone(),
            headers,
            creds,
            max_bytes,
            link: link_tx,
            waiters: waiters.clone(),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sup.run(stopped));
        }
        Self {
            name: cfg.name.clone(),
            timeout: cfg.timeout,
            client,
            link,
            waiters,
            _stop: stop,
        }
    }

    /// Posts a request and waits for its answer on the stream, or a notification.
    pub(crate) async fn exchange(
        &self,
        method: &str,
        params: Option<&serde_json::Value>,
        is_request: bool,
        relay: Option<&Relay>,
    ) -> Result<Option<UpstreamReply>, UpstreamError> {
        let work = async {
            let mut rx = self.link.clone();
            let link = rx
                .wait_for(Option::is_some)
                .await
                .map_err(|_| self.down())?
                .clone()
                .ok_or_else(|| self.down())?;
            self.waiters
                .exchange(&self.name, method, params, is_request, relay, |text| {
                    post(&self.client, &link, text.into_bytes(), &self.name)
                })
                .await
        };
        super::within(&self.name, self.timeout, work).await
    }

    fn down(&self) -> UpstreamError {
        UpstreamError::Down {
            server: self.name.clone(),
        }
    }
}

async fn post(
    client: &tollgate_net::Client,
    link: &Link,
    body: Vec<u8>,
    server: &str,
) -> Result<(), UpstreamError> {
    let resp = client
        .post(link.post_url.clone())
        .map_err(|denied| UpstreamError::Egress {
            server: server.to_string(),
            denied,
        })?
        .headers(link.headers.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| super::http::unreachable(server, &e))?;
    if !resp.status().is_success() {
        return Err(UpstreamError::Status {
            server: server.to_string(),
            status: resp.status().as_u16(),
        });
    }
    Ok(())
}

/// The `event:` name of one raw SSE event (`message` when it has none).
fn event_name(raw: &[u8]) -> &str {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("event:").map(str::trim))
        })
        .unwrap_or("message")
}

struct Supervisor {
    cfg: McpServerConfig,
    client: tollgate_net::Client,
    headers: HeaderMap,
    creds: Arc<Credentials>,
    max_bytes: usize,
    link: watch::Sender<Option<Link>>,
    waiters: Arc<Waiters>,
}

impl Supervisor {
    async fn run(self, mut stopped: oneshot::Receiver<()>) {
        let mut backoff = Backoff::default();
        loop {
            let started = tokio::time::Instant::now();
            tokio::select! {
                _ = &mut stopped => return,
                e = self.run_once() => tracing::warn!(server = %self.cfg.name, error = %e,
                    "mcp sse stream ended; reconnecting"),
            }
            self.link.send_replace(None);
            self.waiters.fail_all();
            if !backoff.pause(&self.cfg.name, started, &mut stopped).await {
                return;
            }
        }
    }

    /// One stream: open, learn the endpoint, initialize, then hand answers
    /// to their callers until it ends. Returns why it ended.
    async fn run_once(&self) -> String {
        let url = self.cfg.url.clone().unwrap_or_default();
        let mut headers = self.headers.clone();
        match self.creds.header(&HeaderMap::new()).await {
            Ok(Some((n, v))) => {
                headers.insert(n, v);
            }
            Ok(None) => {}
            Err(e) => return format!("no credential: {e}"),
        }
        let get = match reqwest::Url::parse(&url) {
            Ok(parsed) => self.client.get(parsed),
            Err(e) => return format!("bad url: {e}"),
        };
        let get = match get {
            Ok(get) => get,
            Err(denied) => return denied.to_string(),
        };
        let resp = get
            .headers(headers.clone())
            .header(
                http::header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            )
            .send()
            .await;
        let mut resp = match resp {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => return format!("GET answered HTTP {}", r.status()),
            Err(e) => return tollgate_llm::providers::error_chain(&e),
        };
        let mut splitter = SseSplitter::default();
        // The endpoint, once announced; the id of our initialize until answered.
        let mut link: Option<Link> = None;
        let mut init: Option<u64> = None;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => return "the server closed the stream".into(),
                Err(e) => return tollgate_llm::providers::error_chain(&e),
            };
            for event in splitter.push(&chunk) {
                let data = event.data();
                if event_name(&event.raw) == "endpoint" {
                    let Ok(post_url) = reqwest::Url::parse(&url).and_then(|u| u.join(data.trim()))
                    else {
                        return format!("bad endpoint event {data:?}");
                    };
                    let l = Link {
                        post_url,
                        headers: headers.clone(),
                    };
                    let id = self.waiters.next_id();
                    if let Err(e) = self
                        .send(
                            &l,
                            Some(id),
                            "initialize",
                            Some(&super::initialize_params()),
                        )
                        .await
                    {
                        return e.to_string();
                    }
                    init = Some(id);
                    link = Some(l);
                    continue;
                }
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&data) else {
                    continue;
                };
                let Some(l) = &link else { continue };
                if value.get("method").is_some() {
                    // The server's own message: relayed, announced or
                    // answered (its reply posted when ready, off this loop).
                    if let Some(reply) = self.waiters.on_server_message(value) {
                        let (client, l, name) =
                            (self.client.clone(), l.clone(), self.cfg.name.clone());
                        tokio::spawn(async move {
                            let _ = post(&client, &l, reply.await.into_bytes(), &name).await;
                        });
                    }
                    continue;
                }
                let Ok(msg) = serde_json::from_value::<UpstreamReply>(value) else {
                    continue;
                };
                let answers_init =
                    init.is_some() && msg.id.as_ref().and_then(serde_json::Value::as_u64) == init;
                if answers_init {
                    if let Some(e) = msg.error {
                        return format!("initialize refused: {}", e.message);
                    }
                    if let Err(e) = self.send(l, None, "notifications/initialized", None).await {
                        return e.to_string();
                    }
                    init = None;
                    self.link.send_replace(Some(l.clone()));
                    tracing::info!(server = %self.cfg.name, "mcp sse server connected");
                } else {
                    self.waiters.resolve(msg);
                }
            }
            if splitter.pending() > self.max_bytes {
                return "an event larger than max_message_bytes".into();
            }
        }
    }

    async fn send(
        &self,
        link: &Link,
        id: Option<u64>,
        method: &str,
        params: Option<&serde_json::Value>,
    ) -> Result<(), UpstreamError> {
        let text = outgoing(&self.cfg.name, id, method, params)?;
        post(&self.client, link, text.into_bytes(), &self.cfg.name).await
    }
}
