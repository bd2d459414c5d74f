//! The MCP methods a served server answers. `initialize` opens one upstream
//! session per member; lists are gathered from every member (all pages),
//! renamed and filtered to what the caller may call; a tool call is
//! authorized on the name the caller sent, resolved to its member by the
//! catalog's mapping and forwarded under its upstream name.

use futures_util::future::join_all;
use serde_json::{json, Value};
use tollgate_guardrails::Masker;
use tollgate_mcp::approval::{Decision, PendingCall};
use tollgate_mcp::session::SessionState;
use tollgate_mcp::wire::{
    CallToolParams, GetPromptParams, InitializeParams, Page, Prompt, PROTOCOL_VERSIONS,
};
use tollgate_mcp::{Member, UpstreamError};
use tollgate_policy::guard;
use tollgate_policy::limits::{Demand, TOOL_TARGET};

use super::{owner, reply, Call, RpcResult};
use crate::error::GatewayError;
use crate::pipeline::RequestCtx;

/// Most pages read from one upstream for one list.
const MAX_PAGES: usize = 64;

/// The ledger's and metrics' `endpoint` of a method (bounded: other
/// methods share one label).
pub(super) fn operation(method: &str) -> &'static str {
    match method {
        "initialize" => "mcp/initialize",
        "ping" => "mcp/ping",
        "tools/list" => "mcp/tools/list",
        "tools/call" => "mcp/tools/call",
        "prompts/list" => "mcp/prompts/list",
        "prompts/get" => "mcp/prompts/get",
        "resources/list" => "mcp/resources/list",
        "resources/templates/list" => "mcp/resources/templates/list",
        "resources/read" => "mcp/resources/read",
        _ => "mcp/other",
    }
}

/// Opens the session: one upstream session per member (a member whose
/// server cannot be reached is left out of the session and logged), the
/// agreed protocol revision, sealed into the session id.
pub(super) async fn initialize(
    call: &Call<'_>,
    params: Option<Value>,
) -> Result<(Value, String), GatewayError> {
    let asked = params
        .map(serde_json::from_value::<InitializeParams>)
        .transpose()
        .map_err(|e| reply::invalid_params(format!("initialize: {e}")))?
        .and_then(|p| p.protocol_version);
    let protocol = asked
        .filter(|v| PROTOCOL_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| PROTOCOL_VERSIONS[0].to_string());
    let opened = join_all(
        call.served
            .members
            .iter()
            .map(|m| async move { (m, m.upstream.open(call.headers).await) }),
    )
    .await;
    let mut upstream = std::collections::BTreeMap::new();
    let mut failures = 0;
    for (m, r) in opened {
        match r {
            Ok(Some(id)) => {
                upstream.insert(m.upstream.name.clone(), id);
            }
            Ok(None) => {}
            Err(e) => {
                failures += 1;
                tracing::warn!(server = %m.upstream.name, error = %e, detail = ?e,
                    "mcp upstream session could not be opened");
            }
        }
    }
    if failures > 0 && failures == call.served.members.len() {
        return Err(GatewayError::from(UpstreamError::Down {
            server: call.served.name.clone(),
        }));
    }
    let mcp = &call.snap.mcp;
    let state = SessionState {
        server: call.served.name.clone(),
        owner: owner(call.who),
        protocol: protocol.clone(),
        expires_ms: tollgate_core::clock::wall_ms().saturating_add(mcp.session_ttl_ms),
        upstream,
    };
    let id = mcp
        .sealer
        .seal(&state)
        .map_err(|_| GatewayError::internal())?;
    for m in &call.served.members {
        if let Some(sid) = state.upstream.get(&m.upstream.name) {
            call.reaper.track(&m.upstream, sid, state.expires_ms);
        }
    }
    let result = json!({
        "protocolVersion": protocol,
        "capabilities": {
            "tools": {"listChanged": true},
            "prompts": {"listChanged": true},
            "resources": {"listChanged": true},
        },
        "serverInfo": {"name": call.served.name, "version": env!("CARGO_PKG_VERSION")},
    });
    Ok((result, id))
}

/// A client notification: `notifications/initialized` is the gateway's
/// own; a cancellation goes to every member (it names a request the member
/// may be running); others are dropped.
pub(super) async fn notify(call: &Call<'_>, method: &str, params: Option<Value>) {
    if method != "notifications/cancelled" {
        return;
    }
    let owner = owner(call.who);
    let Ok(session) = super::session(call.snap, call.served, call.headers, &owner) else {
        return;
    };
    for m in &call.served.members {
        let sid = session.upstream.get(&m.upstream.name).map(String::as_str);
        let _ = m
            .upstream
            .notify(sid, method, params.as_ref(), call.headers)
            .await;
    }
}

