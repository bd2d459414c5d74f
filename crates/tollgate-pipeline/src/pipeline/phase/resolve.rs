//! Phase 3, resolve: the requested name → a plain model or a virtual model.

use super::{Call, Target};
use crate::error::GatewayError;
use crate::pipeline::RequestCtx;
use crate::snapshot::Snapshot;

pub(in crate::pipeline) fn resolve(
    snap: &Snapshot,
    ctx: &mut RequestCtx,
    call: &Call,
) -> Result<Target, GatewayError> {
    let target = snap
        .resolve(&call.parsed.model)
        .map(Target)
        .ok_or_else(|| crate::error::model_not_found(&call.parsed.model))?;
    ctx.model_known = true;
    Ok(target)
}
