//! `databricks`: Databricks Model Serving. Every call is
//! `POST {workspace}/serving-endpoints/{endpoint}/invocations`, the model id
//! being the serving endpoint's name. Chat, completions and embeddings bodies
//! are OpenAI-compatible on Databricks (and so are its answers and SSE
//! chunks); classic MLflow payloads (`dataframe_records`, `dataframe_split`,
//! `instances`, `inputs`) go through unchanged (`Endpoint::Invocations`).
//! `model` is dropped from the body: the path names the endpoint.
//! Credentials: a PAT (`auth: {type: bearer}`), a service principal
//! (`client_credentials` against `{workspace}/oidc/v1/token`, scope
//! `all-apis`), OIDC federation (`token_exchange`) or `passthrough`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tollgate_core::error::BuildError;
use tollgate_net::Egress;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use super::transport::{self, http_provider, HttpUpstream};
use super::{ProviderBody, ProviderCall, ProviderError, ProviderResponse};
use crate::credentials::CredentialDefaults;
use tollgate_config::{Endpoint, ProviderConfig};

pub(super) struct DatabricksProvider {
    http: HttpUpstream,
    workspace: reqwest::Url,
}

impl DatabricksProvider {
    pub(super) fn new(cfg: &ProviderConfig, egress: &Egress) -> Result<Self, BuildError> {
        let base = transport::base_url(cfg)?;
        let workspace = reqwest::Url::parse(base)
            .map_err(|e| format!("provider {}: bad base_url: {e}", cfg.name))?;
        let defaults = CredentialDefaults {
            token_url: Some(format!("{base}/oidc/v1/token")),
            scope: Some("all-apis"),
            api_key_header: None,
        };
        Ok(Self {
            http: HttpUpstream::new(cfg, defaults, egress)?,
            workspace,
        })
    }

    fn url(&self, endpoint: &str) -> Result<reqwest::Url, ProviderError> {
        if endpoint.is_empty() {
            return Err(ProviderError::Status {
                provider: self.http.name.clone(),
                status: 400,
                message: "no serving endpoint name".into(),
                retry_after: None,
            });
        }
        let mut url = self.workspace.clone();
        url.path_segments_mut()
            .map_err(|()| bad_base(&self.http.name))?
            .pop_if_empty()
            .extend(["serving-endpoints", endpoint, "invocations"]);
        Ok(url)
    }

    async fn send(&self, call: ProviderCall<'_>) -> Result<ProviderResponse, ProviderError> {
        let mut body = call.body;
        let endpoint = match body.remove("model") {
            Some(Value::String(m)) => m,
            _ => String::new(),
        };
        let url = self.url(&endpoint)?;
        let stream = call.stream && call.endpoint != Endpoint::Invocations;
        let bytes = self.http.encode(&body)?;
        let mut resp = self
            .http
            .post_json(
                url,
                bytes,
                stream,
                call.client_headers,
                call.traceparent.as_ref(),
            )
            .await?;
        if let ProviderBody::Stream(s) = resp.body {
            resp.body = ProviderBody::Stream(ensure_done(s));
        }
        Ok(resp)
    }
}

/// Appends `data: [DONE]` when a stream ends cleanly without one, so the
/// pipeline settles it as complete whichever way the endpoint ends streams.
fn ensure_done(
    s: futures_util::stream::BoxStream<'static, Result<Bytes, ProviderError>>,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, ProviderError>> {
    let done = Arc::new(AtomicBool::new(false));
    let seen = done.clone();
    let tail = futures_util::stream::once(async move {
        (!done.load(Ordering::Acquire)).then(|| Ok(Bytes::from_static(b"data: [DONE]\n\n")))
    })
    .filter_map(|x| async move { x });
    s.inspect(move |item| match item {
        Ok(b) if b.windows(6).any(|w| w == b"[DONE]") => seen.store(true, Ordering::Release),
        Ok(_) => {}
        // After an error nothing may follow as if the stream were whole.
        Err(_) => seen.store(true, Ordering::Release),
    })
    .chain(tail)
    .boxed()
}

pub(super) fn bad_base(provider: &str) -> ProviderError {
    ProviderError::Protocol {
        provider: provider.to_string(),
        message: "base_url cannot take a path".into(),
    }
}

http_provider!(
    DatabricksProvider,
    fn accepts(&self, _: Endpoint) -> bool {
        true
    }
);
