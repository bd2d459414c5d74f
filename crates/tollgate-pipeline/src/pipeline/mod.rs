//! The request pipeline: one ordered list of phases over one `RequestCtx`.
//! The order is the contract (ARCHITECTURE.md draws it); later issues fill
//! the marked slots. Every decision uses in-memory state; the only I/O is the
//! upstream call, and recording happens after the response (`after.rs`).

mod admit;
mod after;
mod attempt;
mod context;
mod finish;
mod ingress;
mod prompt;
mod respond;
mod shape;

mod stream;
mod tokens;

pub use context::{Attempt, RequestCtx, Usage};
pub use ingress::{parse as parse_request, read_body, Parsed, ML_PAYLOAD_KEYS};
pub use shape::Ingress;
pub use tollgate_core::sse::{self, Event, SseSplitter, MAX_EVENT_BYTES};

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{GatewayError, Render};
use crate::snapshot::{Resolved, Snapshot};
use crate::state::AppState;
use finish::Finish;
use tollgate_config::Endpoint;
use tollgate_guardrails::Masker;
use tollgate_llm::providers::{ProviderBody, ProviderError};
use tollgate_policy::auth;
use tollgate_policy::cache::{self, CacheStatus, Decision};
use tollgate_policy::guard;
use tollgate_policy::prompts::PromptCall;
use tollgate_policy::routing;

pub const REQUEST_ID: &str = "x-request-id";
pub const RESOLVED_MODEL: &str = "x-tollgate-resolved-model";

/// What `run` produced: a finished response, or a stream that settles the
/// request's accounting itself when it ends.
enum Reply {
    Done(Response),
    Streaming(Response),
}

/// Entry point for every OpenAI-shaped model call (chat, completions, embeddings).
pub async fn handle(
    app: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, Ingress::OpenAi(endpoint), None, headers, body).await
}

/// Entry point for a model call in any ingress shape (OpenAI, Anthropic
/// Messages, Responses, Databricks): one pipeline, translated at its edges
/// (`shape.rs`); errors rendered in the caller's shape.
pub async fn handle_shaped(
    app: Arc<AppState>,
    ingress: Ingress,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, ingress, None, headers, body).await
}

/// Entry point for a prompt template call: rendered into a chat request in
/// phase 2, then the same pipeline as `handle`.
pub async fn handle_prompt(
    app: Arc<AppState>,
    call: PromptCall,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(
        app,
        Ingress::OpenAi(Endpoint::Chat),
        Some(call),
        headers,
        body,
    )
    .await
}

async fn serve(
    app: Arc<AppState>,
    ingress: Ingress,
    prompt: Option<PromptCall>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = request_id(&headers);
    let endpoint = ingress.endpoint();
    let mut ctx = RequestCtx::new(endpoint, request_id);
    ctx.shape = ingress.shape();
    if app.audit.enabled() {
        ctx.audit_headers = tollgate_record::audit::AuditHeaders::copy(&headers);
    }
    if let Some(t) = &app.tracing {
        ctx.trace = Some(t.start_request(&headers, operation_name(endpoint)));
    }
    let snap = app.snapshot.load_full();
    // Every log line inside carries the request id (JSON logs: `span`).
    let span = tracing::info_span!("request", request_id = %ctx.request_id);
    // From here on the request's end runs exactly once, from the guard:
    // below for answers and errors, in the stream for streams, on drop if
    // the caller goes away or a panic unwinds.
    let shape = ctx.shape;
    let mut fin = Finish::new(app.clone(), ctx);
    let work = run(&app, &snap, &mut fin, &headers, body, ingress, prompt);
    let outcome = tracing::Instrument::instrument(work, span.clone()).await;
    let _entered = span.enter();
    match outcome {
        // The stream's own guard took the context over (`Finish::hand_over`).
        Ok(Reply::Streaming(resp)) => resp,
        Ok(Reply::Done(resp)) => {
            fin.end(|_, _| {});
            resp
        }
        Err(err) => {
            let mut resolved = None;
            fin.end(|_, ctx| {
                ctx.status = err.status();
                ctx.error = err.label();
                crate::error::log_denial(&err, &ctx.request_id);
                resolved = ctx.route.as_ref().map(|r| r.resolved.clone());
            });
            let mut resp = err.into_response_shaped(shape);
            if let Some(v) = resolved {
                resp.headers_mut().insert(RESOLVED_MODEL, v);
            }
            resp
        }
    }
}

