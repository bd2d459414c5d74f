//! MCP messages through the same phases as model calls: authenticate (the
//! same keys and tokens, `phase::authenticate`), resolve the served server,
//! authorize (policy rules' `tools:` grants), read the message, check the
//! session, then the method (`methods.rs`: a tool call is authorized on its
//! own name, limited, guarded and forwarded), and the request's end from
//! the same guard (`Finish`: metrics, log line, ledger, audit, trace).
//! Answers leave typed (`answer.rs`): the server crate renders them as
//! JSON-RPC over HTTP and records their size (`Outcome::sent`).

mod answer;
mod listen;
mod methods;
mod relay;
mod reply;

pub use answer::{
    Answer, Listened, Outcome, Posted, Relayed, ResourceMetadata, RpcFailure, RpcResult,
};
pub use listen::handle_get;
pub use reply::resource_metadata;

use std::sync::Arc;

use http::HeaderMap;
use serde_json::Value;
use tollgate_config::Endpoint;
use tollgate_mcp::relay::Relay;
use tollgate_mcp::session::{owner_of, SessionState};
use tollgate_mcp::wire::{Incoming, Message};
use tollgate_mcp::{upstream::SESSION_HEADER, Served};

use super::finish::Finish;
use super::phase::{self, Authenticated};
use super::{RequestBody, RequestCtx};
use crate::error::GatewayError;
use crate::snapshot::Snapshot;
use crate::state::AppState;
use tollgate_policy::auth::policy::Access;

/// A failure, and whether it is answered inside JSON-RPC (HTTP 200 with an
/// error object: the method failed) or at the HTTP level (the message was
/// not accepted: 401, 403, 404, 400, 413).
struct Failure {
    err: GatewayError,
    in_band: bool,
}

impl From<GatewayError> for Failure {
    fn from(err: GatewayError) -> Self {
        Self {
            err,
            in_band: false,
        }
    }
}

/// What the phases after authentication share: the caller's access is
/// evaluated once here and read by every later decision.
struct Call<'a> {
    pins: &'a tollgate_mcp::pins::PinBook,
    approvals: &'a tollgate_mcp::approval::Approvals,
    reaper: &'a tollgate_mcp::reaper::Reaper,
    /// Named secrets, for a REST API server calling through a connection.
    secrets: &'a dyn tollgate_core::secret::SecretSource,
    snap: &'a Snapshot,
    served: &'a Served,
    who: &'a Authenticated,
    access: Access<'a>,
    headers: &'a HeaderMap,
    /// The way to the caller's answer stream, when it takes one: what
    /// upstreams say about this request (progress, log messages, their
    /// own requests) is relayed there.
    relay: Option<Relay>,
}

impl<'a> Call<'a> {
    fn new(
        app: &'a AppState,
        snap: &'a Snapshot,
        served: &'a Served,
        who: &'a Authenticated,
        headers: &'a HeaderMap,
    ) -> Self {
        let identity = &who.identity;
        Call {
            pins: &app.mcp_pins,
            approvals: &app.mcp_approvals,
            reaper: &app.mcp_reaper,
            secrets: &*app.secrets,
            snap,
            served,
            who,
            access: snap
                .policy
                .evaluate(&identity.principal, identity.key_grant()),
            headers,
            relay: None,
        }
    }

    /// The server itself: reachable only when a rule could grant one of
    /// its tools.
    fn authorize_server(&self) -> Result<(), GatewayError> {
        if self.access.reaches_server(&self.served.name) {
            Ok(())
        } else {
            Err(reply::server_forbidden(
                &self.served.name,
                &self.who.identity.principal,
            ))
        }
    }
}

/// `POST /mcp/{server}`: one JSON-RPC message. Answered whole, or, when
/// an upstream says something for the caller while the request runs (and
/// the caller takes `text/event-stream`), as an event stream: those
/// messages, then the answer (`relay.rs`).
pub async fn handle_post(
    app: Arc<AppState>,
    server: String,
    headers: HeaderMap,
    body: RequestBody,
) -> Posted {
    let (tx, mut to_client) = tollgate_mcp::relay::channel();
    let tx = listen::accepts_events(&headers).then_some(tx);
    let work = async move {
        let mut id = Value::Null;
        let (snap, mut fin, span) = start(&app, &headers, &server, "mcp");
        let work = run(&app, &snap, &mut fin, &server, &headers, body, &mut id, tx);
        let outcome = tracing::Instrument::instrument(work, span.clone()).await;
        settle(&snap, fin, span, &server, &headers, id, outcome)
    };
    let mut work = Box::pin(work);
    tokio::select! {
        outcome = &mut work => Posted::Whole(outcome),
        Some(first) = to_client.recv() => Posted::Events(relay::stream(first, to_client, work)),
    }
}

