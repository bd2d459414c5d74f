//! `GET /mcp/{server}`: a session's server-to-client stream (Streamable
//! HTTP). Opened by the same phases as a message (authenticate, resolve,
//! authorize the server, a valid session of this caller), it then carries
//! `notifications/{tools,prompts,resources}/list_changed`: announced by a
//! member upstream (its shared stdio or SSE stream, or an HTTP answer's
//! event stream) or by the gateway itself (a reload that changed the MCP
//! config, a tool pin approved or newly hidden). A comment line every
//! `KEEPALIVE` keeps proxies from closing an idle stream; the stream ends
//! when the session expires. Opening it is not a ledger record. The stream
//! leaves typed (`Listened`); the edge writes its SSE events.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use http::HeaderMap;
use serde_json::Value;
use tokio::sync::broadcast::{error::RecvError, Receiver};
use tollgate_mcp::wire::ListChanged;
use tollgate_mcp::Served;

use super::{admit, owner, reply, session, settle, start, Call, Failure, Listened, Outcome};
use crate::state::AppState;

/// How often an idle stream sends a comment line.
const KEEPALIVE: Duration = Duration::from_secs(25);

/// The stream, or why it was not opened.
pub async fn handle_get(
    app: Arc<AppState>,
    server: String,
    headers: HeaderMap,
) -> Result<BoxStream<'static, Listened>, Outcome> {
    let (snap, mut fin, span) = start(&app, &headers, &server, "mcp/stream");
    let opened = async {
        let (who, served) = admit(&app, &snap, &mut fin, &server, &headers).await?;
        Call::new(&app, &snap, &served, &who, &headers).authorize_server()?;
        if !accepts_events(&headers) {
            return Err(Failure::from(reply::not_acceptable()));
        }
        let state = session(&snap, &served, &headers, &owner(&who))?;
        // HTTP members' own streams for this session, opened now.
        let mut own = Vec::new();
        for m in &served.members {
            if let Some(id) = state.upstream.get(&m.upstream.name) {
                own.extend(m.upstream.listen(id, &headers).await);
            }
        }
        Ok((served, state.expires_ms, own))
    };
    let opened = tracing::Instrument::instrument(opened, span.clone()).await;
    match opened {
        Ok((served, expires_ms, own)) => {
            fin.forget();
            let left = expires_ms.saturating_sub(tollgate_core::clock::wall_ms());
            let ends = Duration::from_millis(u64::try_from(left).unwrap_or(0));
            Ok(events(&app, &served, own, ends))
        }
        Err(f) => Err(settle(
            &snap,
            fin,
            span,
            &server,
            &headers,
            Value::Null,
            Err(f),
        )),
    }
}

/// The client must take an event stream (the spec's `Accept` rule).
pub(super) fn accepts_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream") || v.contains("*/*"))
}

/// The event stream: every member's announcements and the gateway's own,
/// keep-alive comments, until the session ends.
fn events(
    app: &AppState,
    served: &Served,
    own: Vec<BoxStream<'static, ListChanged>>,
    ends: Duration,
) -> BoxStream<'static, Listened> {
    let mut sources: Vec<BoxStream<'static, Listened>> = served
        .members
        .iter()
        .map(|m| changes(m.upstream.subscribe()))
        .collect();
    sources.push(changes(app.mcp_changes.subscribe()));
    sources.extend(own.into_iter().map(|s| s.map(Listened::Changed).boxed()));
    let ticks = stream::unfold(
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
        |mut every| async move {
            every.tick().await;
            Some((Listened::Keepalive, every))
        },
    );
    sources.push(ticks.boxed());
    stream::select_all(sources)
        .take_until(tokio::time::sleep(ends))
        .boxed()
}

/// One source's announcements. A client too slow to read them (the
/// channel overran) is told every list may have changed.
fn changes(rx: Receiver<ListChanged>) -> BoxStream<'static, Listened> {
    stream::unfold(rx, |mut rx| async move {
        let kinds: Vec<ListChanged> = match rx.recv().await {
            Ok(kind) => vec![kind],
            Err(RecvError::Lagged(_)) => ListChanged::ALL.to_vec(),
            Err(RecvError::Closed) => return None,
        };
        Some((stream::iter(kinds.into_iter().map(Listened::Changed)), rx))
    })
    .flatten()
    .boxed()
}
