//! The request pipeline: one ordered list of phases over one `RequestCtx`.
//! The order is the contract (ARCHITECTURE.md draws it); later issues fill
//! the marked slots. Every decision uses in-memory state; the only I/O is the
//! upstream call, and recording happens after the response (`after.rs`).

mod admit;
mod after;
mod attempt;
mod context;
mod finish;
pub mod forward;
mod ingress;
pub mod jobs;
pub mod mcp;
mod phase;
mod prompt;
mod respond;
mod shape;

mod stream;
mod tokens;

pub use context::{Attempt, Forwarded, RequestCtx, Usage};
pub use ingress::{
    parse as parse_request, read_body, request_body, BodyError, BoxError, Parsed, RequestBody,
    ML_PAYLOAD_KEYS,
};
pub use shape::Ingress;
pub use tollgate_core::sse::{self, Event, SseSplitter, MAX_EVENT_BYTES};

use std::sync::Arc;

use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::error::GatewayError;
use crate::reply::{Failed, Reply};
use crate::snapshot::Snapshot;
use crate::state::AppState;
use finish::Finish;
use tollgate_config::Endpoint;
use tollgate_llm::providers::ProviderError;
use tollgate_policy::prompts::PromptCall;

pub const REQUEST_ID: &str = "x-request-id";
pub const RESOLVED_MODEL: &str = "x-tollgate-resolved-model";

/// What `run` produced: a finished answer, or a stream that settles the
/// request's accounting itself when it ends.
enum Outcome {
    Done(Reply),
    Streaming(Reply),
}

/// Entry point for every OpenAI-shaped model call (chat, completions, embeddings).
pub async fn handle(
    app: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: RequestBody,
) -> Result<Reply, Failed> {
    serve(app, Ingress::OpenAi(endpoint), None, headers, body).await
}

/// Entry point for a model call in any ingress shape (OpenAI, Anthropic
/// Messages, Responses, Databricks): one pipeline, translated at its edges
/// (`shape.rs`); the edge renders errors in the caller's shape.
pub async fn handle_shaped(
    app: Arc<AppState>,
    ingress: Ingress,
    headers: HeaderMap,
    body: RequestBody,
) -> Result<Reply, Failed> {
    serve(app, ingress, None, headers, body).await
}

/// Entry point for a prompt template call: rendered into a chat request in
/// phase 2, then the same pipeline as `handle`.
pub async fn handle_prompt(
    app: Arc<AppState>,
    call: PromptCall,
    headers: HeaderMap,
    body: RequestBody,
) -> Result<Reply, Failed> {
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
    body: RequestBody,
) -> Result<Reply, Failed> {
    let request_id = request_id(&headers);
    let endpoint = ingress.endpoint();
    let mut ctx = RequestCtx::new(endpoint, request_id);
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
    let mut fin = Finish::new(app.clone(), ctx);
    let work = run(&app, &snap, &mut fin, &headers, body, ingress, prompt);
    let outcome = tracing::Instrument::instrument(work, span.clone()).await;
    let _entered = span.enter();
    match outcome {
        // The stream's own guard took the context over (`Finish::hand_over`).
        Ok(Outcome::Streaming(reply)) => Ok(reply),
        Ok(Outcome::Done(reply)) => {
            fin.end(|_, _| {});
            Ok(reply)
        }
        Err(err) => {
            let mut resolved = None;
            fin.end(|_, ctx| {
                ctx.status = err.status();
                ctx.error = err.label();
                crate::error::log_denial(&err, &ctx.request_id);
                crate::error::log_detail(&err, &ctx.request_id);
                resolved = ctx.route.as_ref().map(|r| r.resolved.clone());
            });
            let mut headers = HeaderMap::new();
            if let Some(v) = resolved {
                headers.insert(RESOLVED_MODEL, v);
            }
            Err(Failed {
                error: err,
                headers,
            })
        }
    }
}

/// The phases in order (ARCHITECTURE.md draws them). Each is its own module
/// under `phase/`; a phase takes the earlier phases' results and returns its
/// own, so the order is the only thing this function says.
async fn run(
    app: &Arc<AppState>,
    snap: &Snapshot,
    fin: &mut Finish,
    headers: &HeaderMap,
    body: RequestBody,
    ingress: Ingress,
    prompt: Option<PromptCall>,
) -> Result<Outcome, GatewayError> {
    let Some(ctx) = fin.ctx() else {
        return Err(GatewayError::internal());
    };
    let mut shaper = shape::Shaper::new(ingress);
    // 1. authenticate (headers only, before the body is read)
    let who = phase::authenticate::authenticate(app, snap, ctx, headers).await?;
    // 2. ingress (templates rendered, other shapes translated to chat)
    let mut call =
        phase::ingress::ingress(app, snap, ctx, &who, (headers, body), prompt, &mut shaper).await?;
    // 3. resolve, 4. authorize (on the requested name), 4b. route
    let target = phase::resolve::resolve(snap, ctx, &call)?;
    phase::authorize::authorize(snap, &who, &call, &target)?;
    let routed = phase::route::route(ctx, headers, &call, target)?;
    // 4c. shape fit (`shape.rs`): extensions kept, removed or refused for
    //     the plan's upstreams; `count_tokens` is answered here.
    shaper.fit_targets(&routed.plan, &mut call.parsed.body)?;
    if shaper.count_only() {
        let n = tokens::prompt_tokens_of(&call.bytes);
        return Ok(Outcome::Done(Reply::json(
            &serde_json::json!({"input_tokens": n}),
        )));
    }
    // 5. admit (limits, quotas, budgets: reserve now, settle at the end)
    let admitted = phase::admit::admit(snap, ctx, &who, &call, &routed).await?;
    // 6. input guardrails
    let mut guarded = phase::guard_input::check(snap, ctx, &who, &mut call).await?;
    // 7. cache lookup (a hit is answered here)
    let parts = (&who, &call, &admitted);
    if let Some(hit) =
        phase::lookup::lookup(app, snap, ctx, headers, parts, &mut guarded, &shaper).await?
    {
        return Ok(hit);
    }
    // 8. attempt the targets
    let served = phase::attempt::attempt(ctx, &routed, &mut call, headers).await?;
    // 9. output guardrails, 10. respond (a stream takes the request's end over)
    let principal = &who.identity.principal;
    phase::respond::respond(app, fin, call, served, guarded, admitted, shaper, principal).await
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
