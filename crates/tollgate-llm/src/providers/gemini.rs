//! `gemini`: the Google Gemini API. Chat goes to
//! `{base_url}/models/{model}:generateContent` (streams to
//! `:streamGenerateContent?alt=sse`), embeddings to `:batchEmbedContents`;
//! the static `api_key` travels in `x-goog-api-key`. Requests and answers
//! are translated by `tollgate_translate::gemini`; what Gemini cannot carry is
//! a 400 naming the field.

use std::time::Duration;
use tollgate_core::error::BuildError;
use tollgate_net::Egress;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::translated::{self, bad_json, fault, now, send, unsupported, StreamTranslator};
use super::{Provider, ProviderBody, ProviderCall, ProviderError, ProviderResponse};
use tollgate_config::{Endpoint, ProviderConfig};
use tollgate_core::sse::{SseSplitter, MAX_EVENT_BYTES};
use tollgate_translate::gemini::{self as tr};
use tollgate_translate::gemini_stream::{retry_delay, GeminiToOpenAi};
use tollgate_translate::Fault;

pub(super) const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";

pub(super) struct GeminiProvider {
    name: String,
    client: tollgate_net::Client,
    base: String,
    /// Static headers, the API key included (marked sensitive).
    headers: HeaderMap,
    forward: Vec<String>,
    first_byte: Duration,
    /// `max_response_bytes`: the most of a non-streamed answer read.
    max_response: usize,
}

impl GeminiProvider {
    pub(super) fn new(cfg: &ProviderConfig, egress: &Egress) -> Result<Self, BuildError> {
        let base = cfg
            .base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE)
            .trim_end_matches('/')
            .to_string();
        let mut headers = super::transport::static_headers(cfg)?;
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
            headers.insert("x-goog-api-key", value);
        }
        Ok(Self {
            name: cfg.name.clone(),
            client: super::transport::http_client(cfg, egress)?,
            base,
            headers,
            forward: cfg.forward_headers.clone(),
            first_byte: cfg.timeouts.first_byte,
            max_response: cfg.max_response_bytes,
        })
    }

    fn url(&self, model: &str, method: &str) -> Result<reqwest::Url, ProviderError> {
        let url = format!("{}/models/{model}:{method}", self.base);
        reqwest::Url::parse(&url).map_err(|e| ProviderError::Protocol {
            provider: self.name.clone(),
            message: format!("bad upstream URL: {e}"),
        })
    }

    async fn post(
        &self,
        call: &ProviderCall<'_>,
        url: reqwest::Url,
        body: &Value,
    ) -> Result<reqwest::Response, ProviderError> {
        let req = self
            .client
            .post(url)
            .map_err(super::transport::egress_error(&self.name))?
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(translated::to_bytes(body));
        send(
            &self.name,
            self.first_byte,
            req,
            &self.forward,
            call.client_headers,
            &self.headers,
        )
        .await
        .map_err(|(mut e, body)| {
            // Gemini says when to retry in the body (RetryInfo), not in a header.
            if let ProviderError::Status { retry_after, .. } = &mut e {
                if retry_after.is_none() {
                    *retry_after = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v.get("error").and_then(retry_delay));
                }
            }
            e
        })
    }

    async fn answer(&self, call: ProviderCall<'_>) -> Result<ProviderResponse, ProviderError> {
        let model = model_name(&call.body).map_err(|u| unsupported(&self.name, u))?;
        match call.endpoint {
            Endpoint::Chat => self.chat(&call, &model).await,
            Endpoint::Embeddings => {
                let body = tr::embed_request(&call.body, &model)
                    .map_err(|u| unsupported(&self.name, u))?;
                let resp = self
                    .post(&call, self.url(&model, "batchEmbedContents")?, &body)
                    .await?;
                let bytes = translated::body(&self.name, resp, self.max_response).await?;
                let g: Value =
                    serde_json::from_slice(&bytes).map_err(|e| bad_json(&self.name, e))?;
                let base64 =
                    call.body.get("encoding_format").and_then(Value::as_str) == Some("base64");
                let out = tr::embed_response(&g, &model, base64);
                Ok(full(out))
            }
            Endpoint::Completions => Err(ProviderError::Unsupported {
                provider: self.name.clone(),
                field: "prompt".into(),
                message: "gemini serves chat and embeddings, not legacy completions; \
                          use /v1/chat/completions"
                    .into(),
            }),
            Endpoint::Invocations => Err(super::not_accepted(&self.name, call.endpoint)),
        }
    }

    async fn chat(
        &self,
        call: &ProviderCall<'_>,
        model: &str,
    ) -> Result<ProviderResponse, ProviderError> {
        let body = tr::request(&call.body).map_err(|u| unsupported(&self.name, u))?;
        if !call.stream {
            let resp = self
                .post(call, self.url(model, "generateContent")?, &body)
                .await?;
            let bytes = translated::body(&self.name, resp, self.max_response).await?;
            let g: Value = serde_json::from_slice(&bytes).map_err(|e| bad_json(&self.name, e))?;
            if let Some(err) = g.get("error") {
                return Err(fault(
                    &self.name,
                    tollgate_translate::gemini_stream::error_fault(err),
                ));
            }
            return Ok(full(tr::response(&g, model, now())));
        }
        let mut url = self.url(model, "streamGenerateContent")?;
        url.set_query(Some("alt=sse"));
        let resp = self.post(call, url, &body).await?;
        let include_usage = tollgate_translate::include_usage(&call.body);
        let translator = GeminiSse {
            splitter: SseSplitter::default(),
            inner: GeminiToOpenAi::new(model, now(), include_usage),
        };
        Ok(ProviderResponse {
            status: 200,
            body: ProviderBody::Stream(translated::translate_stream(
                &self.name,
                resp.bytes_stream(),
                translator,
            )),
        })
    }
}

