//! Phase 9 for whole answers and phase 10's response building, shared by
//! upstream answers and cache hits.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode};

use crate::api::error::ApiError;
use crate::auth::Principal;
use crate::cache::{CacheNote, Meta};
use crate::guard::{self, GuardPolicy, Verdict};
use crate::guardrails::Masker;
use crate::snapshot::ModelRoute;

use super::context::Usage;
use super::RESOLVED_MODEL;

/// Output guardrails over a whole answer; the body as the caller sees it.
pub async fn guard_output(
    guards: &[Arc<GuardPolicy>],
    model: &str,
    principal: &Principal,
    body: bytes::Bytes,
    masker: &mut Masker,
    verdicts: &mut Vec<Verdict>,
) -> Result<bytes::Bytes, ApiError> {
    if guards.is_empty() {
        return Ok(body);
    }
    match guard::check_output(guards, model, principal, &body, masker, verdicts).await? {
        Some(rewritten) => Ok(bytes::Bytes::from(rewritten)),
        None => Ok(body),
    }
}

/// A response with the gateway's headers: content type, resolved model,
/// and the cache outcome when the model caches.
pub fn response(
    status: StatusCode,
    body: Body,
    sse: bool,
    resolved: HeaderValue,
    cache: &CacheNote,
) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
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
    if let Some(s) = cache.status {
        h.insert(crate::cache::HEADER, HeaderValue::from_static(s.as_str()));
    }
    resp
}

/// What a cached answer records about the call that produced it.
pub fn cache_meta(route: &ModelRoute, usage: Usage) -> Meta {
    Meta {
        provider: route.provider_name.clone(),
        upstream_model: route.upstream_model.clone(),
        prompt_tokens: usage.prompt,
        completion_tokens: usage.completion,
        cost: route.cost(usage.prompt, usage.completion),
    }
}
