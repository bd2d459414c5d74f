//! `tollgate mock-upstream`: an OpenAI-compatible HTTP server with the
//! deterministic answers of `generate.rs` and the knobs of `knobs.rs`. It
//! remembers the last requests it received (`GET /_mock/requests`) so tests
//! can assert on what reached the upstream, and can require a bearer key.
//! Databricks, Azure and OAuth token routes live in `cloud.rs` and
//! `oauth.rs`, on the same state.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::{generate, Knobs};

/// Requests kept for `GET /_mock/requests`.
const RECORDED: usize = 256;

#[derive(Debug, Clone)]
pub struct MockOptions {
    /// When set, requests must carry the key in their wire format's way:
    /// `x-api-key: <key>` (Anthropic),
    /// `Authorization: Bearer <key>` or `api-key: <key>` (OpenAI, Azure) or a
    /// token issued by the mock's `/oidc/v1/token` (see `oauth.rs`),
    /// `x-goog-api-key` or `?key=` (Gemini), a SigV4 `Authorization` by access
    /// key id `<key>` (Bedrock).
    pub require_key: Option<String>,
    /// The OAuth client accepted by the client-credentials grant.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Lifetime of issued tokens (changeable at run time, `POST /_mock/oauth`).
    pub token_ttl: std::time::Duration,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            require_key: None,
            client_id: None,
            client_secret: None,
            token_ttl: std::time::Duration::from_secs(3600),
        }
    }
}

pub(super) struct MockState {
    pub(super) opts: MockOptions,
    received: Mutex<VecDeque<Value>>,
    /// Requests seen per model string, for the `fail_first` knob.
    seen: Mutex<std::collections::HashMap<String, u64>>,
    pub(super) oauth: super::oauth::OAuthState,
    pub(super) jobs: super::jobs::JobsState,
}

pub fn router(opts: MockOptions) -> Router {
    let state = Arc::new(MockState {
        opts,
        received: Mutex::new(VecDeque::new()),
        seen: Mutex::new(std::collections::HashMap::new()),
        oauth: super::oauth::OAuthState::default(),
        jobs: super::jobs::JobsState::default(),
    });
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(super::anthropic::messages))
        .route("/_mock/requests", get(received).delete(clear))
        .merge(super::cloud::routes())
        .merge(super::gemini::routes())
        .merge(super::bedrock::routes())
        .merge(super::mcp::routes())
        .merge(super::jobs::routes())
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    opts: MockOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Small writes (one SSE event each) leave at once, as from a real
    // upstream: with Nagle on, a paced stream's event waited for the
    // caller's delayed ACK whenever the previous one was unacknowledged
    // (a reused connection), ~20-40 ms per event.
    // A socket that refuses the option still serves (Nagle on).
    let listener = listener.tap_io(|tcp| drop(tcp.set_nodelay(true)));
    axum::serve(listener, router(opts))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Renders an error in one upstream's shape.
pub(super) type ErrorFn = fn(StatusCode, &str, Option<u64>) -> Response;

/// Puts `Retry-After` on an error response.
pub(super) fn with_retry_after(mut resp: Response, retry_after: Option<u64>) -> Response {
    if let Some(secs) = retry_after {
        if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    resp
}

pub(super) fn error(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_error"
    } else if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let resp = (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}})),
    )
        .into_response();
    with_retry_after(resp, retry_after)
}

/// Common front half of every POST: record, check the key, parse, apply
/// status and latency knobs.
pub(super) async fn admit(
    state: &MockState,
    path: &str,
    version: http::Version,
    headers: &HeaderMap,
    body: &Bytes,
    error: ErrorFn,
) -> Result<(Map<String, Value>, Knobs), Response> {
    let req = Incoming {
        path,
        version,
        headers,
        body,
    };
    admit_as(state, &req, &Credential::Bearer, None)
        .await
        .map_err(|r| error(r.status, &r.message, r.retry_after))
}

/// One request as received.
pub(super) struct Incoming<'a> {
    pub path: &'a str,
    pub version: http::Version,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

