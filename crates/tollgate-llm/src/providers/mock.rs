//! `mock`: the in-process deterministic provider (no network). Speaks the
//! same bytes as `tollgate mock-upstream`, so the pipeline treats it exactly
//! like a remote OpenAI-compatible server. Knobs come from the caller's
//! `x-mock-*` headers or the model name (see `tollgate_mock::Knobs`).

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;

use super::{Provider, ProviderBody, ProviderCall, ProviderError, ProviderResponse};
use tollgate_config::{Endpoint, ProviderConfig};
use tollgate_mock as mock;
use tollgate_mock::Knobs;

pub(super) struct MockProvider {
    name: String,
}

impl MockProvider {
    pub(super) fn new(cfg: &ProviderConfig) -> Self {
        Self {
            name: cfg.name.clone(),
        }
    }

    async fn answer(&self, call: ProviderCall<'_>) -> Result<ProviderResponse, ProviderError> {
        let model = call.body.get("model").and_then(Value::as_str).unwrap_or("");
        let knobs = Knobs::from_request(call.client_headers, model);
        if let Some(d) = knobs.latency {
            tokio::time::sleep(d).await;
        }
        if let Some(status) = knobs.status.filter(|s| !(200..300).contains(s)) {
            return Err(ProviderError::Status {
                provider: self.name.clone(),
                status,
                message: format!("mock: forced status {status}"),
                retry_after: knobs.retry_after,
            });
        }
        let full = |v: Value| ProviderResponse {
            status: 200,
            body: ProviderBody::Full(Bytes::from(v.to_string())),
        };
        let provider = self.name.clone();
        let stream =
            |s: futures_util::stream::BoxStream<'static, Result<Bytes, mock::StreamCut>>| {
                ProviderResponse {
                    status: 200,
                    body: ProviderBody::Stream(
                        s.map(move |r| {
                            r.map_err(|e| ProviderError::StreamInterrupted {
                                provider: provider.clone(),
                                message: e.to_string(),
                            })
                        })
                        .boxed(),
                    ),
                }
            };
        match call.endpoint {
            Endpoint::Chat if call.stream => Ok(stream(mock::chat_stream(&call.body, &knobs))),
            Endpoint::Chat => Ok(full(mock::chat_json(&call.body, &knobs))),
            Endpoint::Completions if call.stream => {
                Ok(stream(mock::completion_stream(&call.body, &knobs)))
            }
            Endpoint::Completions => Ok(full(mock::completion_json(&call.body, &knobs))),
            Endpoint::Embeddings => {
                mock::embeddings_json(&call.body)
                    .map(full)
                    .map_err(|e| ProviderError::Status {
                        provider: self.name.clone(),
                        status: 400,
                        message: e.to_string(),
                        retry_after: None,
                    })
            }
            Endpoint::Invocations => Err(super::not_accepted(&self.name, call.endpoint)),
        }
    }
}

impl Provider for MockProvider {
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
