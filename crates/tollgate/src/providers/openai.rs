//! `openai`: any OpenAI-compatible server (OpenAI, vLLM, Ollama, …). The body
//! is forwarded as the caller sent it (unknown fields included) with only
//! `model` rewritten by the pipeline. Pooled keep-alive connections over
//! HTTP/1.1 or HTTP/2 (ALPN), rustls, connect and first-byte timeouts.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    header_allowed, Provider, ProviderBody, ProviderCall, ProviderError, ProviderResponse,
};
use crate::config::{Endpoint, HttpVersion, ProviderConfig};

/// Most bytes of an upstream error body read to build the caller's message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

pub struct OpenAiProvider {
    name: String,
    client: reqwest::Client,
    chat_url: reqwest::Url,
    completions_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    /// Static headers, credentials included (marked sensitive).
    headers: HeaderMap,
    forward: Vec<String>,
    first_byte: Duration,
}

impl OpenAiProvider {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, String> {
        let base = cfg
            .base_url
            .as_deref()
            .ok_or_else(|| format!("provider {}: base_url is required", cfg.name))?
            .trim_end_matches('/');
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base}{path}"))
                .map_err(|e| format!("provider {}: bad base_url: {e}", cfg.name))
        };
        let builder = reqwest::Client::builder()
            .connect_timeout(cfg.timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .use_rustls_tls();
        let builder = match cfg.http_version {
            HttpVersion::Auto => builder,
            HttpVersion::Http1 => builder.http1_only(),
            HttpVersion::Http2 => builder.http2_prior_knowledge(),
        };
        let client = builder
            .build()
            .map_err(|e| format!("provider {}: cannot build HTTP client: {e}", cfg.name))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("provider {}: bad header name {k}", cfg.name))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| format!("provider {}: bad value for header {k}", cfg.name))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(key) = cfg.api_key.as_deref().filter(|k| !k.is_empty()) {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                format!("provider {}: api_key is not a valid header value", cfg.name)
            })?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(Self {
            name: cfg.name.clone(),
            client,
            chat_url: url("/chat/completions")?,
            completions_url: url("/completions")?,
            embeddings_url: url("/embeddings")?,
            headers,
            forward: cfg.forward_headers.clone(),
            first_byte: cfg.timeouts.first_byte,
        })
    }

    fn url(&self, endpoint: Endpoint) -> &reqwest::Url {
        match endpoint {
            Endpoint::Chat => &self.chat_url,
            Endpoint::Completions => &self.completions_url,
            Endpoint::Embeddings => &self.embeddings_url,
        }
    }

    async fn send(&self, call: ProviderCall<'_>) -> Result<ProviderResponse, ProviderError> {
        let body = serde_json::to_vec(&call.body).map_err(|e| ProviderError::Protocol {
            provider: self.name.clone(),
            message: format!("cannot encode request: {e}"),
        })?;
        let mut req = self
            .client
            .post(self.url(call.endpoint).clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if !self.forward.is_empty() {
            for (name, value) in call.client_headers {
                if header_allowed(&self.forward, name.as_str()) {
                    req = req.header(name, value);
                }
            }
        }
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        if call.stream {
            req = req.header(http::header::ACCEPT, "text/event-stream");
        }
        if let Some(tp) = call.traceparent {
            req = req.header("traceparent", tp);
        }
        let resp = tokio::time::timeout(self.first_byte, req.send())
            .await
            .map_err(|_| self.timeout("first byte"))?
            .map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(self.status_error(resp).await);
        }
        let provider = self.name.clone();
        let body = if call.stream {
            ProviderBody::Stream(
                resp.bytes_stream()
                    .map(move |r| {
                        r.map_err(|e| ProviderError::StreamInterrupted {
                            provider: provider.clone(),
                            message: error_chain(&e),
                        })
                    })
                    .boxed(),
            )
        } else {
            ProviderBody::Full(resp.bytes().await.map_err(|e| self.transport_error(e))?)
        };
        Ok(ProviderResponse { status, body })
    }

    fn timeout(&self, stage: &'static str) -> ProviderError {
        ProviderError::Timeout {
            provider: self.name.clone(),
            stage,
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            return self.timeout(if e.is_connect() { "connect" } else { "total" });
        }
        if e.is_connect() {
            return ProviderError::Connect {
                provider: self.name.clone(),
                message: error_chain(&e),
            };
        }
        ProviderError::Protocol {
            provider: self.name.clone(),
            message: error_chain(&e),
        }
    }

    async fn status_error(&self, resp: reqwest::Response) -> ProviderError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = read_capped(resp, ERROR_BODY_LIMIT).await;
        ProviderError::Status {
            provider: self.name.clone(),
            status,
            message: upstream_message(&body),
            retry_after,
        }
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn call<'a>(
        &'a self,
        call: ProviderCall<'a>,
    ) -> BoxFuture<'a, Result<ProviderResponse, ProviderError>> {
        self.send(call).boxed()
    }
}

async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    Bytes::from(buf)
}

/// `error.message` from an OpenAI-style error body, else the body's text, short.
fn upstream_message(body: &[u8]) -> String {
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

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// reqwest's top-level message plus its sources ("error sending request: connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    // reqwest includes the URL; keep it (no credentials live in URLs here).
    out
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
        assert_eq!(upstream_message(b"oops"), "oops");
        assert_eq!(upstream_message(b""), "(empty body)");
        assert!(upstream_message(&[b'x'; 2000]).len() < 600);
    }
}
