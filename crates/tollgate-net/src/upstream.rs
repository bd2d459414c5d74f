//! The model providers' HTTP client: hyper-util's pooled client, without
//! reqwest's layers (a request through reqwest parsed its URL twice more and
//! cost ~28 k instructions per call in its layers, callgrind). What the
//! reqwest clients of `client_builder` guarantee is kept: the URL is checked
//! before anything is sent (`check`, which `send` requires), each new
//! connection resolves its name once through the egress resolver and
//! connects only to the addresses that passed, each redirect hop is checked
//! (`redirect`), rustls with reqwest's roots (webpki) and crypto, HTTP/1.1
//! and HTTP/2 (ALPN, or one of them), the connect timeout over TCP and TLS,
//! a pool of idle connections (90 s). A destination the environment's
//! `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` (less `NO_PROXY`) sends through a
//! proxy is called with the reqwest client instead, which speaks to proxies.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tollgate_config::HttpVersion;
use tollgate_core::error::BuildError;
use tower::util::{MapErr, Oneshot};
use tower::{Service, ServiceExt};
use tower_http::follow_redirect::FollowRedirect;

use crate::error::{EgressDenied, Stage};
use crate::redirect::Hops;
use crate::resolve::{checked_addresses, BoxError};
use crate::Egress;

/// reqwest's defaults, kept.
const MAX_REDIRECTS: usize = 10;
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a provider config sets on its client.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    pub version: HttpVersion,
}

type Pool = Client<Connector, Full<Bytes>>;
type Redirecting =
    FollowRedirect<MapErr<Pool, fn(hyper_util::client::legacy::Error) -> Failure>, Hops>;

/// A pooled client whose every call is subject to the gateway's egress
/// policy. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Redirecting,
    /// The reqwest client for destinations the environment proxies.
    proxied: Option<(std::sync::Arc<Matcher>, crate::Client)>,
    egress: Egress,
}

/// A URI the allowlist accepted (`UpstreamClient::check`): the only kind
/// `send` takes.
#[derive(Debug, Clone)]
pub struct Checked(Uri);

