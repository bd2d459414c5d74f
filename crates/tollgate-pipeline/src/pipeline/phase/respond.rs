//! Phases 9 and 10: output guardrails and the response. A whole answer is
//! guarded, cached, restored (input placeholders back to the caller's
//! values, where a policy says `restore`) and translated back here; a
//! stream goes through `stream::observe` (usage, output guardrails, cache
//! fill, restore) and takes the request's end over from the handler's guard.

use std::sync::Arc;

use http::StatusCode;
use tollgate_llm::providers::ProviderBody;
use tollgate_policy::{cache, guard};

use super::{Admitted, Call, Guarded};
use crate::error::GatewayError;
use crate::pipeline::attempt::Served;
use crate::pipeline::finish::Finish;
use crate::pipeline::shape::Shaper;
use crate::pipeline::{respond, stream, usage_of, Outcome};
use crate::reply::Body;
use crate::state::AppState;

#[allow(clippy::too_many_arguments)] // each is one earlier phase's result
pub(in crate::pipeline) async fn respond(
    app: &Arc<AppState>,
    fin: &mut Finish,
    call: Call,
    served: Served,
    mut guarded: Guarded,
    admitted: Admitted,
    shaper: Shaper,
    principal: &tollgate_policy::auth::Principal,
) -> Result<Outcome, GatewayError> {
    let Call { bytes, parsed } = call;
    let Served {
        route,
        response: upstream,
        deadline,
        ..
    } = served;
    let status = StatusCode::from_u16(upstream.status).unwrap_or(StatusCode::OK);
    match upstream.body {
        ProviderBody::Full(body_bytes) => {
            let Some(ctx) = fin.ctx() else {
                return Err(GatewayError::internal());
            };
            ctx.mark_first_token();
            ctx.usage = usage_of(&body_bytes, &route.provider_name, &bytes)?;
            let body_bytes = {
                let _span = ctx
                    .trace
                    .as_ref()
                    .filter(|_| !guarded.guards.is_empty())
                    .map(|t| t.child("tollgate.guardrails.output"));
                respond::guard_output(
                    &guarded.guards,
                    &parsed.model,
                    principal,
                    body_bytes,
                    &mut guarded.masker,
                    &mut ctx.verdicts,
                )
                .await?
            };
            if let Some(p) = ctx.payload.as_mut() {
                p.response = Some(body_bytes.clone());
            }
            if status == StatusCode::OK {
                let meta = respond::cache_meta(&route, ctx.usage);
                app.cache.store(&mut ctx.cache, meta, body_bytes.clone());
            }
            // A miss that got no answer to store ends its single flight
            // here, so its followers need not wait for the request's end.
            ctx.cache.flight = None;
            let body_bytes = respond::restore(guarded.restorer.as_ref(), body_bytes);
            let body_bytes = shaper.full(body_bytes, &route.provider_name)?;
            ctx.response_bytes = body_bytes.len() as u64;
            let mut reply = respond::reply(
                status,
                Body::Full(body_bytes),
                false,
                route.resolved.clone(),
                ctx.cache.status,
                &admitted.limit_headers,
            );
            if let Some(key) = &ctx.cache.key {
                reply
                    .headers
                    .insert(cache::KEY_HEADER, cache::key_header(key));
            }
            Ok(Outcome::Done(reply))
        }
        ProviderBody::Stream(upstream_stream) => {
            let Some(ctx) = fin.ctx() else {
                return Err(GatewayError::internal());
            };
            if ctx.cache.pending.is_some() {
                ctx.cache.fill = Some(cache::StreamFill::new(ctx.endpoint));
            }
            let cache_status = ctx.cache.status;
            let cache_key = ctx.cache.key;
            let strip_usage = parsed.stream && !parsed.wants_usage && !shaper.translated();
            // The stream owns the request's end from here.
            let Some(owned) = fin.hand_over() else {
                return Err(GatewayError::internal());
            };
            let out = stream::observe(
                owned,
                bytes,
                upstream_stream,
                deadline,
                stream::Observers {
                    strip_usage,
                    guard: guard::StreamGuard::new(&guarded.guards),
                    restore: guarded.restorer.map(guard::StreamRestore::new),
                    shape: shaper.translator(),
                },
            );
            let mut reply = respond::reply(
                status,
                Body::Events(out),
                true,
                route.resolved.clone(),
                cache_status,
                &admitted.limit_headers,
            );
            if let Some(key) = &cache_key {
                reply
                    .headers
                    .insert(cache::KEY_HEADER, cache::key_header(key));
            }
            Ok(Outcome::Streaming(reply))
        }
    }
}
