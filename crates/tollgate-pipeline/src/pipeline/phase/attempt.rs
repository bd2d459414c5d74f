//! Phase 8, attempt the targets: retries, fallback, one overall deadline
//! (`pipeline/attempt.rs`). A stream always asks the upstream for usage so
//! streamed spend is exact.

use http::HeaderMap;
use serde_json::Value;

use super::{Call, Routed};
use crate::error::GatewayError;
use crate::pipeline::attempt::{self, Served};
use crate::pipeline::RequestCtx;

pub(in crate::pipeline) async fn attempt(
    ctx: &mut RequestCtx,
    routed: &Routed,
    call: &mut Call,
    headers: &HeaderMap,
) -> Result<Served, GatewayError> {
    let parsed = &mut call.parsed;
    let mut body = std::mem::take(&mut parsed.body);
    if parsed.stream {
        // `strip_usage` (phase 10) hides the extra chunk from a caller who
        // did not ask for it.
        let opts = body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let mut served = attempt::run(ctx, &routed.plan, body, headers, parsed.stream).await?;
    ctx.route = Some(served.route.clone());
    ctx.stats = served.stats.take();
    Ok(served)
}
