//! Phase 7, cache lookup: exact match on the canonical request in the
//! caller's scope and namespace (cache/); a hit is answered here, after
//! phases 1–6, with the output guardrails applied. A non-streamed miss
//! joins its key's single flight: the first goes upstream, identical ones
//! arriving meanwhile wait for its answer and are answered as hits. Callers in a translated shape (Anthropic,
//! Responses) skip it: the cache holds OpenAI answers only (docs/cache.md).

use http::HeaderMap;
use tollgate_policy::cache::{self, CacheStatus, Decision, Join};

use super::{Admitted, Authenticated, Call, Guarded};
use crate::error::GatewayError;
use crate::pipeline::shape::Shaper;
use crate::pipeline::{respond, Outcome, RequestCtx};
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
) -> Result<Option<Outcome>, GatewayError> {
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
        Decision::Lookup { key, ttl, labels } => {
            ctx.cache.key = Some(key);
            let mut found = app.cache.get(&key, &labels).await;
            let mut flight = None;
            // A non-streamed miss shares an identical request's upstream
            // call (cache/flight.rs); streams neither lead nor follow.
            if found.is_none() && !parsed.stream {
                match app.cache.join(key) {
                    Join::Leader(f) => flight = Some(f),
                    Join::Follower(w) => {
                        found = w.answer().await;
                        cache::count_coalesced(found.is_some());
                    }
                }
            }
            match found {
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
                    // The entry holds placeholders; this caller's own values
                    // go back in (a stream is replayed from the restored JSON).
                    let out = respond::restore(guarded.restorer.as_ref(), out);
                    let mut reply = respond::cached(
                        ctx,
                        &parsed.model,
                        &entry.meta,
                        out,
                        parsed.stream,
                        parsed.wants_usage,
                        &admitted.limit_headers,
                    )?;
                    reply
                        .headers
                        .insert(cache::KEY_HEADER, cache::key_header(&key));
                    if snap.limits.cache_hits == tollgate_config::CacheHits::Usage {
                        let m = &entry.meta;
                        ctx.cache.charged = Some((m.prompt_tokens, m.completion_tokens, m.cost));
                    }
                    return Ok(Some(Outcome::Done(reply)));
                }
                None => {
                    ctx.cache.status = Some(CacheStatus::Miss);
                    ctx.cache.pending = Some((key, ttl));
                    ctx.cache.labels = Some(labels);
                    ctx.cache.flight = flight;
                    cache::count(&parsed.model, CacheStatus::Miss, "", 0.0);
                }
            }
        }
    }
    Ok(None)
}
