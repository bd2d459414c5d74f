//! Phase 1, authenticate: headers only, before reading a byte of the body,
//! so unauthenticated callers cost nothing. API keys and JWTs alike end in
//! one `Principal`; verification uses cached keys only (an unknown JWT
//! `kid` may wait ≤ 2 s on one rate-limited JWKS refresh).

use http::HeaderMap;
use tollgate_policy::auth;

use super::Authenticated;
use crate::error::GatewayError;
use crate::pipeline::RequestCtx;
use crate::snapshot::Snapshot;
use crate::state::AppState;

pub(in crate::pipeline) async fn authenticate(
    app: &AppState,
    snap: &Snapshot,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
) -> Result<Authenticated, GatewayError> {
    let store_keys = app.store_keys.load_full();
    let span = ctx.trace.as_ref().map(|t| t.child("tollgate.auth"));
    let identity = auth::authenticate(headers, &snap.credentials(&store_keys)).await;
    if let (Some(s), Err(e)) = (span, &identity) {
        s.fail(e.label(), None);
    }
    let identity = identity?;
    ctx.identity = Some(identity.clone());
    Ok(Authenticated { identity })
}