impl UpstreamClient {
    pub fn build(egress: &Egress, settings: &UpstreamSettings) -> Result<Self, BuildError> {
        let mut http = HttpConnector::new_with_resolver(Dns {
            egress: egress.clone(),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_keepalive_interval(Some(TCP_KEEPALIVE));
        http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
        http.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
        let mut config = tls_config()?;
        if settings.version == HttpVersion::Http1 {
            // hyper-rustls leaves ALPN empty for HTTP/1.1 only; reqwest offers it.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        let tls = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http();
        let tls = match settings.version {
            HttpVersion::Auto => tls.enable_all_versions().wrap_connector(http),
            HttpVersion::Http1 => tls.enable_http1().wrap_connector(http),
            HttpVersion::Http2 => tls.enable_http2().wrap_connector(http),
        };
        // The one place the workspace starts a hyper-util client (clippy.toml).
        #[allow(clippy::disallowed_methods)]
        let mut pool = Client::builder(TokioExecutor::new());
        pool.pool_idle_timeout(settings.idle_timeout)
            .pool_max_idle_per_host(usize::MAX)
            .pool_timer(TokioTimer::new());
        if settings.version == HttpVersion::Http2 {
            pool.http2_only(true);
        }
        let pool = pool.build(Connector {
            tls,
            timeout: settings.connect_timeout,
        });
        let client_failure: fn(hyper_util::client::legacy::Error) -> Failure = Failure::Client;
        let inner = FollowRedirect::with_policy(
            pool.map_err(client_failure),
            Hops::new(egress.clone(), MAX_REDIRECTS),
        );
        Ok(Self {
            inner,
            proxied: proxied(egress, settings)?,
            egress: egress.clone(),
        })
    }

    /// `uri` if the allowlist accepts it, or the refusal (counted and
    /// logged; nothing is sent).
    pub fn check(&self, uri: Uri) -> Result<Checked, EgressDenied> {
        self.egress.check_uri(&uri, Stage::Request)?;
        Ok(Checked(uri))
    }

    /// Sends `req` to `to` (its method, headers and body; `Accept: */*`
    /// when it has none, as reqwest adds), following redirects.
    pub async fn send(
        &self,
        to: Checked,
        mut req: Request<Bytes>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let url = to.0;
        if !req.headers().contains_key(http::header::ACCEPT) {
            req.headers_mut()
                .insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
        }
        if let Some((matcher, client)) = &self.proxied {
            if matcher.intercept(&url).is_some() {
                return send_proxied(client, url, req).await;
            }
        }
        *req.uri_mut() = url.clone();
        let call: Oneshot<Redirecting, Request<Full<Bytes>>> =
            self.inner.clone().oneshot(req.map(Full::new));
        match call.await {
            Ok(resp) => Ok(resp.map(UpstreamBody::Direct)),
            Err(failure) => Err(SendError { url, failure }),
        }
    }
}

/// The reqwest client for proxied destinations, when the environment
/// names a proxy (read once, as reqwest reads it when a client is built).
fn proxied(
    egress: &Egress,
    settings: &UpstreamSettings,
) -> Result<Option<(std::sync::Arc<Matcher>, crate::Client)>, BuildError> {
    const VARS: &[&str] = &[
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ];
    if !VARS.iter().any(|v| std::env::var_os(v).is_some()) {
        return Ok(None);
    }
    let s = settings.clone();
    let client = crate::client_builder(egress)
        .with(move |b| {
            let b = b
                .connect_timeout(s.connect_timeout)
                .pool_idle_timeout(s.idle_timeout)
                .tcp_nodelay(true);
            match s.version {
                HttpVersion::Auto => b,
                HttpVersion::Http1 => b.http1_only(),
                HttpVersion::Http2 => b.http2_prior_knowledge(),
            }
        })
        .build()
        .map_err(BuildError::of)?;
    Ok(Some((std::sync::Arc::new(Matcher::from_env()), client)))
}

async fn send_proxied(
    client: &crate::Client,
    url: Uri,
    req: Request<Bytes>,
) -> Result<Response<UpstreamBody>, SendError> {
    let failed = |url: &Uri, e: reqwest::Error| SendError {
        url: url.clone(),
        failure: Failure::Proxied(e),
    };
    let (parts, body) = req.into_parts();
    let parsed = reqwest::Url::parse(&url.to_string()).map_err(|e| SendError {
        url: url.clone(),
        failure: Failure::Redirect(Box::new(e)),
    })?;
    // Checked by `check` already: this second check passes.
    let builder = client
        .request(parts.method, parsed)
        .map_err(|denied| SendError {
            url: url.clone(),
            failure: Failure::Redirect(Box::new(denied)),
        })?;
    let resp = builder
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| failed(&url, e))?;
    Ok(http::Response::from(resp).map(UpstreamBody::Proxied))
}

/// The rustls configuration reqwest's `rustls-tls` builds: the process's
/// default crypto provider, else ring; TLS 1.2 and 1.3; webpki's roots.
fn tls_config() -> Result<rustls::ClientConfig, BuildError> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::ring::default_provider()));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(BuildError::of)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Names resolved by the checking lookup (`resolve::checked_addresses`):
/// the connector dials only the addresses returned here.
#[derive(Clone)]
struct Dns {
    egress: Egress,
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;

impl Service<Name> for Dns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let state = self.egress.state();
        Box::pin(async move {
            let ips = checked_addresses(&state, name.as_str()).await?;
            // Port 0: the connector puts the URI's port on each address.
            Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}

/// TCP, then TLS for https, within the connect timeout (the handshake
/// included, as reqwest's connect timeout).
#[derive(Clone)]
struct Connector {
    tls: HttpsConnector<HttpConnector<Dns>>,
    timeout: Duration,
}

type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tls.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        let connecting = self.tls.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(done) => done,
                Err(_) => Err(Box::new(ConnectTimeout) as BoxError),
            }
        })
    }
}

/// The connect timeout elapsed (TCP and TLS).
#[derive(Debug, thiserror::Error)]
#[error("operation timed out")]
pub(crate) struct ConnectTimeout;

