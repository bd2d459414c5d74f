//! The HTTP path of the OpenAI-shaped providers (`HttpUpstream`): one
//! pooled `tollgate_net::UpstreamClient` (hyper-util, rustls,
//! `http_version`, connect timeout, redirects checked hop by hop), static
//! and forwarded headers, upstream credentials (`crate::credentials`), the
//! first-byte timeout, and upstream errors turned into `ProviderError`.
//! What the providers that build reqwest requests (Anthropic, Gemini,
//! Bedrock) share with it: `http_client`, `send_redacted`, the status error
//! and the capped body read. Providers only choose the URL and the body.

use std::sync::Arc;
use std::time::Duration;
use tollgate_core::error::BuildError;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{header_allowed, ProviderBody, ProviderError, ProviderResponse};
use crate::credentials::{CredentialDefaults, CredentialError, Credentials};
use crate::upstream_text::{error_chain, next_chunk, read_capped, truncate, UpstreamBody};
use tollgate_config::{HttpVersion, ProviderConfig};
use tollgate_net::{Egress, EgressDenied};

/// Most bytes of an upstream error body read to build the caller's message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How long an idle pooled upstream connection is kept (reqwest's default).
const POOL_IDLE: Duration = Duration::from_secs(90);

pub(crate) struct HttpUpstream {
    pub name: String,
    client: tollgate_net::UpstreamClient,
    /// Static headers from `headers:` (marked sensitive).
    headers: HeaderMap,
    forward: Vec<String>,
    first_byte: Duration,
    max_response: usize,
    credentials: Arc<Credentials>,
}

impl HttpUpstream {
    pub(crate) fn new(
        cfg: &ProviderConfig,
        defaults: CredentialDefaults,
        egress: &Egress,
    ) -> Result<Self, BuildError> {
        let client = tollgate_net::UpstreamClient::build(
            egress,
            &tollgate_net::UpstreamSettings {
                connect_timeout: cfg.timeouts.connect,
                idle_timeout: POOL_IDLE,
                version: cfg.http_version,
            },
        )
        .map_err(|e| {
            e.context(format_args!(
                "provider {}: cannot build HTTP client",
                cfg.name
            ))
        })?;
        let headers = static_headers(cfg)?;
        let credentials = Credentials::build(cfg, defaults, &cfg.timeouts, egress)?;
        Ok(Self {
            name: cfg.name.clone(),
            client,
            headers,
            forward: cfg.forward_headers.clone(),
            first_byte: cfg.timeouts.first_byte,
            max_response: cfg.max_response_bytes,
            credentials,
        })
    }

    /// Re-reads file-backed credentials (called on config reload).
    pub(crate) fn reload(&self) {
        self.credentials.reload();
    }