/// `DELETE /mcp/{server}`: the client ends its session; the upstream
/// sessions opened for it are closed.
pub async fn handle_delete(app: Arc<AppState>, server: String, headers: HeaderMap) -> Outcome {
    let (snap, mut fin, span) = start(&app, &headers, &server, "mcp/delete");
    let work = async {
        let (who, served) = admit(&app, &snap, &mut fin, &server, &headers).await?;
        Call::new(&app, &snap, &served, &who, &headers).authorize_server()?;
        let owner = owner(&who);
        let session = session(&snap, &served, &headers, &owner)?;
        for m in &served.members {
            if let Some(id) = session.upstream.get(&m.upstream.name) {
                m.upstream.close(id, &headers).await;
                app.mcp_reaper.forget(&m.upstream.name, id);
            }
        }
        Ok(Answer::Closed)
    };
    let outcome = tracing::Instrument::instrument(work, span.clone()).await;
    settle(&snap, fin, span, &server, &headers, Value::Null, outcome)
}

/// `GET /mcp`: the names of the served servers this caller may reach,
/// sorted (a listing, like `GET /v1/models`: authenticated, not recorded).
pub async fn list_servers(
    app: Arc<AppState>,
    headers: HeaderMap,
) -> Result<Vec<String>, RpcFailure> {
    let snap = app.snapshot.load_full();
    let store_keys = app.store_keys.load_full();
    let identity =
        match tollgate_policy::auth::authenticate(&headers, &snap.credentials(&store_keys)).await {
            Ok(i) => i,
            Err(e) => {
                let err = GatewayError::from(e);
                return Err(failure(&snap, &headers, "", Value::Null, err, false));
            }
        };
    let access = snap
        .policy
        .evaluate(&identity.principal, identity.key_grant());
    let mut names: Vec<String> = snap
        .mcp
        .served
        .keys()
        .filter(|s| access.reaches_server(s))
        .cloned()
        .collect();
    names.sort_unstable();
    Ok(names)
}

fn start(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    server: &str,
    operation: &'static str,
) -> (Arc<Snapshot>, Finish, tracing::Span) {
    let mut ctx = RequestCtx::new(Endpoint::Chat, super::request_id(headers));
    ctx.operation = Some(operation);
    ctx.requested_model = server.to_string();
    if app.audit.enabled() {
        ctx.audit_headers = tollgate_record::audit::AuditHeaders::copy(headers);
    }
    if let Some(t) = &app.tracing {
        ctx.trace = Some(t.start_request(headers, "mcp"));
    }
    let span = tracing::info_span!("mcp", request_id = %ctx.request_id, server = %server);
    (
        app.snapshot.load_full(),
        Finish::new(app.clone(), ctx),
        span,
    )
}

/// The typed answer, its record left to the edge (`Outcome::sent`, with
/// the size of what it sent); an accepted message is not recorded.
fn settle(
    snap: &Snapshot,
    mut fin: Finish,
    span: tracing::Span,
    server: &str,
    headers: &HeaderMap,
    id: Value,
    outcome: Result<Answer, Failure>,
) -> Outcome {
    let answer = match outcome {
        Ok(answer) => answer,
        Err(f) => Answer::Error(failure(snap, headers, server, id, f.err, f.in_band)),
    };
    if matches!(answer, Answer::Accepted) {
        fin.forget();
    }
    Outcome {
        answer,
        fin: fin.hand_over().map(Box::new),
        span,
    }
}

/// The error under `id`; a refused authentication points at the
/// protected-resource metadata of `server` (the gateway's when empty).
fn failure(
    snap: &Snapshot,
    headers: &HeaderMap,
    server: &str,
    id: Value,
    error: GatewayError,
    in_band: bool,
) -> RpcFailure {
    let resource_metadata =
        (error.status() == 401).then(|| reply::metadata_url(snap, headers, server));
    RpcFailure {
        id,
        error,
        in_band,
        resource_metadata,
    }
}

