//! `anthropic`: the Messages API (`POST {base_url}/messages`, default base
//! `https://api.anthropic.com/v1`). The OpenAI-shaped call is translated by
//! `tollgate_translate::anthropic`; the answer — a message or the SSE event
//! stream — comes back as OpenAI bytes, so the pipeline sees one shape.
//! Credentials: `x-api-key` from `api_key`, `anthropic-version` (default
//! `2023-06-01`, or the `headers:` entry). Errors: 429 keeps its status and
//! `Retry-After`; 529 (overloaded) is treated as 503 (retryable; callers see
//! 502 like any upstream 5xx); an `error` event mid-stream ends the stream
//! with that error.

use std::time::Duration;
use tollgate_core::error::BuildError;
use tollgate_net::Egress;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::transport::{http_client, send_redacted, static_headers, status_error};
use super::{
    header_allowed, Dialect, Provider, ProviderBody, ProviderCall, ProviderError, ProviderResponse,
};
use crate::upstream_text::error_chain;
use tollgate_config::{Endpoint, ProviderConfig};
use tollgate_core::sse::SseSplitter;
use tollgate_translate::anthropic::{to_anthropic, to_openai, ToOpenAi};

pub(super) const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";
pub(super) const API_VERSION: &str = "2023-06-01";

pub(super) struct AnthropicProvider {
    name: String,
    client: tollgate_net::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    forward: Vec<String>,
    first_byte: Duration,
    /// `max_response_bytes`: the most of a non-streamed answer read.
    max_response: usize,
}

impl AnthropicProvider {
    pub(super) fn new(cfg: &ProviderConfig, egress: &Egress) -> Result<Self, BuildError> {
        let base = cfg
            .base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{base}/messages"))
            .map_err(|e| format!("provider {}: bad base_url: {e}", cfg.name))?;
        let mut headers = static_headers(cfg)?;
        if !headers.contains_key("anthropic-version") {
            headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        }
        if let Some(key) = cfg
            .api_key
            .as_ref()
            .map(|k| k.expose())
            .filter(|k| !k.is_empty())
        {
            let mut value = HeaderValue::from_str(key).map_err(|_| {
                format!("provider {}: api_key is not a valid header value", cfg.name)
            })?;
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        Ok(Self {
            name: cfg.name.clone(),
            client: http_client(cfg, egress)?,
            url,
            headers,
            forward: cfg.forward_headers.clone(),
            first_byte: cfg.timeouts.first_byte,
            max_response: cfg.max_response_bytes,
        })
    }

    fn protocol(&self, message: String) -> ProviderError {
        ProviderError::Protocol {
            provider: self.name.clone(),
            message,
        }
    }

    async fn send(&self, call: ProviderCall<'_>) -> Result<ProviderResponse, ProviderError> {
        if call.endpoint != Endpoint::Chat {
            return Err(ProviderError::Unsupported {
                provider: self.name.clone(),
                field: "model".into(),
                message: format!(
                    "the Anthropic Messages API has no {} endpoint",
                    call.endpoint.as_str()
                ),
            });
        }
        let include_usage = call
            .body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let body = to_anthropic(&call.body).map_err(|e| ProviderError::Unsupported {
            provider: self.name.clone(),
            field: e.field,
            message: e.message,
        })?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| self.protocol(format!("cannot encode request: {e}")))?;
        let mut req = self
            .client
            .post(self.url.clone())
            .map_err(super::transport::egress_error(&self.name))?
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in call.client_headers {
            if header_allowed(&self.forward, name.as_str()) {
                req = req.header(name, value);
            }
        }
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        if call.stream {
            req = req.header(http::header::ACCEPT, "text/event-stream");
        }
        let (resp, secrets) = send_redacted(&self.name, self.first_byte, req).await?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(overloaded_as_503(
                status_error(&self.name, http::Response::from(resp), &secrets)
                    .await
                    .0,
            ));
        }
        if !call.stream {
            let bytes = super::transport::read_limited(
                &self.name,
                http::Response::from(resp),
                self.max_response,
            )
            .await?;
            let msg: Value = serde_json::from_slice(&bytes)
                .map_err(|e| self.protocol(format!("response is not valid JSON: {e}")))?;
            let out = to_openai(&msg).map_err(|e| self.protocol(e.to_string()))?;
            return Ok(ProviderResponse {
                status,
                body: ProviderBody::Full(Bytes::from(out.to_string())),
            });
        }
        let provider = self.name.clone();
        let mut splitter = SseSplitter::default();
        let mut translate = ToOpenAi::new(include_usage);
        let stream = resp
            .bytes_stream()
            .map(move |r| {
                let chunk = r.map_err(|e| ProviderError::StreamInterrupted {
                    provider: provider.clone(),
                    message: error_chain(&e),
                })?;
                let mut out = Vec::new();
                for ev in splitter.push(&chunk) {
                    translate.on_data(&ev.data(), &mut out).map_err(|e| {
                        ProviderError::StreamInterrupted {
                            provider: provider.clone(),
                            message: e.to_string(),
                        }
                    })?;
                }
                if splitter.pending() > tollgate_core::sse::MAX_EVENT_BYTES {
                    return Err(ProviderError::Protocol {
                        provider: provider.clone(),
                        message: "stream event too large".into(),
                    });
                }
                Ok(Bytes::from(out))
            })
            .filter(|r| futures_util::future::ready(!matches!(r, Ok(b) if b.is_empty())))
            .boxed();
        Ok(ProviderResponse {
            status,
            body: ProviderBody::Stream(stream),
        })
    }
}

/// Anthropic's 529 "overloaded" is a 503 for retries, fallback and callers.
fn overloaded_as_503(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::Status {
            provider,
            status: 529,
            message,
            retry_after,
        } => ProviderError::Status {
            provider,
            status: 503,
            message: format!("overloaded (529): {message}"),
            retry_after,
        },
        other => other,
    }
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn dialect(&self) -> Dialect {
        Dialect::Anthropic
    }

    fn call<'a>(
        &'a self,
        call: ProviderCall<'a>,
    ) -> BoxFuture<'a, Result<ProviderResponse, ProviderError>> {
        self.send(call).boxed()
    }
}