    /// POSTs a JSON body; a success is returned whole or as a byte stream.
    pub(crate) async fn post_json(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
        stream: bool,
        client_headers: &HeaderMap,
        traceparent: Option<&HeaderValue>,
    ) -> Result<ProviderResponse, ProviderError> {
        let (uri, basic) = upstream_uri(&self.name, &url)?;
        let to = self.client.check(uri).map_err(egress_error(&self.name))?;
        // The credential wins over a static or forwarded header of the same
        // name (headers are appended, so duplicates must be skipped here).
        let credential = self
            .credentials
            .header(client_headers)
            .await
            .map_err(|e| match e {
                CredentialError::Egress(denied) => egress_error(&self.name)(denied),
                e => ProviderError::Credentials {
                    provider: self.name.clone(),
                    public: e.public_message(),
                    message: e.to_string(),
                },
            })?;
        let mut req = http::Request::new(Bytes::from(body));
        *req.method_mut() = http::Method::POST;
        let headers = req.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // A URL's userinfo is sent as basic auth, as reqwest sends it.
        if let Some(basic) = basic {
            headers.insert(http::header::AUTHORIZATION, basic);
        }
        let taken = |name: &HeaderName| credential.as_ref().is_some_and(|(n, _)| n == name);
        if !self.forward.is_empty() {
            for (name, value) in client_headers {
                if header_allowed(&self.forward, name.as_str()) && !taken(name) {
                    headers.append(name, value.clone());
                }
            }
        }
        for (name, value) in &self.headers {
            if !taken(name) {
                headers.append(name, value.clone());
            }
        }
        if let Some((name, value)) = credential {
            headers.insert(name, value);
        }
        if stream {
            headers.append(
                http::header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        // W3C trace context of this attempt (tracing on).
        if let Some(tp) = traceparent {
            headers.append(tollgate_core::TRACEPARENT, tp.clone());
        }
        let secrets = Secrets::of(req.headers());
        let resp = tokio::time::timeout(self.first_byte, self.client.send(to, req))
            .await
            .map_err(|_| ProviderError::Timeout {
                provider: self.name.clone(),
                stage: "first byte",
            })?
            .map_err(|e| send_error(&self.name, &e).redacted(&secrets))?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(status_error(&self.name, resp, &secrets).await.0);
        }
        let provider = self.name.clone();
        let body = if stream {
            ProviderBody::Stream(
                http_body_util::BodyExt::into_data_stream(resp.into_body())
                    .map(move |r| {
                        r.map_err(|e| ProviderError::StreamInterrupted {
                            provider: provider.clone(),
                            message: error_chain(&e),
                        })
                    })
                    .boxed(),
            )
        } else {
            ProviderBody::Full(read_limited(&self.name, resp, self.max_response).await?)
        };
        Ok(ProviderResponse { status, body })
    }

    /// Encodes a request body, naming the provider on failure.
    pub(crate) fn encode(&self, body: &impl serde::Serialize) -> Result<Vec<u8>, ProviderError> {
        serde_json::to_vec(body).map_err(|e| ProviderError::Protocol {
            provider: self.name.clone(),
            message: format!("cannot encode request: {e}"),
        })
    }
}

/// Sends a built request within the first-byte timeout and returns the
/// answer with the secrets the request carried (`Secrets::of`), so that
/// whatever the upstream says back can be scrubbed of them.
pub(crate) async fn send_redacted(
    provider: &str,
    first_byte: Duration,
    req: reqwest::RequestBuilder,
) -> Result<(reqwest::Response, Secrets), ProviderError> {
    let (client, built) = req.build_split();
    let built = built.map_err(|e| transport_error(provider, e))?;
    let secrets = Secrets::of(built.headers());
    let resp = tokio::time::timeout(first_byte, client.execute(built))
        .await
        .map_err(|_| ProviderError::Timeout {
            provider: provider.to_string(),
            stage: "first byte",
        })?
        .map_err(|e| transport_error(provider, e).redacted(&secrets))?;
    Ok((resp, secrets))
}

/// Header names whose values are credentials wherever they appear.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-amz-security-token",
    "cookie",
];

/// The secret values one upstream request carried: every credential header
/// (the provider's key or static secret, an OAuth token the gateway minted
/// or exchanged, the caller's forwarded or passed-through token) and every
/// header marked sensitive (the config's static `headers`). Upstream text
/// is scrubbed of them before it is relayed or logged. Kept as the header
/// values themselves (reference-counted clones) and expanded into the
/// strings to look for only when there is text to scrub: a successful
/// request pays for no copies (expanding them on every request was ~1.2 k
/// instructions, callgrind).
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<HeaderValue>);

impl Secrets {
    pub fn of(headers: &HeaderMap) -> Self {
        Self(
            headers
                .iter()
                .filter(|(name, value)| {
                    value.is_sensitive() || CREDENTIAL_HEADERS.contains(&name.as_str())
                })
                .map(|(_, value)| value.clone())
                .collect(),
        )
    }

    /// The strings to look for: each value, and its parts (`Bearer
    /// <token>`, SigV4's `Credential=…, Signature=…`: each part on its own,
    /// and the value after `=`), longest first.
    fn expanded(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for value in &self.0 {
            let Ok(text) = value.to_str() else { continue };
            out.push(text.trim().to_string());
            for part in text.split([' ', ',']).map(str::trim) {
                out.push(part.to_string());
                if let Some((_, v)) = part.split_once('=') {
                    out.push(v.to_string());
                }
            }
        }
        out.retain(|s| s.len() >= 8);
        // Longest first, so `Bearer <token>` goes before `<token>`.
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out.dedup();
        out
    }

