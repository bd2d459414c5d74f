//! Forwarded HTTP calls: identity-aware routes (a data-plane path prefix →
//! an upstream, e.g. an ML serving endpoint) and outbound connections
//! (`/connections/{name}/…` → an external API with a credential only the
//! gateway holds). Both go through the same phases as a model call, in
//! this order:
//!
//! ```text
//! authenticate → resolve (route / connection) → authorize (policy rules'
//! `routes:` / `connections:`) → method and path allow-lists → read the body
//! (max_request_bytes) and count its rows (payload.rs, max_rows) → admit
//! (limits' `match.routes` / `match.connections`, rows as the token unit)
//! → input guardrails (JSON bodies) → credential (a named secret revealed
//! only now) → forward → response: streamed (body.rs), or held whole
//! (bounded) for an output guardrail or the audit log → end (Finish)
//! ```
//!
//! Payloads pass through unchanged unless a guardrail masks them; the
//! upstream's status, headers (but hop-by-hop) and body reach the caller,
//! scrubbed of the credential the call carried. The gateway's own
//! refusals are typed errors (`reply.rs`) the edge renders as plain JSON.

mod body;
mod credential;
mod payload;
mod reply;
mod upstream;
mod via;

pub(crate) use credential::Credential;
pub use upstream::{http_client, Kind, Table, Upstream};
pub use via::Via;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue};
use tollgate_config::{Endpoint, PayloadKind};
use tollgate_guardrails::Masker;
use tollgate_llm::providers::{ProviderError, Secrets};
use tollgate_policy::auth::Principal;
use tollgate_policy::guard::{self, GuardPolicy};
use tollgate_policy::limits::{Demand, CONNECTION_TARGET, ROUTE_TARGET};

use super::context::Forwarded;
use super::finish::Finish;
use super::phase;
use super::{RequestBody, RequestCtx};
use crate::error::GatewayError;
use crate::reply::{Body as ReplyBody, Failed, Reply};
use crate::snapshot::Snapshot;
use crate::state::AppState;

/// A data-plane request whose path no gateway route serves: forwarded
/// when a configured route's prefix covers it, else handed back (`Err`).
pub async fn route(
    app: Arc<AppState>,
    req: http::Request<RequestBody>,
) -> Result<Result<Reply, Failed>, http::Request<RequestBody>> {
    let snap = app.snapshot.load_full();
    let Some(up) = snap.forward.route_for(req.uri().path()).cloned() else {
        return Err(req);
    };
    let name = up.name.clone();
    Ok(serve(app, snap, Kind::Route, name, Some(up), req).await)
}

/// `ANY /connections/{name}/{path}`.
pub async fn connection(
    app: Arc<AppState>,
    name: String,
    req: http::Request<RequestBody>,
) -> Result<Reply, Failed> {
    let snap = app.snapshot.load_full();
    let up = snap.forward.connection(&name).cloned();
    let name = match up {
        Some(_) => name,
        // An unknown name is not echoed into labels: the ledger keeps it,
        // bounded, metrics say `unknown`.
        None => name.chars().take(64).collect(),
    };
    serve(app, snap, Kind::Connection, name, up, req).await
}

async fn serve(
    app: Arc<AppState>,
    snap: Arc<Snapshot>,
    kind: Kind,
    name: String,
    up: Option<Arc<Upstream>>,
    req: http::Request<RequestBody>,
) -> Result<Reply, Failed> {
    let (parts, body) = req.into_parts();
    let mut ctx = RequestCtx::new(Endpoint::Chat, super::request_id(&parts.headers));
    ctx.operation = Some(kind.operation());
    ctx.model_known = up.is_some();
    ctx.requested_model = name;
    ctx.forwarded = Some(Forwarded::default());
    if app.audit.enabled() {
        ctx.audit_headers = tollgate_record::audit::AuditHeaders::copy(&parts.headers);
    }
    if let Some(t) = &app.tracing {
        ctx.trace = Some(t.start_request(&parts.headers, kind.operation()));
    }
    let span = tracing::info_span!("forward", request_id = %ctx.request_id,
        kind = kind.operation(), target = %ctx.requested_model);
    let mut fin = Finish::new(app.clone(), ctx);
    let work = run(&app, &snap, kind, up, &parts, body, &mut fin);
    let outcome = tracing::Instrument::instrument(work, span.clone()).await;
    let _entered = span.enter();
    outcome.map_err(|err| {
        fin.fail(&err);
        Failed::from(err)
    })
}