async fn run(
    app: &Arc<AppState>,
    snap: &Snapshot,
    fin: &mut Finish,
    headers: &HeaderMap,
    body: Body,
    ingress: Ingress,
    prompt: Option<PromptCall>,
) -> Result<Reply, GatewayError> {
    let Some(ctx) = fin.ctx() else {
        return Err(GatewayError::internal());
    };
    let mut shaper = shape::Shaper::new(ingress);
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
    //    A prompt template call is authorized like a model (`prompt:NAME`)
    //    and rendered into a chat body, which then goes through every phase.
    let bytes = match prompt {
        Some(call) => {
            let (rendered, template) = prompt::expand_call(snap, &identity, &call, &bytes)?;
            ctx.template = Some(template);
            rendered
        }
        None => bytes,
    };
    //    Other shapes (Anthropic Messages, Responses) are translated to an
    //    OpenAI chat body here (`shape.rs`), so every later phase sees one shape.
    let bytes = shaper.chat_body(bytes)?;
    let parsed = ingress::parse(ctx.endpoint, &bytes)?;
    ctx.requested_model.clone_from(&parsed.model);
    ctx.stream = parsed.stream;
    if app.audit.wants_payload(&parsed.model) {
        ctx.payload = Some(tollgate_record::audit::Payload {
            request: bytes.clone(),
            response: None,
        });
    }

    // 3. resolve — model name → a plain model or a virtual model.
    let resolved = snap
        .resolve(&parsed.model)
        .ok_or_else(|| crate::error::model_not_found(&parsed.model))?;

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
        return Err(crate::error::forbidden(
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
        return Err(crate::error::wrong_endpoint(
            &parsed.model,
            ctx.endpoint.as_str(),
        ));
    }

    // 4c. shape fit — Anthropic-only extensions stay only if every target
    //     speaks Anthropic (else removed or refused, naming the field);
    //     `count_tokens` is answered here, without an upstream call.
    let mut body = parsed.body;
    shaper.fit_targets(&plan, &mut body)?;
    if shaper.count_only() {
        let n = tokens::prompt_tokens_of(&bytes);
        return Ok(Reply::Done(
            axum::Json(serde_json::json!({"input_tokens": n})).into_response(),
        ));
    }

    // 5. admit — rate limits, quotas, budgets: reserve the estimate on every
    //    counter the request charges (settled in after::finish / stream.rs).
    let mut limit_headers = tollgate_policy::limits::RateHeaders::default();
    if !snap.limits.is_empty() {
        let counters = snap.limits.counters(&identity.principal, &parsed.model);
        let demand = admit::demand(&snap.limits, ctx.endpoint, &body, &plan, &counters);
        match snap.limits.admit_counters(counters, demand).await {
            Ok(adm) => {
                limit_headers = adm.headers();
                ctx.admission = (!adm.is_empty()).then_some(adm);
            }
            Err(e) => {
                ctx.limit_decisions = e.ledger_json();
                return Err(e.into());
            }
        }
    }

    // 6. input guardrails — detectors and webhooks over the request's text;
    //    block (400), mask in place, or audit. One masker per request keeps
    //    placeholders consistent between input and output.
    let guards = snap.guards.applicable(&parsed.model, &identity.principal);
    let mut masker = Masker::default();
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

    // 7. cache lookup — exact match on the canonical request in the
    //    caller's scope (cache/); a hit is answered here, after phases 1–6.
    //    Callers in a translated shape (Anthropic, Responses) skip it: the
    //    cache holds OpenAI answers only (docs/cache.md).
    let rule = snap
        .cache_rules
        .get(&parsed.model)
        .filter(|_| !shaper.translated());
    let decision = app.cache.decide(
        rule,
        headers,
        &identity.principal,
        ctx.endpoint,
        &parsed.model,
        &body,
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
                    &guards,
                    &parsed.model,
                    &identity.principal,
                    entry.body.clone(),
                    &mut masker,
                    &mut ctx.verdicts,
                )
                .await?;
                let (stream, usage) = (parsed.stream, parsed.wants_usage);
                let resp = respond::cached(
                    ctx,
                    &parsed.model,
                    &entry.meta,
                    out,
                    stream,
                    usage,
                    &limit_headers,
                )?;
                if snap.limits.cache_hits == tollgate_config::CacheHits::Usage {
                    let m = &entry.meta;
                    ctx.cache.charged = Some((m.prompt_tokens, m.completion_tokens, m.cost));
                }
                return Ok(Reply::Done(resp));
            }
            None => {
                ctx.cache.status = Some(CacheStatus::Miss);
                ctx.cache.pending = Some((key, ttl));
                cache::count(&parsed.model, CacheStatus::Miss, "", 0.0);
            }
        },
    }

    // 8. attempt the targets: retries, fallback, one overall deadline.
    let strip_usage = parsed.stream && !parsed.wants_usage && !shaper.translated();
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
            let body_bytes = {
                let _span = ctx
                    .trace
                    .as_ref()
                    .filter(|_| !guards.is_empty())
                    .map(|t| t.child("tollgate.guardrails.output"));
                respond::guard_output(
                    &guards,
                    &parsed.model,
                    &identity.principal,
                    body_bytes,
                    &mut masker,
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
            let body_bytes = shaper.full(body_bytes, &route.provider_name)?;
            let body = Body::from(body_bytes);
            let resolved = route.resolved.clone();
            let resp = respond::response(
                status,
                body,
                false,
                resolved,
                ctx.cache.status,
                &limit_headers,
            );
            Ok(Reply::Done(resp))
        }
        ProviderBody::Stream(upstream_stream) => {
            if ctx.cache.pending.is_some() {
                ctx.cache.fill = Some(cache::StreamFill::new(ctx.endpoint));
            }
            let cache_status = ctx.cache.status;
            // The stream owns the request's end from here.
            let Some(owned) = fin.hand_over() else {
                return Err(GatewayError::internal());
            };
            let out = stream::observe(
                owned,
                bytes,
                upstream_stream,
                deadline,
                strip_usage,
                guard::StreamGuard::new(&guards),
            );
            let body = Body::from_stream(shaper.stream(out));
            let resp = respond::response(
                status,
                body,
                true,
                route.resolved.clone(),
                cache_status,
                &limit_headers,
            );
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
fn usage_of(bytes: &[u8], provider: &str, request: &[u8]) -> Result<Usage, GatewayError> {
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
        Endpoint::Invocations => "invocations",
    }
}

/// The id the edge middleware (`api::openai::request_id`) put on the request.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}
