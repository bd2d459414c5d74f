//! Phase 2 of a prompt-template call (`POST /v1/prompts/{name}/completions`):
//! the template is found and checked like a model, then rendered into the
//! chat body that every later phase handles.

use serde_json::Value;
use tollgate_policy::auth::Identity;
use tollgate_policy::prompts::PromptCall;

use crate::error::GatewayError;
use crate::snapshot::Snapshot;

/// The template (404), its access (403, granted like a model named
/// `prompt:NAME`, the template's tenant a hard boundary), then the rendered
/// chat body and the (name, version) called.
pub(super) fn expand_call(
    snap: &Snapshot,
    identity: &Identity,
    call: &PromptCall,
    body: &[u8],
) -> Result<(bytes::Bytes, (String, u32)), GatewayError> {
    let template = snap
        .templates
        .get(call)
        .ok_or_else(|| crate::error::prompt_not_found(&call.display_name(), call.version))?;
    let access = snap
        .policy
        .evaluate(&identity.principal, identity.key_grant());
    let grant = template.grant_name();
    if let Err(denial) = access.decide(&grant, template.tenant.as_deref()) {
        return Err(crate::error::forbidden(&grant, &identity.principal, denial));
    }
    let rendered = template.expand(body)?;
    let rendered =
        serde_json::to_vec(&Value::Object(rendered)).map_err(|_| GatewayError::internal())?;
    Ok((
        bytes::Bytes::from(rendered),
        (template.name.clone(), template.version),
    ))
}
