//! The ingress shape hook: callers speaking Anthropic Messages or the
//! OpenAI Responses API go through the same phases as OpenAI chat callers.
//! Their body is translated into an OpenAI chat body right after it is read
//! (phase 2), checked against the plan's upstreams after routing (4b), and
//! the answer is translated back just before it leaves (10): a whole body
//! here, a stream event by event by the `Translator` this module hands the
//! stream (`stream.rs`), whose last observer it is, so each event is
//! parsed once. The edge renders errors in the caller's shape
//! (`Ingress::shape`), a stream's last error event included.

use bytes::Bytes;
use serde_json::{Map, Value};
use tollgate_core::wire::chat::ChatChunk;

use crate::error::{ApiShape, GatewayError};
use tollgate_config::Endpoint;
use tollgate_llm::providers::{Dialect, ProviderError};
use tollgate_translate::{anthropic, responses, Unsupported};

use super::attempt::Plan;

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

/// Re-frames OpenAI events into the caller's shape: the stream's last
/// observer (`stream.rs` hands it each event's typed chunk).
pub(super) enum Translator {
    Responses(responses::ResponsesStream),
    Anthropic(anthropic::FromOpenAi),
}

impl Translator {
    pub(super) fn on_chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        match self {
            Translator::Responses(t) => t.on_chunk(chunk, out),
            Translator::Anthropic(t) => t.on_chunk(chunk, out),
        }
    }

    pub(super) fn on_done(&mut self, out: &mut Vec<u8>) {
        match self {
            Translator::Responses(t) => t.on_done(out),
            Translator::Anthropic(t) => t.on_done(out),
        }
    }

    /// An event that is not a typed chunk (not JSON, or JSON of other types).
    pub(super) fn on_untyped(&mut self, data: &str, out: &mut Vec<u8>) {
        match self {
            Translator::Responses(t) => t.on_untyped(data, out),
            Translator::Anthropic(t) => t.on_untyped(data, out),
        }
    }

    /// An event the gateway wrote itself, not parsed yet.
    pub(super) fn on_data(&mut self, data: &str, out: &mut Vec<u8>) {
        match self {
            Translator::Responses(t) => t.on_data(data, out),
            Translator::Anthropic(t) => t.on_data(data, out),
        }
    }

    /// The number the next event takes, for shapes that number them.
    pub(super) fn sequence(&self) -> Option<u64> {
        match self {
            Translator::Responses(t) => Some(t.next_sequence()),
            Translator::Anthropic(_) => None,
        }
    }
}

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

    /// Phase 10, streams: the translator that re-frames OpenAI chunk
    /// events event by event (`None` for OpenAI shapes). The stream
    /// (`stream.rs`) hands it each event as its last observer; a failure
    /// passes through for the edge to render, with the events approved
    /// before it re-framed and, for the Responses API, the number its
    /// event takes.
    pub(super) fn translator(self) -> Option<Translator> {
        match self.ingress {
            Ingress::OpenAi(_) | Ingress::Databricks(_) => None,
            Ingress::Responses => Some(Translator::Responses(responses::ResponsesStream::new(
                self.request,
            ))),
            _ => Some(Translator::Anthropic(anthropic::FromOpenAi::new())),
        }
    }
}
