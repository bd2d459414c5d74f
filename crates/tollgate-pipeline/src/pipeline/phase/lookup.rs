//! Phase 7, cache lookup: exact match on the canonical request in the
//! caller's scope (cache/); a hit is answered here, after phases 1–6, with
//! the output guardrails applied. Callers in a translated shape (Anthropic,
//! Responses) skip it: the cache holds OpenAI answers only (docs/cache.md).

use http::HeaderMap;
use tollgate_policy::cache::{self, CacheStatus, Decision};

use super::{Admitted, Authenticated, Call, Guarded};
use crate::error::GatewayError;
use crate::pipeline::shape::Shaper;
use crate::pipeline::{respond, Reply, RequestCtx};
use crate::snapshot::Snapshot;
use crate::state::AppState;

/// The answer when the cache had one.
#[allow(clippy::too_many_arguments)] // each is one earlier phase's result
pub(in crate::pipeline) async fn lookup(
    app: &AppState,
    snap: &Snapshot,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    (who, call, admitted): (&Authenticated, &Call, &Admitted),
    guarded: &mut Guarded,
    shaper: &Shaper,
) -> Result<Option<Reply>, GatewayError> {
    let parsed = &call.parsed;
    let principal = &who.identity.principal;
    let rule = snap
        .cache_rules
        .get(&parsed.model)
        .filter(|_| !shaper.translated());
    let decision = app.cache.decide(
        rule,
        headers,
        principal,
        ctx.endpoint,
        &parsed.model,
        &parsed.body,
    )?;
    match decision {
        Decision::Off => {}
        Decision::Bypass(reason) => {
            ctx.cache.status = Some(CacheStatus::Bypass);
            cache::count(&parsed.model, CacheStatus::Bypass, reason, 0.0);
        }
        Decision::Lookup { key, ttl } => match app.cache.get(&key).await {
            Some(entry) => {
                let out = respond::guard_output(
                    &guarded.guards,
                    &parsed.model,
                    principal,
                    entry.body.clone(),
                    &mut guarded.masker,
                    &mut ctx.verdicts,
                )
                .await?;
                let resp = respond::cached(
                    ctx,
                    &parsed.model,
                    &entry.meta,
                    out,
                    parsed.stream,
                    parsed.wants_usage,
                    &admitted.limit_headers,
                )?;
                if snap.limits.cache_hits == tollgate_config::CacheHits::Usage {
                    let m = &entry.meta;
                    ctx.cache.charged = Some((m.prompt_tokens, m.completion_tokens, m.cost));
                }
                return Ok(Some(Reply::Done(resp)));
            }
            None => {
                ctx.cache.status = Some(CacheStatus::Miss);
                ctx.cache.pending = Some((key, ttl));
                cache::count(&parsed.model, CacheStatus::Miss, "", 0.0);
            }
        },
    }
    Ok(None)
}
