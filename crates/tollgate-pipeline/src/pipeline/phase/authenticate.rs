//! Phase 1, authenticate: headers only, before reading a byte of the body,
//! so unauthenticated callers cost nothing. API keys and JWTs alike end in
//! one `Principal`; verification uses cached keys only (an unknown JWT
//! `kid` may wait ≤ 2 s on one rate-limited JWKS refresh).

use std::sync::atomic::Ordering;

use http::HeaderMap;
use tollgate_core::error::ErrorKind;
use tollgate_policy::auth::{self, AuthError};

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
    let identity = identity.map_err(|e| not_loaded_yet(app, e))?;
    ctx.identity = Some(identity.clone());
    Ok(Authenticated { identity })
}

/// An unknown key while the store's keys could not be loaded yet (the
/// store was unreachable since start) may be a valid store key: the
/// caller is told to retry (503) rather than that its key is invalid.
fn not_loaded_yet(app: &AppState, e: AuthError) -> GatewayError {
    if matches!(e, AuthError::Unknown) && !app.store_keys_loaded.load(Ordering::Relaxed) {
        return GatewayError::new(
            ErrorKind::Server,
            503,
            "store_unavailable",
            "API keys cannot be checked yet: the key store is unreachable; retry shortly",
        )
        .with_code("store_unavailable")
        .with_retry_after(STORE_RETRY_AFTER_S);
    }
    e.into()
}

/// What the 503 above suggests: about the key store's first retries.
const STORE_RETRY_AFTER_S: u64 = 5;