/// Every method but `initialize`.
pub(super) async fn dispatch(
    call: &Call<'_>,
    ctx: &mut RequestCtx,
    session: Option<&SessionState>,
    method: &str,
    params: Option<Value>,
) -> Result<RpcResult, GatewayError> {
    let session = match session {
        Some(s) => s,
        None => return Ok(RpcResult::Value(json!({}))), // ping
    };
    if method == "tools/list" {
        return tools_list(call, session).await.map(RpcResult::Text);
    }
    other(call, ctx, session, method, params)
        .await
        .map(RpcResult::Value)
}

/// Every method but `initialize`, `ping` and `tools/list`.
async fn other(
    call: &Call<'_>,
    ctx: &mut RequestCtx,
    session: &SessionState,
    method: &str,
    params: Option<Value>,
) -> Result<Value, GatewayError> {
    match method {
        "tools/call" => tools_call(call, ctx, session, params).await,
        "prompts/list" => {
            let mut items = Vec::new();
            for (m, list) in gather(call, session, "prompts/list", "prompts").await? {
                for v in list {
                    if let Some(mut p) = Prompt::from_json(v) {
                        p.name = m.served_name(&p.name);
                        items.push(Value::from(p));
                    }
                }
            }
            Ok(json!({ "prompts": items }))
        }
        "prompts/get" => {
            let mut p: GetPromptParams = parse(params)?;
            let (m, local) = call
                .served
                .resolve_prompt(&p.name)
                .ok_or_else(|| reply::invalid_params(format!("unknown prompt `{}`", p.name)))?;
            p.name = local.to_string();
            let params = serde_json::to_value(p).map_err(|_| GatewayError::internal())?;
            forward(call, session, m, method, Some(&params)).await
        }
        "resources/list" | "resources/templates/list" => {
            let key = if method == "resources/list" {
                "resources"
            } else {
                "resourceTemplates"
            };
            let items: Vec<Value> = gather(call, session, method, key)
                .await?
                .into_iter()
                .flat_map(|(_, list)| list)
                .collect();
            Ok(json!({ key: items }))
        }
        "logging/setLevel" => {
            for m in &call.served.members {
                let _ = forward(call, session, m, method, params.as_ref()).await;
            }
            Ok(json!({}))
        }
        // Members in order until one answers (a resource's URI names no
        // member); with one member, anything else it may know.
        _ if method == "resources/read" || call.served.members.len() == 1 => {
            let mut last = None;
            for m in &call.served.members {
                match forward(call, session, m, method, params.as_ref()).await {
                    Ok(v) => return Ok(v),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| reply::method_not_found(method)))
        }
        _ => Err(reply::method_not_found(method)),
    }
}

/// The tools of every member, as served, that the caller may call: the
/// result's JSON text (`{"tools":[…]}`), written from each member's
/// prepared tools (`tollgate_mcp::listing`), so only the caller's access is
/// decided per tool here.
async fn tools_list(call: &Call<'_>, session: &SessionState) -> Result<String, GatewayError> {
    let mut out = String::from(r#"{"tools":["#);
    let mut first = true;
    for (m, items) in gather(call, session, "tools/list", "tools").await? {
        let listed = m.listed_tools(&call.served.name, items, call.pins);
        for t in &listed.tools {
            if call.access.decide_tool(&t.served_tool).is_ok() {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&t.json);
            }
        }
    }
    out.push_str("]}");
    Ok(out)
}

/// One tool call: authorized on the served name, resolved to its member,
/// forwarded under the upstream name.
async fn tools_call(
    call: &Call<'_>,
    ctx: &mut RequestCtx,
    session: &SessionState,
    params: Option<Value>,
) -> Result<Value, GatewayError> {
    let mut p: CallToolParams = parse(params)?;
    let server = &call.served.name;
    ctx.requested_model = format!("{server}/{}", p.name);
    let identity = &call.who.identity;
    call.access
        .decide_tool(&ctx.requested_model)
        .map_err(|_| reply::tool_forbidden(server, &p.name, &identity.principal))?;
    let (member, upstream_name) = call
        .served
        .resolve_tool(&p.name)
        .ok_or_else(|| reply::invalid_params(format!("unknown tool `{}`", p.name)))?;
    ctx.model_known = true;
    ctx.served_by = Some((member.upstream.name.clone(), upstream_name.clone()));
    if member.upstream.config().pin_tools
        && call.pins.is_changed(&member.upstream.name, &upstream_name)
    {
        return Err(reply::tool_changed(server, &p.name));
    }
    admit(call, ctx).await?;
    // Guardrails before the call (a blocked call never executes) and on
    // its result, with one masker so placeholders stay consistent.
    let principal = &identity.principal;
    let guards = call
        .snap
        .guards
        .applicable_to_tool(&ctx.requested_model, principal);
    let mut masker = Masker::default();
    if let (false, Some(args)) = (guards.is_empty(), p.arguments.as_mut()) {
        let tool = &ctx.requested_model;
        guard::check_tool(
            &guards,
            "input",
            tool,
            principal,
            args,
            &mut masker,
            &mut ctx.verdicts,
        )
        .await?;
    }
    if call.snap.mcp.needs_approval(&ctx.requested_model) {
        await_approval(call, ctx, &p).await?;
    }
    p.name = upstream_name;
    let params = serde_json::to_value(p).map_err(|_| GatewayError::internal())?;
    let mut result = forward(call, session, member, "tools/call", Some(&params)).await?;
    if !guards.is_empty() {
        let tool = &ctx.requested_model;
        guard::check_tool(
            &guards,
            "output",
            tool,
            principal,
            &mut result,
            &mut masker,
            &mut ctx.verdicts,
        )
        .await?;
    }
    Ok(result)
}