    /// The strings an upstream byte stream is scrubbed of: each value and
    /// its visible parts, longest first (a forwarded route's or
    /// connection's response, scrubbed as it streams).
    pub fn needles(&self) -> Vec<String> {
        self.expanded()
    }

    #[cfg(test)]
    pub(crate) fn from_values(values: &[&str]) -> Self {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(http::header::AUTHORIZATION, v);
            }
        }
        Self::of(&h)
    }

    /// `text` with every held secret, and every word that is a visible
    /// piece of one (`sk-abc***wxyz`, `upstream-sec…`), replaced by
    /// `[redacted]`.
    pub fn scrub(&self, text: String) -> String {
        let secrets = self.expanded();
        if secrets.is_empty() {
            return text;
        }
        let mut text = text;
        for s in &secrets {
            if text.contains(s.as_str()) {
                text = text.replace(s.as_str(), REDACTED);
            }
        }
        let is_word = |c: char| c.is_ascii_alphanumeric() || "-_.*~+/=".contains(c);
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            if is_piece(&secrets, word) {
                out.push_str(REDACTED);
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for c in text.chars() {
            if is_word(c) {
                word.push(c);
            } else {
                flush(&mut word, &mut out);
                out.push(c);
            }
        }
        flush(&mut word, &mut out);
        out
    }
}

/// A word that shows part of a secret: a run of ≥ 8 of its characters,
/// or, masked with `*`, runs of ≥ 4.
fn is_piece(secrets: &[String], word: &str) -> bool {
    let core = word.trim_matches(|c| c == '.' || c == '=');
    if core.len() < 4 {
        return false;
    }
    let masked = core.contains('*');
    core.split('*').any(|piece| {
        let enough = if masked { 4 } else { 8 };
        piece.len() >= enough && secrets.iter().any(|s| s.contains(piece))
    })
}

const REDACTED: &str = "[redacted]";

impl ProviderError {
    /// The error with upstream-derived text scrubbed of `secrets`.
    pub(crate) fn redacted(self, secrets: &Secrets) -> Self {
        match self {
            ProviderError::Status {
                provider,
                status,
                message,
                retry_after,
            } => ProviderError::Status {
                provider,
                status,
                message: secrets.scrub(message),
                retry_after,
            },
            ProviderError::Connect { provider, message } => ProviderError::Connect {
                provider,
                message: secrets.scrub(message),
            },
            ProviderError::Protocol { provider, message } => ProviderError::Protocol {
                provider,
                message: secrets.scrub(message),
            },
            ProviderError::StreamInterrupted { provider, message } => {
                ProviderError::StreamInterrupted {
                    provider,
                    message: secrets.scrub(message),
                }
            }
            other => other,
        }
    }
}

/// The pooled HTTP client a provider config asks for (`http_version`,
/// connect timeout), under the gateway's egress allowlist.
pub(crate) fn http_client(
    cfg: &ProviderConfig,
    egress: &Egress,
) -> Result<tollgate_net::Client, BuildError> {
    tollgate_net::client_builder(egress)
        .with(|builder| {
            let builder = builder
                .connect_timeout(cfg.timeouts.connect)
                .pool_idle_timeout(POOL_IDLE)
                .tcp_nodelay(true);
            match cfg.http_version {
                HttpVersion::Auto => builder,
                HttpVersion::Http1 => builder.http1_only(),
                HttpVersion::Http2 => builder.http2_prior_knowledge(),
            }
        })
        .build()
        .map_err(|e| {
            BuildError::of(e).context(format_args!(
                "provider {}: cannot build HTTP client",
                cfg.name
            ))
        })
}

/// The refusal of a request's URL, as this provider's error.
pub(crate) fn egress_error(provider: &str) -> impl FnOnce(EgressDenied) -> ProviderError + '_ {
    move |denied| ProviderError::Egress {
        provider: provider.to_string(),
        denied,
    }
}

/// The config's static `headers`, marked sensitive.
pub(crate) fn static_headers(cfg: &ProviderConfig) -> Result<HeaderMap, BuildError> {
    let mut headers = HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("provider {}: bad header name {k}", cfg.name))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| format!("provider {}: bad value for header {k}", cfg.name))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

