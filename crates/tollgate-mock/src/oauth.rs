//! The mock upstream's OAuth side: Databricks' `/oidc/v1/token` (also what
//! an Entra ID token URL looks like to the gateway) with the
//! client-credentials grant (client authenticated with HTTP Basic or form
//! fields) and RFC 8693 token exchange, plus the credential check every mock
//! route runs. Issued tokens expire after the configured lifetime; a route
//! accepts `Authorization: Bearer <require_key | live issued token>` or
//! `api-key: <require_key>`. `GET /_mock/oauth` counts token requests;
//! `POST /_mock/oauth {"ttl_secs","fail_status","delay_ms"}` changes
//! behaviour at run time (tests: expiry, refresh failure, slow endpoint).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::server::MockState;

#[derive(Debug, Default)]
pub(crate) struct OAuthState {
    counter: AtomicU64,
    client_credentials: AtomicU64,
    token_exchange: AtomicU64,
    failed: AtomicU64,
    issued: Mutex<HashMap<String, Instant>>,
    knobs: Mutex<Knobs>,
    last_scope: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Knobs {
    #[serde(default)]
    ttl_secs: Option<u64>,
    #[serde(default)]
    fail_status: Option<u16>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    subject_token: Option<String>,
    #[serde(default)]
    subject_token_type: Option<String>,
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

/// `POST /oidc/v1/token`.
pub(crate) async fn token(
    State(state): State<std::sync::Arc<MockState>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let oauth = &state.oauth;
    let knobs = oauth.knobs.lock().map(|k| k.clone()).unwrap_or_default();
    if let Some(ms) = knobs.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Ok(mut last) = oauth.last_scope.lock() {
        last.clone_from(&form.scope);
    }
    let subject = match form.grant_type.as_str() {
        "client_credentials" => {
            oauth.client_credentials.fetch_add(1, Ordering::Relaxed);
            let (id, secret) = basic_auth(&headers).unwrap_or((
                form.client_id.clone().unwrap_or_default(),
                form.client_secret.clone().unwrap_or_default(),
            ));
            let expected = (&state.opts.client_id, &state.opts.client_secret);
            if expected != (&Some(id.clone()), &Some(secret)) {
                oauth.failed.fetch_add(1, Ordering::Relaxed);
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "Client authentication failed",
                );
            }
            format!("sp-{id}")
        }
        "urn:ietf:params:oauth:grant-type:token-exchange" => {
            oauth.token_exchange.fetch_add(1, Ordering::Relaxed);
            let sub = form
                .subject_token
                .as_deref()
                .filter(|_| {
                    form.subject_token_type.as_deref()
                        == Some("urn:ietf:params:oauth:token-type:jwt")
                })
                .and_then(jwt_subject);
            match sub {
                Some(sub) => format!("fed-{sub}"),
                None => {
                    oauth.failed.fetch_add(1, Ordering::Relaxed);
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "subject_token must be a JWT with a sub claim",
                    );
                }
            }
        }
        other => {
            oauth.failed.fetch_add(1, Ordering::Relaxed);
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type {other} is not supported"),
            );
        }
    };
    if let Some(status) = knobs.fail_status.and_then(|s| StatusCode::from_u16(s).ok()) {
        oauth.failed.fetch_add(1, Ordering::Relaxed);
        return oauth_error(status, "temporarily_unavailable", "mock: forced failure");
    }
    let ttl = knobs
        .ttl_secs
        .map(Duration::from_secs)
        .unwrap_or(state.opts.token_ttl);
    let n = oauth.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let token = format!("mock-at-{n}-{subject}");
    if let Ok(mut issued) = oauth.issued.lock() {
        let expiry = Instant::now().checked_add(ttl).unwrap_or_else(Instant::now);
        issued.insert(token.clone(), expiry);
    }
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "scope": form.scope,
    }))
    .into_response()
}

/// `GET /_mock/oauth`.
pub(crate) async fn stats(State(state): State<std::sync::Arc<MockState>>) -> Json<Value> {
    let o = &state.oauth;
    Json(json!({
        "client_credentials": o.client_credentials.load(Ordering::Relaxed),
        "token_exchange": o.token_exchange.load(Ordering::Relaxed),
        "failed": o.failed.load(Ordering::Relaxed),
        "issued": o.counter.load(Ordering::Relaxed),
        "last_scope": o.last_scope.lock().map(|s| s.clone()).unwrap_or_default(),
    }))
}

/// `POST /_mock/oauth`: replaces the run-time knobs.
pub(crate) async fn set(
    State(state): State<std::sync::Arc<MockState>>,
    Json(knobs): Json<Value>,
) -> StatusCode {
    match serde_json::from_value::<Knobs>(knobs) {
        Ok(k) => {
            if let Ok(mut cur) = state.oauth.knobs.lock() {
                *cur = k;
            }
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Whether a request to a mock route carries an acceptable credential.
/// Nothing configured (no key, no OAuth client, no token issued) → open.
pub(crate) fn authorized(state: &MockState, headers: &HeaderMap) -> bool {
    let key = state.opts.require_key.as_deref();
    let issued_any = state.oauth.counter.load(Ordering::Relaxed) > 0;
    if key.is_none() && state.opts.client_id.is_none() && !issued_any {
        return true;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(k) = key {
        if header("api-key") == Some(k) {
            return true;
        }
    }
    let Some(bearer) = header("authorization").and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    if Some(bearer) == key {
        return true;
    }
    state
        .oauth
        .issued
        .lock()
        .map(|issued| issued.get(bearer).is_some_and(|exp| Instant::now() < *exp))
        .unwrap_or(false)
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = v.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The `sub` claim of a JWT (signature not checked: the mock is not the IdP).
fn jwt_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}
