//! Phase 9 for whole answers and phase 10's response building, shared by
//! upstream answers and cache hits.

use std::sync::Arc;

use http::{HeaderValue, StatusCode};

use crate::error::GatewayError;
use crate::reply::{Body, Reply};
use crate::snapshot::ModelRoute;
use tollgate_config::Endpoint;
use tollgate_guardrails::{Masker, Restorer};
use tollgate_policy::auth::Principal;
use tollgate_policy::cache::{self, CacheStatus, Meta};
use tollgate_policy::guard::{self, GuardPolicy, Verdict};
use tollgate_policy::limits::RateHeaders;

use super::context::{RequestCtx, Usage};
use super::RESOLVED_MODEL;

/// Output guardrails over a whole answer; the body as the caller sees it.
pub(super) async fn guard_output(
    guards: &[Arc<GuardPolicy>],
    model: &str,
    principal: &Principal,
    body: bytes::Bytes,
    masker: &mut Masker,
    verdicts: &mut Vec<Verdict>,
) -> Result<bytes::Bytes, GatewayError> {
    if guards.is_empty() {
        return Ok(body);
    }
    match guard::check_output(guards, model, principal, &body, masker, verdicts).await? {
        Some(rewritten) => Ok(bytes::Bytes::from(rewritten)),
        None => Ok(body),
    }
}

/// A whole answer with the request's input placeholders turned back into
/// the caller's values (policies with `restore`). Runs after the output
/// guardrails, the audit payload and the cache have taken the answer as
/// the model wrote it.
pub(super) fn restore(restorer: Option<&Restorer>, body: bytes::Bytes) -> bytes::Bytes {
    match restorer.and_then(|r| guard::restore_output(r, &body)) {
        Some(restored) => bytes::Bytes::from(restored),
        None => body,
    }
}

/// An answer with the gateway's headers: the `x-ratelimit-*` headers
/// when a limit applied, content type, resolved model, and the cache
/// outcome when the model caches.
pub(super) fn reply(
    status: StatusCode,
    body: Body,
    sse: bool,
    resolved: HeaderValue,
    cache: Option<CacheStatus>,
    limits: &RateHeaders,
) -> Reply {
    // The rate-limit headers first (`RateHeaders::map`, no hashing), with
    // room for what follows (these four, the request id): growing the map
    // would rehash it.
    let mut h = limits.map(6);
    let content_type = if sse {
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        "text/event-stream"
    } else {
        "application/json"
    };
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    h.insert(RESOLVED_MODEL, resolved);
    if let Some(s) = cache {
        h.insert(
            tollgate_policy::cache::HEADER,
            HeaderValue::from_static(s.as_str()),
        );
    }
    Reply {
        status,
        headers: h,
        body,
    }
}

/// What a cached answer records about the call that produced it.
pub(super) fn cache_meta(route: &ModelRoute, usage: Usage) -> Meta {
    Meta {
        provider: route.provider_name.clone(),
        upstream_model: route.upstream_model.clone(),
        prompt_tokens: usage.prompt,
        completion_tokens: usage.completion,
        cost: route.cost(usage.prompt, usage.completion),
    }
}

/// Phase 7's answer on a hit (`body` after output guardrails): JSON, or an
/// SSE replay for a streaming request; the hit noted for ledger and metrics.
pub(super) fn cached(
    ctx: &mut RequestCtx,
    model: &str,
    meta: &Meta,
    body: bytes::Bytes,
    stream: bool,
    include_usage: bool,
    limits: &RateHeaders,
) -> Result<Reply, GatewayError> {
    ctx.cache.status = Some(CacheStatus::Hit);
    ctx.cache.cost_saved = meta.cost;
    ctx.cache.origin = Some((meta.provider.clone(), meta.upstream_model.clone()));
    cache::count(model, CacheStatus::Hit, "", meta.cost);
    ctx.mark_first_token();
    let resolved = HeaderValue::from_str(&format!("{}/{}", meta.provider, meta.upstream_model))
        .unwrap_or_else(|_| HeaderValue::from_static("cache"));
    let body = if stream {
        let chat = ctx.endpoint == Endpoint::Chat;
        cache::to_sse(&body, chat, include_usage).ok_or(GatewayError::internal())?
    } else {
        body
    };
    Ok(reply(
        StatusCode::OK,
        Body::Full(body),
        stream,
        resolved,
        ctx.cache.status,
        limits,
    ))
}
