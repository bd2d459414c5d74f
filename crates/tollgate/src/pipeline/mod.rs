//! The request pipeline: one ordered list of phases over one `RequestCtx`.
//! The order is the contract (ARCHITECTURE.md draws it); later issues fill
//! the marked slots. Every decision uses in-memory state; the only I/O is the
//! upstream call, and recording happens after the response (`after.rs`).

mod after;
mod attempt;
mod context;
mod ingress;
mod sse;
mod stream;
mod tokens;

pub use context::{Attempt, RequestCtx, Usage};
pub use ingress::{parse as parse_request, Parsed};
pub use sse::{Event, SseSplitter};

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::api::error::ApiError;
use crate::auth;
use crate::config::Endpoint;
use crate::guard;
use crate::guardrails::Masker;
use crate::providers::{ProviderBody, ProviderError};
use crate::routing;
use crate::server::AppState;
use crate::snapshot::{Resolved, Snapshot};

pub const REQUEST_ID: &str = "x-request-id";
pub const RESOLVED_MODEL: &str = "x-tollgate-resolved-model";

/// What `run` produced: a finished response, or a stream that settles the
/// request's accounting itself when it ends.
enum Reply {
    Done(Response),
    Streaming(Response),
}

/// Entry point for every model call (chat, completions, embeddings).
pub async fn handle(
    app: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = request_id(&headers);
    let mut ctx = RequestCtx::new(endpoint, request_id);
    if app.audit.enabled() {
        ctx.audit_headers = crate::audit::loggable_headers(&headers);
    }
    if let Some(t) = &app.tracing {
        ctx.trace = Some(t.start_request(&headers, operation_name(endpoint)));
    }
    let snap = app.snapshot.load_full();
    // Every log line inside carries the request id (JSON logs: `span`).
    let span = tracing::info_span!("request", request_id = %ctx.request_id);
    let outcome =
        tracing::Instrument::instrument(run(&app, &snap, &mut ctx, &headers, body), span.clone())
            .await;
    let _entered = span.enter();
    match outcome {
        Ok(Reply::Streaming(resp)) => resp,
        Ok(Reply::Done(resp)) => {
            after::finish(&app, ctx);
            resp
        }
        Err(err) => {
            ctx.status = err.status().as_u16();
            ctx.error = err.label();
            err.log_denial(&ctx.request_id);
            let resolved = ctx.route.as_ref().map(|r| r.resolved.clone());
            let mut resp = err.into_response_shaped(ctx.shape);
            if let Some(v) = resolved {
                resp.headers_mut().insert(RESOLVED_MODEL, v);
            }
            after::finish(&app, ctx);
            resp
        }
    }
}

