//! Phase 2, ingress: the body under the size limit, parsed and checked. A
//! prompt template call is authorized like a model (`prompt:NAME`) and
//! rendered into a chat body; other shapes (Anthropic Messages, Responses)
//! are translated to an OpenAI chat body (`shape.rs`), so every later phase
//! sees one shape.

use http::HeaderMap;
use tollgate_policy::prompts::PromptCall;

use super::{Authenticated, Call};
use crate::error::GatewayError;
use crate::pipeline::shape::Shaper;
use crate::pipeline::{ingress, prompt, RequestBody, RequestCtx};
use crate::snapshot::Snapshot;
use crate::state::AppState;

pub(in crate::pipeline) async fn ingress(
    app: &AppState,
    snap: &Snapshot,
    ctx: &mut RequestCtx,
    who: &Authenticated,
    (headers, body): (&HeaderMap, RequestBody),
    prompt: Option<PromptCall>,
    shaper: &mut Shaper,
) -> Result<Call, GatewayError> {
    let bytes = ingress::read_body(headers, body, snap.config.server.max_body_bytes).await?;
    ctx.request_bytes = bytes.len() as u64;
    let bytes = match prompt {
        Some(call) => {
            let (rendered, template) = prompt::expand_call(snap, &who.identity, &call, &bytes)?;
            ctx.template = Some(template);
            rendered
        }
        None => bytes,
    };
    let bytes = shaper.chat_body(bytes)?;
    let parsed = ingress::parse(ctx.endpoint, &bytes)?;
    ctx.requested_model.clone_from(&parsed.model);
    ctx.stream = parsed.stream;
    ctx.tags = tags(snap, headers, &parsed.body)?;
    if app.audit.wants_payload(&parsed.model) {
        ctx.payload = Some(tollgate_record::audit::Payload {
            request: bytes.clone(),
            response: None,
        });
    }
    Ok(Call { bytes, parsed })
}

/// The request's custom tags for the ledger (`ledger.tags`): nothing is
/// read when neither the header nor `metadata` is configured.
fn tags(
    snap: &Snapshot,
    headers: &HeaderMap,
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, GatewayError> {
    let cfg = &snap.config.ledger.tags;
    let header = match cfg.header.as_deref() {
        Some(name) => headers
            .get(name)
            .map(|v| {
                v.to_str().map(|s| (name, s)).map_err(|_| {
                    GatewayError::invalid(format!("`{name}` must be visible ASCII text"), None)
                })
            })
            .transpose()?,
        None => None,
    };
    let metadata = match body.get("metadata") {
        Some(serde_json::Value::Object(m)) if cfg.metadata => Some(m),
        _ => None,
    };
    if header.is_none() && metadata.is_none() {
        return Ok(String::new());
    }
    let name = header.map_or("", |(n, _)| n);
    Ok(tollgate_record::tags::encode(
        name,
        header.map(|(_, v)| v),
        metadata,
    )?)
}