async fn run(
    app: &AppState,
    snap: &Snapshot,
    kind: Kind,
    up: Option<Arc<Upstream>>,
    parts: &http::request::Parts,
    body: RequestBody,
    fin: &mut Finish,
) -> Result<Reply, GatewayError> {
    let ctx = fin.ctx().ok_or_else(GatewayError::internal)?;
    // 1. authenticate (headers only)
    let who = phase::authenticate::authenticate(app, snap, ctx, &parts.headers).await?;
    // 2. resolve
    let up = up.ok_or_else(|| reply::unknown(kind, &ctx.requested_model))?;
    // 3. authorize: deny by default, granted by policy rules only
    let principal = &who.identity.principal;
    let access = snap.policy.evaluate(principal, who.identity.key_grant());
    let granted = match kind {
        Kind::Route => access.decide_route(&up.name, parts.method.as_str()),
        Kind::Connection => access.decide_connection(&up.name, parts.method.as_str()),
    };
    if granted.is_err() {
        return Err(reply::forbidden(
            kind,
            &up.name,
            parts.method.as_str(),
            principal,
        ));
    }
    if !up.allows_method(&parts.method) {
        return Err(reply::method_refused(kind, &up.name, parts.method.as_str()));
    }
    let path = up
        .upstream_path(parts.uri.path())
        .ok_or_else(|| reply::path_refused(kind, &up.name))?;
    ctx.served_by = Some((up.name.clone(), path.clone()));
    // 4. the body (bounded) and its rows
    let bytes = super::read_body(&parts.headers, body, up.max_request_bytes).await?;
    let rows = match (kind, up.payload) {
        (Kind::Route, PayloadKind::Auto) => payload::rows(&bytes),
        _ => 0,
    };
    if let Some(f) = ctx.forwarded.as_mut() {
        f.rows = rows;
        f.request_bytes = bytes.len() as u64;
    }
    if let Some(max) = up.max_rows.filter(|m| rows > *m) {
        return Err(reply::too_many_rows(&up.name, rows, max));
    }
    if up.audit_payloads && app.audit.enabled() {
        ctx.payload = Some(tollgate_record::audit::Payload {
            request: bytes.clone(),
            response: None,
        });
    }
    // 5. limits: rows are the token-like unit
    admit(snap, ctx, principal, kind, &up.name, rows).await?;
    // 6. input guardrails over the JSON body's strings
    let guards = snap
        .guards
        .applicable_to(kind.target_kind(), &up.name, principal);
    let mut masker = Masker::default();
    let bytes = guard_json(
        &guards,
        "input",
        &up.name,
        principal,
        bytes,
        &mut masker,
        ctx,
    )
    .await?;
    // 7. the credential (a named secret is revealed here, after the grant)
    let mut headers = up.request_headers(&parts.headers);
    if let Some((n, v)) = up
        .credential
        .header(&up.name, &*app.secrets, &parts.headers)
        .await?
    {
        headers.insert(n, v);
    }
    let secrets = Secrets::of(&headers);
    let url = up.target(&path, parts.uri.query()).ok_or_else(|| {
        GatewayError::invalid("the forwarded path does not make a valid URL", None)
    })?;
    let deadline = tokio::time::Instant::now() + up.timeouts.total;
    let span = ctx.trace.as_ref().map(|t| t.child("tollgate.forward"));
    let send = up
        .client
        .request(parts.method.clone(), url)
        .map_err(GatewayError::from)?
        .headers(headers)
        .body(bytes)
        .send();
    let first_byte = deadline.min(tokio::time::Instant::now() + up.timeouts.first_byte);
    let resp = match tokio::time::timeout_at(first_byte, send).await {
        Err(_) => {
            return Err(GatewayError::from(ProviderError::Timeout {
                provider: up.name.clone(),
                stage: "first byte",
            }))
        }
        Ok(Err(e)) => {
            if let Some(s) = span {
                s.fail("upstream_connect", None);
            }
            let detail = secrets.scrub(tollgate_llm::providers::error_chain(&e));
            return Err(GatewayError::from(ProviderError::Connect {
                provider: up.name.clone(),
                message: detail,
            }));
        }
        Ok(Ok(r)) => r,
    };
    drop(span);
    // 8. the answer
    let status = resp.status();
    ctx.status = status.as_u16();
    ctx.error = if status.as_u16() >= 400 {
        "upstream_status"
    } else {
        ""
    };
    let scrub = up.scrubbers.scrubber(secrets.needles(), up.reuse_scrubber);
    let mut out_headers = response_headers(resp.headers(), scrub.as_ref());
    // The rate-limit state, as on a model call's answer, when a limit
    // applied (the gateway's own headers win over an upstream's).
    if let Some(adm) = &ctx.admission {
        adm.headers().apply(&mut out_headers);
    }
    let output_guards = guards.iter().any(|g| g.direction.covers_output());
    let json = is_json(resp.headers());
    // A small answer of known length is read whole and sent with its
    // length: a chunked relay of it costs the caller an extra write and
    // wake-up for the end chunk, for nothing (memory stays bounded by
    // SMALL_ANSWER).
    let small = resp.content_length().is_some_and(|n| n <= SMALL_ANSWER);
    if small || (json && (output_guards || ctx.payload.is_some())) {
        let limit = up.max_buffered_response_bytes.max(SMALL_ANSWER as usize);
        let whole = read_whole(resp, limit, deadline, &up.name).await?;
        let whole = match &scrub {
            Some(s) => Bytes::from(s.all(&whole)),
            None => whole,
        };
        if let Some(f) = ctx.forwarded.as_mut() {
            f.response_bytes = whole.len() as u64;
        }
        let whole = match output_guards && json {
            true => {
                guard_json(
                    &guards,
                    "output",
                    &up.name,
                    principal,
                    whole,
                    &mut masker,
                    ctx,
                )
                .await?
            }
            false => whole,
        };
        if let (Some(p), true) = (ctx.payload.as_mut(), json) {
            p.response = Some(whole.clone());
        }
        fin.end(|_, _| {});
        return Ok(Reply::full(status, out_headers, whole));
    }
    // Streamed: the body owns the request's end from here.
    let Some(handed) = fin.hand_over() else {
        return Err(GatewayError::internal());
    };
    let relay = body::Relay::new(
        Box::pin(resp.bytes_stream()),
        scrub,
        handed,
        deadline,
        status.as_u16(),
    );
    Ok(Reply {
        status,
        headers: out_headers,
        body: ReplyBody::Relay(relay.boxed()),
    })
}