async fn run(
    app: &Arc<AppState>,
    snap: &Snapshot,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    // 1. authenticate — headers only, before reading a byte of the body, so
    //    unauthenticated callers cost nothing. API keys and JWTs alike end in
    //    one `Principal`; verification uses cached keys only (an unknown JWT
    //    `kid` may wait ≤ 2 s on one rate-limited JWKS refresh).
    let store_keys = app.store_keys.load_full();
    let span = ctx.trace.as_ref().map(|t| t.child("tollgate.auth"));
    let identity = auth::authenticate(headers, &snap.credentials(&store_keys)).await;
    if let (Some(s), Err(e)) = (span, &identity) {
        s.fail(e.label(), None);
    }
    let identity = identity?;
    ctx.identity = Some(identity.clone());

    // 2. ingress — body under the size limit, parsed and checked.
    let bytes = ingress::read_body(headers, body, snap.config.server.max_body_bytes).await?;
    let parsed = ingress::parse(ctx.endpoint, &bytes)?;
    ctx.requested_model.clone_from(&parsed.model);
    ctx.stream = parsed.stream;
    if app.audit.wants_payload(&parsed.model) {
        ctx.payload = Some(crate::audit::Payload {
            request: bytes.clone(),
            response: None,
        });
    }

    // 3. resolve — model name → a plain model or a virtual model.
    let resolved = snap
        .resolve(&parsed.model)
        .ok_or_else(|| ApiError::ModelNotFound {
            model: parsed.model.clone(),
        })?;

    // 4. authorize — deny by default (policy rules, the key's own grant, the
    //    model's owning tenant) on the name the caller asked for; checked
    //    before anything reveals more than the name's existence.
    let access = snap
        .policy
        .evaluate(&identity.principal, identity.key_grant());
    let tenant = match &resolved {
        Resolved::Model(route) => route.tenant.as_deref(),
        Resolved::Virtual(_) => None,
    };
    if let Err(denial) = access.decide(&parsed.model, tenant) {
        return Err(ApiError::forbidden(
            &parsed.model,
            &identity.principal,
            denial,
        ));
    }

    // 4b. route — the ordered targets (strategy and health, all in memory).
    let plan = match &resolved {
        Resolved::Model(route) => attempt::Plan::single(route.clone()),
        Resolved::Virtual(vm) => {
            let order = vm.plan(
                routing::clock::now_ms(),
                vm.sticky_key(headers, &parsed.body),
                rand::random(),
            );
            attempt::Plan::virtual_model(vm, &order, ctx.endpoint)
        }
    };
    if plan.targets.is_empty() || !plan.targets.iter().any(|t| t.route.serves(ctx.endpoint)) {
        return Err(ApiError::WrongEndpoint {
            model: parsed.model.clone(),
            endpoint: ctx.endpoint.as_str(),
        });
    }

    // 5. admit — rate limits, quotas, budgets (issue 6).

    // 6. input guardrails — detectors and webhooks over the request's text;
    //    block (400), mask in place, or audit. One masker per request keeps
    //    placeholders consistent between input and output.
    let guards = snap.guards.applicable(&parsed.model, &identity.principal);
    let mut masker = Masker::default();
    let mut body = parsed.body;
    if !guards.is_empty() {
        let _span = ctx
            .trace
            .as_ref()
            .map(|t| t.child("tollgate.guardrails.input"));
        guard::check_input(
            &guards,
            &parsed.model,
            &identity.principal,
            &mut body,
            &mut masker,
            &mut ctx.verdicts,
        )
        .await?;
    }

    // 7. cache lookup (issue 9).

    // 8. attempt the targets: retries, fallback, one overall deadline.
    let strip_usage = parsed.stream && !parsed.wants_usage;
    if parsed.stream {
        // Always ask for usage so streamed spend is exact; `strip_usage`
        // hides the extra chunk from a caller who did not ask for it.
        let opts = body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let served = attempt::run(ctx, &plan, body, headers, parsed.stream).await?;
    let route = served.route;
    let deadline = served.deadline;
    let upstream = served.response;
    ctx.route = Some(route.clone());
    ctx.stats = served.stats;

    // 9. output guardrails (whole responses here; streams in stream.rs)
    //    and 10. respond.
    let status = StatusCode::from_u16(upstream.status).unwrap_or(StatusCode::OK);
    match upstream.body {
        ProviderBody::Full(body_bytes) => {
            ctx.mark_first_token();
            ctx.usage = usage_of(&body_bytes, &route.provider_name, &bytes)?;
            let mut body_bytes = body_bytes;
            if !guards.is_empty() {
                let _span = ctx
                    .trace
                    .as_ref()
                    .map(|t| t.child("tollgate.guardrails.output"));
                if let Some(rewritten) = guard::check_output(
                    &guards,
                    &parsed.model,
                    &identity.principal,
                    &body_bytes,
                    &mut masker,
                    &mut ctx.verdicts,
                )
                .await?
                {
                    body_bytes = bytes::Bytes::from(rewritten);
                }
            }
            if let Some(p) = ctx.payload.as_mut() {
                p.response = Some(body_bytes.clone());
            }
            let mut resp = Response::new(Body::from(body_bytes));
            *resp.status_mut() = status;
            let h = resp.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(RESOLVED_MODEL, route.resolved.clone());
            Ok(Reply::Done(resp))
        }
        ProviderBody::Stream(upstream_stream) => {
            let owned = std::mem::replace(ctx, RequestCtx::new(ctx.endpoint, String::new()));
            let out = stream::observe(
                app.clone(),
                owned,
                bytes,
                upstream_stream,
                deadline,
                strip_usage,
                guard::StreamGuard::new(&guards),
            );
            let mut resp = Response::new(Body::from_stream(out));
            *resp.status_mut() = status;
            let h = resp.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            h.insert(RESOLVED_MODEL, route.resolved.clone());
            Ok(Reply::Streaming(resp))
        }
    }
}

#[derive(Deserialize)]
struct UsagePeek {
    #[serde(default)]
    usage: Option<stream::WireUsage>,
}

/// Usage from a full response body; counted here (and marked estimated)
/// when the upstream reported none.
fn usage_of(bytes: &[u8], provider: &str, request: &[u8]) -> Result<Usage, ApiError> {
    let peek: UsagePeek = serde_json::from_slice(bytes).map_err(|e| ProviderError::Protocol {
        provider: provider.to_string(),
        message: format!("response is not valid JSON: {e}"),
    })?;
    if let Some(u) = peek.usage {
        return Ok(Usage {
            prompt: u.prompt_tokens.unwrap_or(0),
            completion: u.completion_tokens.unwrap_or(0),
            estimated: false,
        });
    }
    let response: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    Ok(Usage {
        prompt: tokens::prompt_tokens_of(request),
        completion: tokens::completion_tokens(&response),
        estimated: true,
    })
}

/// `gen_ai.operation.name` of an endpoint.
fn operation_name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Chat => "chat",
        Endpoint::Completions => "text_completion",
        Endpoint::Embeddings => "embeddings",
    }
}

/// The id the edge middleware (`api::openai::request_id`) put on the request.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}
