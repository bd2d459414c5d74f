//! `openai`: any OpenAI-compatible server (OpenAI, vLLM, Ollama, …). The body
//! is forwarded as the caller sent it (unknown fields included) with only
//! `model` rewritten by the pipeline. The HTTP path (pooling, timeouts,
//! credentials, errors) is `http.rs`, shared with the other HTTP providers.

use super::transport::{self, http_provider, HttpUpstream};
use super::{ProviderCall, ProviderError, ProviderResponse};
use crate::credentials::CredentialDefaults;
use tollgate_config::{Endpoint, ProviderConfig};
use tollgate_core::error::BuildError;
use tollgate_net::Egress;

pub(super) struct OpenAiProvider {
    http: HttpUpstream,
    chat_url: reqwest::Url,
    completions_url: reqwest::Url,
    embeddings_url: reqwest::Url,
}

impl OpenAiProvider {
    pub(super) fn new(cfg: &ProviderConfig, egress: &Egress) -> Result<Self, BuildError> {
        let base = transport::base_url(cfg)?;
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base}{path}"))
                .map_err(|e| format!("provider {}: bad base_url: {e}", cfg.name))
        };
        Ok(Self {
            http: HttpUpstream::new(cfg, CredentialDefaults::default(), egress)?,
            chat_url: url("/chat/completions")?,
            completions_url: url("/completions")?,
            embeddings_url: url("/embeddings")?,
        })
    }

    async fn send(&self, call: ProviderCall<'_>) -> Result<ProviderResponse, ProviderError> {
        let url = match call.endpoint {
            Endpoint::Chat => &self.chat_url,
            Endpoint::Completions => &self.completions_url,
            Endpoint::Embeddings => &self.embeddings_url,
            Endpoint::Invocations => {
                return Err(super::not_accepted(&self.http.name, call.endpoint))
            }
        };
        let body = self.http.encode(&call.body)?;
        self.http
            .post_json(
                url.clone(),
                body,
                call.stream,
                call.client_headers,
                call.traceparent.as_ref(),
            )
            .await
    }
}

http_provider!(
    OpenAiProvider,
    fn completion_cap_field(&self) -> &'static str {
        "max_completion_tokens"
    }
);