/// Why a call failed, before the URL is attached.
#[derive(Debug)]
pub(crate) enum Failure {
    Client(hyper_util::client::legacy::Error),
    /// A redirect not followed: refused by the allowlist, one too many, or
    /// to a scheme that is neither http nor https.
    Redirect(BoxError),
    /// The reqwest client (a proxied destination).
    Proxied(reqwest::Error),
}

/// A failed call, shown as reqwest shows one (`error sending request for
/// url (…)`, then its sources), which `error_chain` and the log rely on.
/// An `EgressDenied` is in its source chain when the allowlist refused a
/// hop or a connection (`EgressDenied::find`).
#[derive(Debug)]
pub struct SendError {
    url: Uri,
    failure: Failure,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.failure {
            Failure::Client(_) => write!(f, "error sending request for url ({})", self.url),
            Failure::Redirect(_) => write!(f, "error following redirect for url ({})", self.url),
            Failure::Proxied(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            Failure::Client(e) => Some(e),
            Failure::Redirect(e) => Some(&**e),
            Failure::Proxied(e) => e.source(),
        }
    }
}

impl SendError {
    /// The connection could not be made (refused, unreachable, TLS, timeout).
    pub fn is_connect(&self) -> bool {
        match &self.failure {
            Failure::Client(e) => e.is_connect(),
            Failure::Redirect(_) => false,
            Failure::Proxied(e) => e.is_connect(),
        }
    }

    /// The connect timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        match &self.failure {
            Failure::Proxied(e) => e.is_timeout(),
            _ => {
                let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
                while let Some(e) = cur {
                    if e.is::<ConnectTimeout>() {
                        return true;
                    }
                    cur = e.source();
                }
                false
            }
        }
    }
}

/// A response body from either path.
#[derive(Debug)]
pub enum UpstreamBody {
    Direct(Incoming),
    Proxied(reqwest::Body),
}

