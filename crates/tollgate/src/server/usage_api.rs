//! `GET /admin/v1/usage` on the admin listener: usage and cost grouped by
//! one or two of principal, group, tenant, model, served target, provider,
//! day, key, status and custom tag, filtered, as JSON or CSV; and `GET
//! /admin/v1/usage/requests/{id}`, one request's record. The caller
//! authenticates like any client (API key or OIDC token) and must hold the
//! policy's admin grant (`policy.rules[].admin`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::config::{BadTime, Expiry};
use crate::store::{now_ms, UsageFilter, UsageGroupBy, UsageQuery};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    group_by: Option<String>,
    /// RFC 3339 or Unix seconds; default 24 hours ago.
    from: Option<String>,
    /// RFC 3339 or Unix seconds, exclusive; default now.
    to: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
    tenant: Option<String>,
    model: Option<String>,
    key: Option<String>,
    principal: Option<String>,
    /// `429`, `4xx`, `ok` or `error`.
    status: Option<String>,
    /// `NAME:VALUE`.
    tag: Option<String>,
}

/// An admin API error: `{"error": {"type", "message"}}`.
pub(super) fn problem(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// Who may read usage: an authenticated principal with the admin grant.
/// Returns the refusal, if any.
pub(super) async fn refusal(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    let snap = app.snapshot.load_full();
    let store_keys = app.store_keys.load_full();
    let identity = match crate::auth::authenticate(headers, &snap.credentials(&store_keys)).await {
        Ok(i) => i,
        Err(e) => {
            tracing::info!(reason = e.label(), "admin API: authentication failed");
            return Some(problem(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "a valid API key or token is required",
            ));
        }
    };
    if !snap.policy.is_admin(&identity.principal) {
        tracing::info!(principal = %identity.principal.subject, "admin API: not an admin");
        return Some(problem(
            StatusCode::FORBIDDEN,
            "permission_error",
            "the admin grant is required",
        ));
    }
    None
}

/// A `from` or `to` parameter that is not a time.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {source}")]
struct BadTimeParam {
    name: &'static str,
    source: BadTime,
}

fn time(name: &'static str, value: Option<&str>, default: i64) -> Result<i64, BadTimeParam> {
    match value {
        None | Some("") => Ok(default),
        Some(t) => Expiry::parse(t)
            .map(|e| e.unix_ms)
            .map_err(|source| BadTimeParam { name, source }),
    }
}

pub(super) async fn usage(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(resp) = refusal(&app, &headers).await {
        return resp;
    }
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return bad_request(&e.body_text()),
    };
    let group_by = match UsageGroupBy::parse_list(p.group_by.as_deref().unwrap_or("principal")) {
        Ok(g) => g,
        Err(e) => return bad_request(&e.to_string()),
    };
    let status = match p.status.as_deref().map(UsageFilter::parse_status) {
        None => None,
        Some(Ok(range)) => Some(range),
        Some(Err(e)) => return bad_request(&e.to_string()),
    };
    let tag = match p.tag.as_deref().map(|t| t.split_once(':')) {
        None => None,
        Some(Some((name, value))) if !name.is_empty() => Some((name.to_owned(), value.to_owned())),
        Some(_) => return bad_request("tag: expected NAME:VALUE"),
    };
    let filter = UsageFilter {
        tenant: p.tenant,
        model: p.model,
        key: p.key,
        principal: p.principal,
        status,
        tag,
    };
    let now = now_ms();
    let (from_ms, to_ms) = match (
        time("from", p.from.as_deref(), now - DAY_MS),
        time("to", p.to.as_deref(), now + 1),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return bad_request(&e.to_string()),
    };
    if from_ms >= to_ms {
        return bad_request("from must be before to");
    }
    let csv = match p.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => return bad_request(&format!("format {other:?}: expected json or csv")),
    };
    let query = UsageQuery {
        group_by,
        filter,
        from_ms,
        to_ms,
    };
    match app.store.usage_report(&query).await {
        Ok(report) if csv => (
            [(http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.to_csv(),
        )
            .into_response(),
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "usage query failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the usage store did not answer",
            )
        }
    }
}

/// `GET /admin/v1/usage/requests/{id}`: the ledger's record of one request
/// (the newest when callers reused an `x-request-id`), with its JSON
/// columns as JSON; 404 when the ledger has none (yet: records are written
/// within `ledger.flush_interval`).
pub(super) async fn request(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(resp) = refusal(&app, &headers).await {
        return resp;
    }
    let records = match app.store.usage_by_request_id(&id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "usage record query failed");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the usage store did not answer",
            );
        }
    };
    let Some(record) = records.last() else {
        return problem(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no usage record with this request id",
        );
    };
    let mut v = match serde_json::to_value(record) {
        Ok(v) => v,
        Err(_) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    };
    // Columns stored as JSON text read as JSON.
    if let Some(obj) = v.as_object_mut() {
        for field in ["attempts", "guardrails", "limits", "groups"] {
            if let Some(serde_json::Value::String(text)) = obj.get(field) {
                let parsed = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
                obj.insert(field.to_owned(), parsed);
            }
        }
        obj.insert(
            "tags".to_owned(),
            tollgate_record::tags::to_value(&record.tags),
        );
        obj.insert("records_with_this_id".to_owned(), json!(records.len()));
    }
    axum::Json(v).into_response()
}
