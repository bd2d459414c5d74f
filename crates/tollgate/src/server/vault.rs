//! The secret vault at run time: loaded from the store at start (a stored
//! secret the configured keys cannot open stops the start), re-read every
//! `storage.key_refresh` so `tollgate connections set-secret` takes effect
//! without a restart, and written through the admin API
//! (`/admin/v1/secrets`, admin grant required). Never on the request path.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::AppState;
use crate::store::Store;
use crate::vault::{Vault, VaultError};

/// Loads the store's secrets; a secret the keys cannot open (unknown key
/// id, another key under its id) is an error naming it.
pub(super) async fn load_at_start(vault: &Vault, store: &Store) -> Result<(), VaultError> {
    let mut problems = vault.load(store).await?.into_iter();
    match problems.next() {
        None => Ok(()),
        Some(first) => {
            for other in problems {
                tracing::error!(problem = %other, "a stored secret cannot be used with the configured keys");
            }
            Err(first)
        }
    }
}

/// Re-reads the store's secrets every `storage.key_refresh`.
pub(super) async fn refresh_secrets(
    state: Arc<AppState>,
    vault: Arc<Vault>,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    while super::reload::key_refresh_tick(&state, &mut stop).await {
        if store.is_ready() {
            vault.refresh(&store).await;
        }
    }
}

#[derive(Clone)]
struct Admin {
    app: Arc<AppState>,
    vault: Arc<Vault>,
}

/// `GET /admin/v1/secrets` (names and dates), `PUT` and `DELETE
/// /admin/v1/secrets/{name}`.
pub(super) fn admin_router(app: Arc<AppState>, vault: Arc<Vault>) -> Router {
    Router::new()
        .route("/admin/v1/secrets", get(list))
        .route(
            "/admin/v1/secrets/{name}",
            axum::routing::put(put).delete(delete),
        )
        .with_state(Admin { app, vault })
}

fn problem(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
        .into_response()
}

fn failed(e: &VaultError) -> Response {
    match e {
        VaultError::BadName(_) | VaultError::Empty | VaultError::TooLarge => {
            problem(StatusCode::BAD_REQUEST, &e.to_string())
        }
        _ => {
            tracing::error!(error = %e, "admin API: secret not written");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": {"type": "api_error", "message": e.to_string()}})),
            )
                .into_response()
        }
    }
}

async fn list(State(a): State<Admin>, headers: HeaderMap) -> Response {
    if let Some(resp) = super::usage_api::refusal(&a.app, &headers).await {
        return resp;
    }
    match a.app.store.list_secrets().await {
        Ok(rows) => {
            let secrets: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({"name": r.name, "key_id": r.key_id,
                           "created_ms": r.created_ms, "updated_ms": r.updated_ms})
                })
                .collect();
            axum::Json(json!({ "secrets": secrets })).into_response()
        }
        Err(e) => failed(&e.into()),
    }
}

/// The body of a `PUT`: the value only. No `Debug`: it holds the plaintext.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSecret {
    value: String,
}

async fn put(
    State(a): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<SetSecret>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(resp) = super::usage_api::refusal(&a.app, &headers).await {
        return resp;
    }
    // The rejection's text may quote the body: never echoed.
    let Ok(axum::Json(body)) = body else {
        return problem(StatusCode::BAD_REQUEST, "send {\"value\": \"...\"}");
    };
    match a.vault.put(&a.app.store, &name, &body.value).await {
        Ok(()) => {
            tracing::info!(secret = %name, "secret written through the admin API");
            axum::Json(json!({"name": name})).into_response()
        }
        Err(e) => failed(&e),
    }
}

async fn delete(State(a): State<Admin>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Some(resp) = super::usage_api::refusal(&a.app, &headers).await {
        return resp;
    }
    match a.vault.delete(&a.app.store, &name).await {
        Ok(true) => {
            tracing::info!(secret = %name, "secret deleted through the admin API");
            axum::Json(json!({"name": name, "deleted": true})).into_response()
        }
        Ok(false) => problem(StatusCode::NOT_FOUND, "no secret by this name"),
        Err(e) => failed(&e),
    }
}