/// Answers up to this size with a known length are sent whole, not relayed
/// chunk by chunk.
const SMALL_ANSWER: u64 = 64 * 1024;

/// The upstream's response headers, without hop-by-hop ones, each value
/// scrubbed of the call's credential.
fn response_headers(upstream: &HeaderMap, scrub: Option<&body::Scrubber>) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if upstream::hop_by_hop(name) {
            continue;
        }
        let value = match scrub {
            Some(s) => {
                let clean = s.all(value.as_bytes());
                if clean == value.as_bytes() {
                    value.clone()
                } else {
                    HeaderValue::from_bytes(&clean)
                        .unwrap_or_else(|_| HeaderValue::from_static("[redacted]"))
                }
            }
            None => value.clone(),
        };
        out.append(name.clone(), value);
    }
    out
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case("application/json") || t.ends_with("+json")
        })
}

/// A JSON answer read whole, for an output guardrail or the audit log: at
/// most `limit` bytes, within the deadline.
pub(super) async fn read_whole(
    mut resp: reqwest::Response,
    limit: usize,
    deadline: tokio::time::Instant,
    name: &str,
) -> Result<Bytes, GatewayError> {
    let too_large = || {
        GatewayError::from(ProviderError::TooLarge {
            provider: name.to_string(),
            limit,
        })
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .map_err(|_| {
                GatewayError::from(ProviderError::Timeout {
                    provider: name.to_string(),
                    stage: "total",
                })
            })?
            .map_err(|e| {
                GatewayError::from(ProviderError::StreamInterrupted {
                    provider: name.to_string(),
                    message: e.to_string(),
                })
            })?;
        let Some(chunk) = chunk else {
            return Ok(buf.freeze());
        };
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
}

/// Guardrails over a JSON body's string values: masked strings are written
/// back (the body re-encoded), a block refuses the call. A body that is
/// not JSON is not scanned.
async fn guard_json(
    guards: &[Arc<GuardPolicy>],
    direction: &'static str,
    name: &str,
    principal: &Principal,
    bytes: Bytes,
    masker: &mut Masker,
    ctx: &mut RequestCtx,
) -> Result<Bytes, GatewayError> {
    let input = direction == "input";
    let active = guards.iter().any(|g| match input {
        true => g.direction.covers_input(),
        false => g.direction.covers_output(),
    });
    if !active {
        return Ok(bytes);
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(bytes);
    };
    let before = value.clone();
    guard::check_tool(
        guards,
        direction,
        name,
        principal,
        &mut value,
        masker,
        &mut ctx.verdicts,
    )
    .await?;
    if value == before {
        return Ok(bytes);
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|_| GatewayError::internal())
}

/// Limits: the rules with `match.routes` (or `match.connections`) that
/// apply; one request and `rows` tokens reserved on each counter, all or
/// nothing, settled to the rows when the call ends.
async fn admit(
    snap: &Snapshot,
    ctx: &mut RequestCtx,
    principal: &Principal,
    kind: Kind,
    name: &str,
    rows: u64,
) -> Result<(), GatewayError> {
    if snap.limits.is_empty() {
        return Ok(());
    }
    let prefix = match kind {
        Kind::Route => ROUTE_TARGET,
        Kind::Connection => CONNECTION_TARGET,
    };
    let demand = Demand {
        prompt: i64::try_from(rows).unwrap_or(i64::MAX),
        completion: 0,
        price: Default::default(),
    };
    let target = format!("{prefix}{name}");
    super::admit::reserve(&snap.limits, ctx, principal, &target, demand).await
}