pub(crate) fn transport_error(provider: &str, e: reqwest::Error) -> ProviderError {
    let class = Failed {
        timeout: e
            .is_timeout()
            .then_some(if e.is_connect() { "connect" } else { "total" }),
        connect: e.is_connect(),
    };
    class.error(provider, &e)
}

/// A failed call of the providers' client, as `transport_error` maps
/// reqwest's (its only timeout is the connect timeout).
fn send_error(provider: &str, e: &tollgate_net::SendError) -> ProviderError {
    let class = Failed {
        timeout: e.is_timeout().then_some("connect"),
        connect: e.is_connect(),
    };
    class.error(provider, e)
}

/// What either client says of a failed call.
struct Failed {
    /// The timeout's stage, when one elapsed.
    timeout: Option<&'static str>,
    connect: bool,
}

impl Failed {
    /// A refusal (the resolver or the redirect policy refused a
    /// destination), a timeout, a connection failure (counting an
    /// exhausted descriptor table), else a protocol error.
    fn error(self, provider: &str, e: &(dyn std::error::Error + 'static)) -> ProviderError {
        if let Some(denied) = EgressDenied::find(e) {
            return egress_error(provider)(denied.clone());
        }
        if let Some(stage) = self.timeout {
            return ProviderError::Timeout {
                provider: provider.to_string(),
                stage,
            };
        }
        if self.connect {
            if tollgate_core::error::is_fd_exhausted(e) {
                metrics::counter!("tollgate_fd_exhausted_total", "op" => "upstream_connect")
                    .increment(1);
                tracing::error!(
                    provider,
                    "upstream connect failed: too many open files (EMFILE/ENFILE); \
                     the process is out of file descriptors"
                );
            }
            return ProviderError::Connect {
                provider: provider.to_string(),
                message: error_chain(e),
            };
        }
        ProviderError::Protocol {
            provider: provider.to_string(),
            message: error_chain(e),
        }
    }
}

/// `url` as the URI the providers' client sends to, and its userinfo as a
/// basic `Authorization` value (reqwest moves it there too; marked
/// sensitive).
fn upstream_uri(
    provider: &str,
    url: &reqwest::Url,
) -> Result<(http::Uri, Option<HeaderValue>), ProviderError> {
    let bad = |e: &dyn std::fmt::Display| ProviderError::Protocol {
        provider: provider.to_string(),
        message: format!("bad URL: {e}"),
    };
    if url.username().is_empty() && url.password().is_none() {
        let uri = http::Uri::try_from(url.as_str()).map_err(|e| bad(&e))?;
        return Ok((uri, None));
    }
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let uri = http::Uri::try_from(bare.as_str()).map_err(|e| bad(&e))?;
    let user = percent_decoded(url.username());
    let pass = url.password().map(percent_decoded).unwrap_or_default();
    let token = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{user}:{pass}"),
    );
    let mut value = HeaderValue::try_from(format!("Basic {token}")).map_err(|e| bad(&e))?;
    value.set_sensitive(true);
    Ok((uri, Some(value)))
}

fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A non-2xx upstream answer as an error, plus the (capped) body for
/// provider-specific details.
pub(crate) async fn status_error<B: UpstreamBody>(
    provider: &str,
    resp: http::Response<B>,
    secrets: &Secrets,
) -> (ProviderError, Bytes) {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = read_capped(resp, ERROR_BODY_LIMIT).await;
    let error = ProviderError::Status {
        provider: provider.to_string(),
        status,
        message: upstream_message(&body),
        retry_after,
    }
    .redacted(secrets);
    // The raw body goes to provider-specific parsing (retry hints), never
    // to the caller: scrubbed all the same.
    let body = Bytes::from(secrets.scrub(String::from_utf8_lossy(&body).into_owned()));
    (error, body)
}

/// `impl Provider` for a provider built on `HttpUpstream` (field `http`,
/// method `send`), with any extra trait items given after the type.
macro_rules! http_provider {
    ($t:ty $(, $extra:item)*) => {
        impl super::Provider for $t {
            fn name(&self) -> &str {
                &self.http.name
            }

            fn call<'a>(
                &'a self,
                call: super::ProviderCall<'a>,
            ) -> futures_util::future::BoxFuture<
                'a,
                Result<super::ProviderResponse, super::ProviderError>,
            > {
                futures_util::FutureExt::boxed(self.send(call))
            }

            fn reload(&self) {
                self.http.reload();
            }

            $($extra)*
        }
    };
}
pub(crate) use http_provider;

