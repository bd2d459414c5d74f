//! Providers: a trait for behaviour, an enum (`config::ProviderKind`) for
//! config. A provider takes an OpenAI-shaped request whose `model` is already
//! the upstream id and returns the upstream's OpenAI-shaped bytes, whole or
//! as a stream. Providers own their HTTP client, credentials and the
//! first-byte timeout; the pipeline owns the total deadline, usage
//! accounting and everything the caller sees.

mod anthropic;
mod azure;
mod bedrock;
mod databricks;
mod error;
mod gemini;
#[cfg(feature = "mock")]
mod mock;
mod openai;
mod translated;
pub(crate) mod transport;
/// Shared with the MCP upstream client: credential scrubbing of upstream text, error chains.
pub use crate::upstream_text::error_chain;
pub use transport::Secrets;

pub use error::{ProviderError, DEADLINE};

use std::sync::Arc;
use tollgate_core::error::BuildError;
use tollgate_net::Egress;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use http::HeaderMap;
use serde_json::{Map, Value};

use tollgate_config::{Endpoint, ProviderConfig, ProviderKind};

/// One call to a provider.
pub struct ProviderCall<'a> {
    pub endpoint: Endpoint,
    /// The request body, `model` already rewritten to the upstream id.
    pub body: Map<String, Value>,
    pub stream: bool,
    /// The caller's headers; a provider forwards only what its config allows.
    pub client_headers: &'a HeaderMap,
    /// W3C trace context of this try (tracing on): sent upstream as `traceparent`.
    pub traceparent: Option<http::HeaderValue>,
}

pub enum ProviderBody {
    Full(Bytes),
    /// Server-Sent Events bytes in OpenAI's chunk format, as they arrive.
    Stream(BoxStream<'static, Result<Bytes, ProviderError>>),
}

pub struct ProviderResponse {
    pub status: u16,
    pub body: ProviderBody,
}

/// The wire format a provider speaks upstream. The pipeline keeps
/// Anthropic-only request extensions only when every target is `Anthropic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    Other,
}

pub trait Provider: Send + Sync {
    fn name(&self) -> &str;
    fn dialect(&self) -> Dialect {
        Dialect::OpenAi
    }

    /// The chat body field that caps the answer's length when the gateway
    /// sets one (a token limit applies and the caller set none):
    /// `max_tokens`, understood by every OpenAI-compatible server and by
    /// the translators; OpenAI and Azure OpenAI take `max_completion_tokens`
    /// (their reasoning models refuse `max_tokens`).
    fn completion_cap_field(&self) -> &'static str {
        "max_tokens"
    }
    fn call<'a>(
        &'a self,
        call: ProviderCall<'a>,
    ) -> BoxFuture<'a, Result<ProviderResponse, ProviderError>>;

    /// Whether this provider can serve `endpoint` at all. Raw ML payloads
    /// (`Endpoint::Invocations`) only go to providers that opt in.
    fn accepts(&self, endpoint: Endpoint) -> bool {
        endpoint != Endpoint::Invocations
    }

    /// Called when a config reload keeps this provider: re-read whatever
    /// the config points at on disk (credential files).
    fn reload(&self) {}
}

/// Builds the runtime provider for a validated config entry.
/// Every HTTP client it opens is subject to `egress`.
pub fn build(cfg: &ProviderConfig, egress: &Egress) -> Result<Arc<dyn Provider>, BuildError> {
    match cfg.kind {
        ProviderKind::Openai => Ok(Arc::new(openai::OpenAiProvider::new(cfg, egress)?)),
        #[cfg(feature = "mock")]
        ProviderKind::Mock => Ok(Arc::new(mock::MockProvider::new(cfg))),
        #[cfg(not(feature = "mock"))]
        ProviderKind::Mock => Err(BuildError::new(format!(
            "provider {}: `kind: mock` needs a build with the `mock` feature",
            cfg.name
        ))),
        ProviderKind::Databricks => Ok(Arc::new(databricks::DatabricksProvider::new(cfg, egress)?)),
        ProviderKind::AzureOpenai => Ok(Arc::new(azure::AzureOpenAiProvider::new(cfg, egress)?)),
        ProviderKind::Gemini => Ok(Arc::new(gemini::GeminiProvider::new(cfg, egress)?)),
        ProviderKind::Bedrock => Ok(Arc::new(bedrock::BedrockProvider::new(cfg, egress)?)),
        ProviderKind::Anthropic => Ok(Arc::new(anthropic::AnthropicProvider::new(cfg, egress)?)),
    }
}

/// The error for an endpoint a provider cannot serve (the pipeline checks
/// `Provider::accepts` first, so this is a safety net).
pub(crate) fn not_accepted(provider: &str, endpoint: Endpoint) -> ProviderError {
    ProviderError::Status {
        provider: provider.to_string(),
        status: 400,
        message: format!(
            "this provider does not accept {} requests",
            endpoint.as_str()
        ),
        retry_after: None,
    }
}

pub use tollgate_config::NEVER_FORWARDED;

/// Whether a client header may be forwarded under `rules` (`name` or `prefix-*`).
pub(crate) fn header_allowed(rules: &[String], name: &str) -> bool {
    if NEVER_FORWARDED.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        return false;
    }
    rules.iter().any(|r| match r.strip_suffix('*') {
        Some(prefix) => {
            name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
        None => r.eq_ignore_ascii_case(name),
    })
}