/// A high-risk call waits for an operator's decision (admin API) or the
/// approval timeout; only an approval lets it through.
async fn await_approval(
    call: &Call<'_>,
    ctx: &RequestCtx,
    p: &CallToolParams,
) -> Result<(), GatewayError> {
    let pending = PendingCall {
        id: uuid::Uuid::now_v7().to_string(),
        tool: ctx.requested_model.clone(),
        principal: call.who.identity.principal.subject.to_string(),
        request_id: ctx.request_id.clone(),
        arguments: p.arguments.clone().unwrap_or(Value::Null),
        created_ms: tollgate_core::clock::wall_ms(),
    };
    let waiting = call.approvals.request(pending);
    match waiting.decision(call.snap.mcp.approval_timeout).await {
        Some(Decision::Approved) => Ok(()),
        Some(Decision::Denied) => Err(reply::approval_refused(&ctx.requested_model, false)),
        None => Err(reply::approval_refused(&ctx.requested_model, true)),
    }
}

/// Rate limits on the call: the rules with `match.tools` that apply, one
/// request reserved on each counter (settled when the request ends, from
/// the same guard as model calls), all or nothing.
async fn admit(call: &Call<'_>, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let limits = &call.snap.limits;
    if limits.is_empty() {
        return Ok(());
    }
    let target = format!("{TOOL_TARGET}{}", ctx.requested_model);
    let principal = &call.who.identity.principal;
    crate::pipeline::admit::reserve(limits, ctx, principal, &target, Demand::default()).await
}

/// One request to one member within the client's session.
async fn forward(
    call: &Call<'_>,
    session: &SessionState,
    m: &Member,
    method: &str,
    params: Option<&Value>,
) -> Result<Value, GatewayError> {
    let sid = session.upstream.get(&m.upstream.name).map(String::as_str);
    let via = m
        .upstream
        .connection_name()
        .and_then(|name| call.snap.forward.connection(name))
        .map(|up| crate::pipeline::forward::Via::new(up, call.secrets));
    let via = via
        .as_ref()
        .map(|v| v as &dyn tollgate_mcp::upstream::Connection);
    m.upstream
        .request(sid, method, params, call.headers, call.relay.as_ref(), via)
        .await
        .map_err(reply::upstream)
}

/// A list method's items from every member, all pages of each.
async fn gather<'a>(
    call: &'a Call<'_>,
    session: &SessionState,
    method: &str,
    key: &str,
) -> Result<Vec<(&'a Member, Vec<Value>)>, GatewayError> {
    let lists = join_all(call.served.members.iter().map(|m| async move {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
            let result = forward(call, session, m, method, params.as_ref()).await?;
            let mut page = Page::from_json(result)
                .map_err(|e| reply::upstream_protocol(&m.upstream.name, e))?;
            if let Some(Value::Array(list)) = page.rest.remove(key) {
                items.extend(list);
            }
            match page.next_cursor {
                Some(c) if !c.is_empty() => cursor = Some(c),
                _ => break,
            }
        }
        Ok::<_, GatewayError>((m, items))
    }))
    .await;
    let mut out = Vec::new();
    let mut last_err = None;
    for r in lists {
        match r {
            Ok(x) => out.push(x),
            // A virtual server lists what its healthy members have.
            Err(e) if call.served.members.len() > 1 => {
                tracing::warn!(error = %e, "mcp member left out of a list");
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match (out.is_empty(), last_err) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

fn parse<T: serde::de::DeserializeOwned>(params: Option<Value>) -> Result<T, GatewayError> {
    serde_json::from_value(params.unwrap_or(Value::Null))
        .map_err(|e| reply::invalid_params(format!("invalid params: {e}")))
}