/// A provider's `base_url` without its trailing `/` (validated as present).
pub(crate) fn base_url(cfg: &ProviderConfig) -> Result<&str, BuildError> {
    cfg.base_url
        .as_deref()
        .map(|b| b.trim_end_matches('/'))
        .ok_or_else(|| BuildError::new(format!("provider {}: base_url is required", cfg.name)))
}

/// A successful upstream body, whole, read chunk by chunk up to `limit`
/// bytes. A longer one (declared or as it arrives) stops the read at the
/// limit and fails the attempt with `ProviderError::TooLarge`; the
/// connection is dropped rather than drained.
pub(crate) async fn read_limited<B: UpstreamBody>(
    provider: &str,
    mut resp: http::Response<B>,
    limit: usize,
) -> Result<Bytes, ProviderError> {
    let too_large = || ProviderError::TooLarge {
        provider: provider.to_string(),
        limit,
    };
    let declared = http_body::Body::size_hint(resp.body()).exact();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // One chunk (the common case) is returned as is, without a copy.
    let mut first: Option<Bytes> = None;
    let mut buf = bytes::BytesMut::new();
    let mut len = 0usize;
    while let Some(chunk) =
        next_chunk(resp.body_mut())
            .await
            .map_err(|e| ProviderError::Protocol {
                provider: provider.to_string(),
                message: error_chain(&e),
            })?
    {
        len = len.saturating_add(chunk.len());
        if len > limit {
            return Err(too_large());
        }
        match first.take() {
            None if buf.is_empty() => first = Some(chunk),
            None => buf.extend_from_slice(&chunk),
            Some(f) => {
                let hint = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
                buf.reserve(hint.max(f.len() + chunk.len()));
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(match first {
        Some(f) => f,
        None => buf.freeze(),
    })
}

/// `error.message` from an OpenAI-style error body (or Databricks' top-level
/// `message`), else the body's text, short.
pub(crate) fn upstream_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.pointer("/message"))
                .and_then(|m| m.as_str().map(str::to_owned))
        });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let text = if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text
    };
    truncate(text, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_upstream_messages() {
        assert_eq!(
            upstream_message(br#"{"error":{"message":"bad model"}}"#),
            "bad model"
        );
        assert_eq!(
            upstream_message(br#"{"error_code":"X","message":"db says"}"#),
            "db says"
        );
        assert_eq!(upstream_message(b"oops"), "oops");
        assert_eq!(upstream_message(b""), "(empty body)");
        assert!(upstream_message(&[b'x'; 2000]).len() < 600);
    }

    #[test]
    fn userinfo_becomes_basic_auth() {
        let url = reqwest::Url::parse("http://us%40er:p%3Ass@h.example:8080/v1?q=1").unwrap();
        let (uri, basic) = upstream_uri("p", &url).unwrap();
        assert_eq!(uri.to_string(), "http://h.example:8080/v1?q=1");
        let basic = basic.unwrap();
        assert!(basic.is_sensitive());
        // base64("us@er:p:ss")
        assert_eq!(basic.to_str().unwrap(), "Basic dXNAZXI6cDpzcw==");
        let plain = reqwest::Url::parse("https://h.example/v1").unwrap();
        assert!(upstream_uri("p", &plain).unwrap().1.is_none());
    }

    #[test]
    fn scrubs_held_secrets_and_their_pieces() {
        let s = Secrets::from_values(&["Bearer sk-proj-abcdefgh12345678wxyz"]);
        let out = s.scrub(
            "Incorrect API key provided: Bearer sk-proj-abcdefgh12345678wxyz; \
             key sk-proj-abcdefgh12345678wxyz; masked sk-p*********wxyz; \
             cut sk-proj-abcdefgh1…; the secret word stays"
                .to_string(),
        );
        assert!(!out.contains("abcdefgh"), "{out}");
        assert!(!out.contains("wxyz"), "{out}");
        assert!(out.contains("the secret word stays"), "{out}");
        assert!(
            out.starts_with("Incorrect API key provided: [redacted]"),
            "{out}"
        );
    }
}