/// A body that failed while it was read (reqwest's words).
#[derive(Debug, thiserror::Error)]
#[error("error decoding response body")]
pub struct BodyError(#[source] BoxError);

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::Direct(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| BodyError(Box::new(e))),
            UpstreamBody::Proxied(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| BodyError(Box::new(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Direct(b) => b.is_end_stream(),
            UpstreamBody::Proxied(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Direct(b) => b.size_hint(),
            UpstreamBody::Proxied(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type Seen = Arc<Mutex<Vec<String>>>;

    /// A raw HTTP/1.1 server: records each request (head and body as
    /// text) and answers what `answer` says for it.
    async fn serve(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> (SocketAddr, Seen) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Seen::default();
        let (answer, log) = (Arc::new(answer), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (answer, log) = (answer.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        let Some(end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            continue;
                        }
                        let request = String::from_utf8_lossy(&buf[..end + 4 + len]).to_string();
                        buf.drain(..end + 4 + len);
                        let reply = answer(&request);
                        log.lock().unwrap().push(request);
                        if sock.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    fn redirect(status: &str, to: String) -> String {
        format!("HTTP/1.1 {status}\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n")
    }

    fn client(egress: &Egress) -> UpstreamClient {
        UpstreamClient::build(
            egress,
            &UpstreamSettings {
                connect_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(90),
                version: HttpVersion::Auto,
            },
        )
        .unwrap()
    }

    fn post(key: &str) -> Request<Bytes> {
        let mut req = Request::new(Bytes::from_static(b"{\"a\":1}"));
        *req.method_mut() = http::Method::POST;
        let h = req.headers_mut();
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert("authorization", format!("Bearer {key}").parse().unwrap());
        h.insert("x-api-key", key.parse().unwrap());
        req
    }

    async fn send(c: &UpstreamClient, url: String) -> Result<Response<UpstreamBody>, SendError> {
        let to = c.check(url.parse().unwrap()).unwrap();
        c.send(to, post("sk-secret-key")).await
    }

    #[tokio::test]
    async fn redirects_keep_reqwest_semantics_and_drop_credentials_across_origins() {
        let ok = |_: &str| "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string();
        let (target, got) = serve(ok).await;
        let (same, same_got) = serve(move |req: &str| {
            if req.starts_with("POST /first") {
                redirect("307 Temporary Redirect", "/second".into())
            } else if req.starts_with("POST /second") {
                redirect("308 Permanent Redirect", format!("http://{target}/away"))
            } else {
                redirect("303 See Other", format!("http://{target}/other"))
            }
        })
        .await;
        let c = client(&Egress::default());

        // 307 on the same origin: same method, body and credentials; 308
        // to another port: same method and body, no credentials.
        let resp = send(&c, format!("http://{same}/first")).await.unwrap();
        assert_eq!(resp.status(), 200);
        let first = same_got.lock().unwrap().clone();
        assert_eq!(first.len(), 2);
        assert!(first[1].starts_with("POST /second"), "{first:?}");
        assert!(first[1].contains("sk-secret-key") && first[1].ends_with("{\"a\":1}"));
        let away = got.lock().unwrap().remove(0);
        assert!(away.starts_with("POST /away"), "{away}");
        assert!(away.ends_with("{\"a\":1}"), "{away}");
        assert!(!away.contains("sk-secret-key"), "{away}");
        assert!(
            !away.to_ascii_lowercase().contains("authorization"),
            "{away}"
        );

        // 303: a GET without the body or its content type.
        send(&c, format!("http://{same}/see")).await.unwrap();
        let other = got.lock().unwrap().remove(0);
        assert!(other.starts_with("GET /other"), "{other}");
        assert!(!other.contains("{\"a\":1}"), "{other}");
        assert!(
            !other.to_ascii_lowercase().contains("content-type"),
            "{other}"
        );
    }

    #[tokio::test]
    async fn ten_hops_are_followed_the_eleventh_fails() {
        let (addr, seen) = serve(|req: &str| {
            let path = req.split(' ').nth(1).unwrap();
            let n: usize = path.trim_start_matches('/').parse().unwrap();
            redirect("302 Found", format!("/{}", n + 1))
        })
        .await;
        let c = client(&Egress::default());
        let e = send(&c, format!("http://{addr}/0")).await.unwrap_err();
        assert!(std::error::Error::source(&e)
            .unwrap()
            .to_string()
            .contains("too many redirects (more than 10)"));
        assert!(
            e.to_string()
                .starts_with("error following redirect for url (http://"),
            "{e}"
        );
        assert_eq!(seen.lock().unwrap().len(), 11);
        assert!(!e.is_connect() && !e.is_timeout());
    }

    #[tokio::test]
    async fn a_hop_off_the_list_is_refused_before_it_is_sent() {
        let (off, off_seen) =
            serve(|_: &str| "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
        let (on, _) = serve(move |_: &str| {
            redirect(
                "307 Temporary Redirect",
                format!("http://localhost:{}/x", off.port()),
            )
        })
        .await;
        let egress = Egress::default();
        let cfg: tollgate_config::EgressConfig = serde_yaml_ng::from_str(&format!(
            "allow: [{{host: 127.0.0.1, ports: [{}]}}]",
            on.port()
        ))
        .unwrap();
        egress.apply(Egress::prepare(Some(&cfg)).unwrap()).unwrap();
        let c = client(&egress);
        // The first URL is refused by `check` when it is off the list.
        let refused = c
            .check(format!("http://{off}/x").parse().unwrap())
            .unwrap_err();
        assert_eq!(refused.stage, Stage::Request);
        let e = send(&c, format!("http://{on}/x")).await.unwrap_err();
        let denied = EgressDenied::find(&e).unwrap();
        assert_eq!(denied.stage, Stage::Redirect);
        assert_eq!(denied.reason, crate::Reason::Host);
        assert!(off_seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_connection_refused_is_a_connect_error_naming_the_url() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let c = client(&Egress::default());
        let e = send(&c, format!("http://{dead}/v1")).await.unwrap_err();
        assert!(e.is_connect() && !e.is_timeout());
        assert!(e.to_string().contains(&dead.to_string()), "{e}");
    }
}