/// The phases every MCP request goes through before its message is read:
/// authenticate and resolve the server (authorizing it is
/// `Call::authorize_server`, on the access evaluated once).
async fn admit(
    app: &AppState,
    snap: &Snapshot,
    fin: &mut Finish,
    server: &str,
    headers: &HeaderMap,
) -> Result<(Authenticated, Arc<Served>), Failure> {
    let Some(ctx) = fin.ctx() else {
        return Err(GatewayError::internal().into());
    };
    let who = phase::authenticate::authenticate(app, snap, ctx, headers).await?;
    let served = snap
        .mcp
        .get(server)
        .cloned()
        .ok_or_else(|| reply::unknown_server(server))?;
    ctx.model_known = true;
    Ok((who, served))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    app: &Arc<AppState>,
    snap: &Snapshot,
    fin: &mut Finish,
    server: &str,
    headers: &HeaderMap,
    body: RequestBody,
    id: &mut Value,
    to_client: Option<tokio::sync::mpsc::Sender<String>>,
) -> Result<Answer, Failure> {
    // 1-3. authenticate, resolve the server, authorize the server
    let (who, served) = admit(app, snap, fin, server, headers).await?;
    let mut call = Call::new(app, snap, &served, &who, headers);
    call.authorize_server()?;
    let owner = owner(&who);
    call.relay = to_client.map(|tx| Relay::new(tx, app.mcp_asks.clone(), owner.clone()));
    // 4. read the message (bounded), classify it
    let limit = snap.mcp.max_message_bytes;
    let bytes = super::read_body(headers, body, limit).await?;
    if let Some(ctx) = fin.ctx() {
        ctx.request_bytes = bytes.len() as u64;
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        // JSON-RPC batches left MCP in the 2025-06-18 revision.
        return Err(reply::batch_refused().into());
    }
    let incoming: Incoming = serde_json::from_slice(&bytes).map_err(|e| reply::parse_error(&e))?;
    let (rid, method, params) = match incoming.classify() {
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(Message::Notification { method, params }) => {
            methods::notify(&call, &method, params).await;
            return Ok(Answer::Accepted);
        }
        Ok(Message::Response { id, answer }) => {
            // The answer to a server request relayed to this caller.
            if !app.mcp_asks.answer(&id, &owner, answer) {
                tracing::debug!(id = %id, "mcp client answer matches no waiting server request");
            }
            return Ok(Answer::Accepted);
        }
        Err((bad_id, e)) => {
            *id = bad_id;
            return Err(reply::invalid_message(e).into());
        }
    };
    *id = rid;
    let Some(ctx) = fin.ctx() else {
        return Err(GatewayError::internal().into());
    };
    ctx.operation = Some(methods::operation(&method));
    // 5. the session (initialize opens one; everything else but ping needs one)
    if method == "initialize" {
        let (result, session_id) = methods::initialize(&call, params).await?;
        return Ok(Answer::Result {
            id: id.clone(),
            result: RpcResult::Value(result),
            session: Some(session_id),
        });
    }
    if method == "server/discover" {
        // The stateless revision's probe: not served, so a modern client
        // falls back to `initialize`.
        return Err(Failure {
            err: reply::method_not_found(&method),
            in_band: true,
        });
    }
    let session = if method == "ping" {
        None
    } else {
        Some(session(snap, &served, headers, &owner)?)
    };
    // 6. the method: tool calls are authorized, limited and guarded there
    let result = methods::dispatch(&call, ctx, session.as_ref(), &method, params)
        .await
        .map_err(|err| Failure { err, in_band: true })?;
    Ok(Answer::Result {
        id: id.clone(),
        result,
        session: None,
    })
}

fn owner(who: &Authenticated) -> String {
    let p = &who.identity.principal;
    owner_of(p.issuer.as_deref(), &p.subject)
}

/// The caller's session: present, sealed by this gateway, for this server
/// and caller, not expired.
fn session(
    snap: &Snapshot,
    served: &Served,
    headers: &HeaderMap,
    owner: &str,
) -> Result<SessionState, GatewayError> {
    let id = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(reply::missing_session)?;
    let now = tollgate_core::clock::wall_ms();
    snap.mcp
        .sealer
        .open(id, &served.name, owner, now)
        .map_err(reply::bad_session)
}
