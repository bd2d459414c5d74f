//! The ingress shape hook: callers speaking Anthropic Messages or the
//! OpenAI Responses API go through the same phases as OpenAI chat callers.
//! Their body is translated into an OpenAI chat body right after it is read
//! (phase 2), checked against the plan's upstreams after routing (4b), and
//! the answer — whole or streamed — is translated back just before it
//! leaves (10). Errors render in the caller's shape via `ctx.shape`.

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use serde_json::{Map, Value};

use crate::error::{ApiShape, GatewayError};
use tollgate_config::Endpoint;
use tollgate_llm::providers::{Dialect, ProviderError};
use tollgate_translate::{anthropic, responses, Unsupported};

use super::attempt::Plan;
use super::sse::SseSplitter;

/// The API a caller speaks on one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`.
    OpenAi(Endpoint),
    /// `/v1/messages`.
    AnthropicMessages,
    /// `/v1/messages/count_tokens`: phases 1–4b, then a local token count.
    AnthropicCountTokens,
    /// `/v1/responses` (stateless).
    Responses,
    /// `/serving-endpoints/{name}/invocations`: OpenAI-compatible bodies,
    /// Databricks-shaped errors (api/databricks.rs).
    Databricks(Endpoint),
}

impl Ingress {
    pub fn endpoint(self) -> Endpoint {
        match self {
            Ingress::OpenAi(e) | Ingress::Databricks(e) => e,
            _ => Endpoint::Chat,
        }
    }

    pub fn shape(self) -> ApiShape {
        match self {
            Ingress::AnthropicMessages | Ingress::AnthropicCountTokens => ApiShape::Anthropic,
            Ingress::Databricks(_) => ApiShape::Databricks,
            _ => ApiShape::OpenAi,
        }
    }
}

/// Re-frames one OpenAI event's `data` into the caller's shape.
type EventTranslator = dyn FnMut(&str, &mut Vec<u8>) + Send;

/// Per-request translation state.
pub(super) struct Shaper {
    ingress: Ingress,
    /// The caller's Responses request, echoed in the response object.
    request: Map<String, Value>,
}

fn bad(e: Unsupported) -> GatewayError {
    GatewayError::invalid(e.to_string(), None)
}

impl Shaper {
    pub(super) fn new(ingress: Ingress) -> Self {
        Self {
            ingress,
            request: Map::new(),
        }
    }

    /// Whether the caller's shape is not OpenAI's (the usage chunk is then
    /// always wanted: the translators report usage in their own events).
    pub(super) fn translated(&self) -> bool {
        !matches!(self.ingress, Ingress::OpenAi(_) | Ingress::Databricks(_))
    }

    pub(super) fn count_only(&self) -> bool {
        self.ingress == Ingress::AnthropicCountTokens
    }

    /// Phase 2: the caller's body as an OpenAI chat body.
    pub(super) fn chat_body(&mut self, bytes: Bytes) -> Result<Bytes, GatewayError> {
        if !self.translated() {
            return Ok(bytes);
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            GatewayError::invalid(format!("request body is not valid JSON: {e}"), None)
        })?;
        let Value::Object(body) = value else {
            return Err(GatewayError::invalid(
                "request body must be a JSON object",
                None,
            ));
        };
        let chat = match self.ingress {
            Ingress::Responses => {
                let chat = responses::to_chat(&body).map_err(bad)?;
                self.request = body;
                chat
            }
            _ => {
                // Checked before translation, so the 400 names the
                // caller's own field.
                super::ingress::check_numbers(&body)?;
                anthropic::from_anthropic(&body).map_err(bad)?
            }
        };
        serde_json::to_vec(&chat)
            .map(Bytes::from)
            .map_err(|_| GatewayError::internal())
    }

    /// Phase 4b: Anthropic-only extensions stay only when every target
    /// speaks Anthropic; otherwise they are removed or refused.
    pub(super) fn fit_targets(
        &self,
        plan: &Plan,
        body: &mut Map<String, Value>,
    ) -> Result<(), GatewayError> {
        let all_anthropic = plan
            .targets
            .iter()
            .all(|t| t.route.provider.dialect() == Dialect::Anthropic);
        if self.ingress == Ingress::AnthropicMessages && !all_anthropic {
            anthropic::make_portable(body).map_err(bad)?;
        }
        Ok(())
    }

    /// Phase 10, whole answers: the OpenAI body in the caller's shape.
    pub(super) fn full(&self, bytes: Bytes, provider: &str) -> Result<Bytes, GatewayError> {
        if !self.translated() {
            return Ok(bytes);
        }
        let protocol = |message: String| {
            GatewayError::from(ProviderError::Protocol {
                provider: provider.to_string(),
                message,
            })
        };
        let chat: Value = serde_json::from_slice(&bytes)
            .map_err(|e| protocol(format!("response is not valid JSON: {e}")))?;
        let out = match self.ingress {
            Ingress::Responses => responses::from_chat(&chat, &self.request),
            _ => anthropic::from_openai(&chat),
        }
        .map_err(|e| protocol(e.to_string()))?;
        serde_json::to_vec(&out)
            .map(Bytes::from)
            .map_err(|_| GatewayError::internal())
    }

    /// Phase 10, streams: OpenAI chunk events re-framed event by event.
    pub(super) fn stream(
        self,
        s: BoxStream<'static, Result<Bytes, std::convert::Infallible>>,
    ) -> BoxStream<'static, Result<Bytes, std::convert::Infallible>> {
        let mut translate: Box<EventTranslator> = match self.ingress {
            Ingress::OpenAi(_) | Ingress::Databricks(_) => return s,
            Ingress::Responses => {
                let mut t = responses::ResponsesStream::new(self.request);
                Box::new(move |d, out| t.on_data(d, out))
            }
            _ => {
                let mut t = anthropic::FromOpenAi::new();
                Box::new(move |d, out| t.on_data(d, out))
            }
        };
        let mut splitter = SseSplitter::default();
        s.filter_map(move |chunk| {
            let mut out = Vec::new();
            let Ok(chunk) = chunk;
            for ev in splitter.push(&chunk) {
                translate(&ev.data(), &mut out);
            }
            futures_util::future::ready((!out.is_empty()).then(|| Ok(Bytes::from(out))))
        })
        .boxed()
    }
}
