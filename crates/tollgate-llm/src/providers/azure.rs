//! `azure_openai`: Azure OpenAI Service. The model id is the deployment:
//! `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=…`
//! (also `completions`, `embeddings`). Bodies and responses are OpenAI's, so
//! the HTTP path is the shared one (`http.rs`); credentials are an `api-key`
//! header (`api_key:` or `auth: {type: api_key}`) or an Entra ID bearer
//! (`auth: {type: client_credentials}` against the tenant's token URL).

use serde_json::Value;
use tollgate_core::error::BuildError;
use tollgate_net::Egress;

use super::transport::{self, http_provider, HttpUpstream};
use super::{ProviderCall, ProviderError, ProviderResponse};
use crate::credentials::CredentialDefaults;
use tollgate_config::{Endpoint, ProviderConfig};

/// The Entra ID scope for Azure OpenAI (Cognitive Services).
const ENTRA_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

pub(super) struct AzureOpenAiProvider {
    http: HttpUpstream,
    base: reqwest::Url,
    api_version: String,
}

impl AzureOpenAiProvider {
    pub(super) fn new(cfg: &ProviderConfig, egress: &Egress) -> Result<Self, BuildError> {
        let base = transport::base_url(cfg)?;
        let base = reqwest::Url::parse(base.trim_end_matches('/'))
            .map_err(|e| format!("provider {}: bad base_url: {e}", cfg.name))?;
        let api_version = cfg
            .api_version
            .clone()
            .ok_or_else(|| format!("provider {}: api_version is required", cfg.name))?;
        let defaults = CredentialDefaults {
            token_url: None,
            scope: Some(ENTRA_SCOPE),
            api_key_header: Some("api-key"),
        };
        Ok(Self {
            http: HttpUpstream::new(cfg, defaults, egress)?,
            base,
            api_version,
        })
    }

    fn url(&self, deployment: &str, endpoint: Endpoint) -> Result<reqwest::Url, ProviderError> {
        let tail: &[&str] = match endpoint {
            Endpoint::Chat => &["chat", "completions"],
            Endpoint::Completions => &["completions"],
            Endpoint::Embeddings => &["embeddings"],
            Endpoint::Invocations => return Err(super::not_accepted(&self.http.name, endpoint)),
        };
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| super::databricks::bad_base(&self.http.name))?
            .pop_if_empty()
            .extend(["openai", "deployments", deployment])
            .extend(tail);
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        Ok(url)
    }

    async fn send(&self, call: ProviderCall<'_>) -> Result<ProviderResponse, ProviderError> {
        let deployment = call.body.get("model").and_then(Value::as_str).unwrap_or("");
        let url = self.url(deployment, call.endpoint)?;
        let body = self.http.encode(&call.body)?;
        self.http
            .post_json(
                url,
                body,
                call.stream,
                call.client_headers,
                call.traceparent.as_ref(),
            )
            .await
    }
}

http_provider!(
    AzureOpenAiProvider,
    fn completion_cap_field(&self) -> &'static str {
        "max_completion_tokens"
    }
);