fn full(v: Value) -> ProviderResponse {
    ProviderResponse {
        status: 200,
        body: ProviderBody::Full(Bytes::from(translated::to_bytes(&v))),
    }
}

/// The upstream model id, `models/` prefix optional; only characters that
/// are safe in a URL path segment.
fn model_name(
    body: &serde_json::Map<String, Value>,
) -> Result<String, tollgate_translate::Unsupported> {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let model = model.strip_prefix("models/").unwrap_or(model);
    if model.is_empty()
        || !model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(tollgate_translate::Unsupported::with_message(
            "model",
            format!("{model:?} is not a Gemini model id"),
        ));
    }
    Ok(model.to_string())
}

/// SSE splitting in front of the Gemini chunk translator.
struct GeminiSse {
    splitter: SseSplitter,
    inner: GeminiToOpenAi,
}

impl StreamTranslator for GeminiSse {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, Fault> {
        let mut out = Vec::new();
        for ev in self.splitter.push(chunk) {
            out.extend(self.inner.event(&ev.data())?);
        }
        if self.splitter.pending() > MAX_EVENT_BYTES {
            return Err(Fault::Protocol(format!(
                "stream event larger than {MAX_EVENT_BYTES} bytes"
            )));
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, Fault> {
        let rest = self.splitter.take_rest();
        let mut out = Vec::new();
        if !rest.iter().all(u8::is_ascii_whitespace) {
            // A last event without its blank line still counts.
            let mut tail = SseSplitter::default();
            for ev in tail.push(&[&rest[..], b"\n\n"].concat()) {
                out.extend(self.inner.event(&ev.data())?);
            }
        }
        out.extend(self.inner.finish()?);
        Ok(out)
    }
}

impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn call<'a>(
        &'a self,
        call: ProviderCall<'a>,
    ) -> BoxFuture<'a, Result<ProviderResponse, ProviderError>> {
        self.answer(call).boxed()
    }
}