/// How a wire format carries the credential `--require-key` checks.
pub(super) enum Credential<'a> {
    /// `Authorization: Bearer <key>` (OpenAI).
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    AnthropicKey,
    /// `x-goog-api-key: <key>` or `?key=<key>` (Gemini); the query's key.
    GoogleKey(Option<&'a str>),
    /// `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/bedrock/aws4_request, …`
    /// (Bedrock), over the request's path as sent (still percent-encoded).
    SigV4 { raw_path: &'a str },
}

/// A refusal, rendered by each wire format in its own error shape.
pub(super) struct Reject {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

fn credential_ok(cred: &Credential<'_>, headers: &HeaderMap, body: &[u8], key: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match cred {
        Credential::Bearer => header("authorization") == Some(&format!("Bearer {key}")),
        Credential::AnthropicKey => header("x-api-key") == Some(key),
        Credential::GoogleKey(query) => {
            header("x-goog-api-key") == Some(key) || *query == Some(key)
        }
        Credential::SigV4 { raw_path } => super::bedrock::sigv4_ok(headers, key, raw_path, body),
    }
}

/// [`admit`] for any wire format: `model` overrides the body's (Gemini and
/// Bedrock name the model in the path).
pub(super) async fn admit_as(
    state: &MockState,
    req: &Incoming<'_>,
    cred: &Credential<'_>,
    model: Option<&str>,
) -> Result<(Map<String, Value>, Knobs), Reject> {
    let Incoming {
        path,
        version,
        headers,
        body,
    } = *req;
    let reject = |status: StatusCode, message: &str| Reject {
        status,
        message: message.to_string(),
        retry_after: None,
    };
    let parsed = serde_json::from_slice::<Value>(body);
    let header_map: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
        .collect();
    if let Ok(mut received) = state.received.lock() {
        if received.len() == RECORDED {
            received.pop_front();
        }
        let recorded = parsed.as_ref().map_or(Value::Null, Clone::clone);
        received.push_back(json!({
            "path": path,
            "version": format!("{version:?}"),
            "headers": header_map,
            "body": recorded,
        }));
    }
    let ok = match cred {
        // Bearer-style formats also take `api-key` and the mock's issued
        // OAuth tokens (`oauth.rs`).
        Credential::Bearer => super::oauth::authorized(state, headers),
        _ => state
            .opts
            .require_key
            .as_deref()
            .is_none_or(|key| credential_ok(cred, headers, body, key)),
    };
    if !ok {
        let status = match cred {
            Credential::Bearer => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        };
        return Err(reject(status, "mock upstream: wrong or missing key"));
    }
    let body = match parsed {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "body must be a JSON object",
            ))
        }
    };
    let model = model
        .or_else(|| body.get("model").and_then(Value::as_str))
        .unwrap_or("");
    let knobs = Knobs::from_request(headers, model);
    if let Some(d) = knobs.latency {
        tokio::time::sleep(d).await;
    }
    let mut forced = knobs.status.filter(|s| !(200..300).contains(s));
    if let (Some(n), Some(_)) = (knobs.fail_first, forced) {
        let count = state.seen.lock().map_or(0, |mut seen| {
            let c = seen.entry(model.to_string()).or_insert(0);
            *c += 1;
            *c
        });
        if count > n {
            forced = None;
        }
    }
    if let Some(status) = forced.and_then(|s| StatusCode::from_u16(s).ok()) {
        return Err(Reject {
            status,
            message: format!("mock upstream: forced status {status}"),
            retry_after: knobs.retry_after,
        });
    }
    Ok((body, knobs))
}

fn is_stream(body: &Map<String, Value>) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// The OpenAI-shaped answers every mock route gives.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Chat,
    Completions,
    Embeddings,
}

pub(super) fn respond(
    kind: Kind,
    body: &Map<String, Value>,
    knobs: &Knobs,
    error: ErrorFn,
) -> Response {
    match kind {
        Kind::Chat if is_stream(body) => sse_response(generate::chat_stream(body, knobs)),
        Kind::Chat => Json(generate::chat_json(body, knobs)).into_response(),
        Kind::Completions if is_stream(body) => {
            sse_response(generate::completion_stream(body, knobs))
        }
        Kind::Completions => Json(generate::completion_json(body, knobs)).into_response(),
        Kind::Embeddings => match generate::embeddings_json(body) {
            Ok(v) => Json(v).into_response(),
            Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string(), None),
        },
    }
}

async fn openai(
    state: &MockState,
    kind: Kind,
    path: &str,
    version: http::Version,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    match admit(state, path, version, headers, body, error).await {
        Err(resp) => resp,
        Ok((body, knobs)) => respond(kind, &body, &knobs, error),
    }
}

pub(super) fn sse_response(
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, generate::StreamCut>>,
) -> Response {
    stream_response(stream, "text/event-stream")
}

/// A streamed 200 of `content_type`; a cut stream breaks the connection.
pub(super) fn stream_response(
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, generate::StreamCut>>,
    content_type: &'static str,
) -> Response {
    let body = Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other)));
    Response::builder()
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn chat(
    State(state): State<Arc<MockState>>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    openai(
        &state,
        Kind::Chat,
        "/v1/chat/completions",
        version,
        &headers,
        &body,
    )
    .await
}

async fn completions(
    State(state): State<Arc<MockState>>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    openai(
        &state,
        Kind::Completions,
        "/v1/completions",
        version,
        &headers,
        &body,
    )
    .await
}

async fn embeddings(
    State(state): State<Arc<MockState>>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    openai(
        &state,
        Kind::Embeddings,
        "/v1/embeddings",
        version,
        &headers,
        &body,
    )
    .await
}

async fn models() -> Json<Value> {
    Json(generate::models_json(&["mock-chat", "mock-embed"]))
}

async fn received(State(state): State<Arc<MockState>>) -> Json<Value> {
    let list: Vec<Value> = state
        .received
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    Json(Value::Array(list))
}

async fn clear(State(state): State<Arc<MockState>>) -> StatusCode {
    if let Ok(mut r) = state.received.lock() {
        r.clear();
    }
    StatusCode::NO_CONTENT
}
