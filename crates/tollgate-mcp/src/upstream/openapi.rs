//! A REST API as an upstream MCP server (`transport: openapi`): the
//! gateway answers `tools/list` from the OpenAPI document (`crate::openapi`)
//! and turns each `tools/call` into one HTTP request to the API, with the
//! server's `auth` credential and `headers` injected as for Streamable HTTP.
//! The answer becomes MCP `content` (the response text) plus
//! `structuredContent` for JSON; a 4xx or 5xx is a tool result with
//! `isError: true`. Response bodies are bounded by `max_message_bytes`, and
//! every credential the request carried is scrubbed from what comes back.
//! No session: `initialize` is answered by the gateway. With `connection:`
//! the calls go through that outbound connection instead (`Connection`,
//! implemented by the pipeline over its own connection code): its base URL,
//! client, header rules, allow-lists and credential.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use globset::{Glob, GlobSetBuilder};
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;
use tollgate_config::McpServerConfig;
use tollgate_llm::credentials::Credentials;
use tollgate_llm::providers::Secrets;

use super::UpstreamError;
use crate::openapi::{is_json, request_parts, tool_result, Api, OpenApiError, BODY_ARG};
use crate::wire::{code, RpcError};

/// Largest OpenAPI document fetched from a URL.
const MAX_SPEC_BYTES: usize = 16 * 1024 * 1024;

/// An outbound connection a REST API's calls go through (the pipeline's
/// `connections:` entry, with its credential code: a named secret is
/// revealed only by `headers`, per call).
pub trait Connection: Send + Sync {
    /// Where the API's paths are appended.
    fn base_url(&self) -> &str;
    /// The connection's HTTP client (under the egress allowlist).
    fn client(&self) -> &tollgate_net::Client;
    /// The connection's headers and credential for a call of `method` to
    /// `path` (below the base URL); refused when the connection's methods
    /// or paths do not allow it, or its credential is unavailable.
    fn headers<'a>(
        &'a self,
        method: &'a http::Method,
        path: &'a str,
        caller: &'a HeaderMap,
    ) -> futures_util::future::BoxFuture<'a, Result<HeaderMap, UpstreamError>>;
}

/// The document as published, and the base URL calls go to.
struct Loaded {
    api: Api,
    base: String,
}

pub(crate) struct OpenApiUpstream {
    name: String,
    spec: String,
    base_url: Option<String>,
    /// `connection:`: calls go through it (given per call).
    connection: Option<String>,
    keep: globset::GlobSet,
    client: tollgate_net::Client,
    headers: HeaderMap,
    creds: Arc<Credentials>,
    timeout: Duration,
    max_bytes: usize,
    loaded: OnceCell<Arc<Loaded>>,
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

impl OpenApiUpstream {
    /// A document in a file is read and checked now (a bad one fails the
    /// config load); one at a URL is fetched on first use.
    pub(crate) fn new(
        cfg: &McpServerConfig,
        max_bytes: usize,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, UpstreamError> {
        let bad = |detail: String| UpstreamError::Config {
            server: cfg.name.clone(),
            detail,
        };
        let o = cfg
            .openapi
            .as_ref()
            .ok_or_else(|| bad("openapi is required".into()))?;
        let mut keep = GlobSetBuilder::new();
        for g in &o.operations {
            keep.add(Glob::new(g).map_err(|e| bad(format!("openapi.operations: {e}")))?);
        }
        let (client, headers, creds) = super::http::client_parts(cfg, egress)?;
        let up = Self {
            name: cfg.name.clone(),
            spec: o.spec.clone(),
            base_url: o.base_url.clone(),
            connection: o.connection.clone(),
            keep: keep
                .build()
                .map_err(|e| bad(format!("openapi.operations: {e}")))?,
            client,
            headers,
            creds,
            timeout: cfg.timeout,
            max_bytes,
            loaded: OnceCell::new(),
        };
        if !is_url(&up.spec) {
            let text = std::fs::read_to_string(&up.spec)
                .map_err(|e| bad(format!("openapi.spec {}: {e}", up.spec)))?;
            let loaded = up
                .publish(&text)
                .map_err(|e| bad(format!("openapi.spec {}: {e}", up.spec)))?;
            let _ = up.loaded.set(Arc::new(loaded));
        }
        Ok(up)
    }

    fn publish(&self, text: &str) -> Result<Loaded, OpenApiError> {
        let keep = |name: &str| self.keep.is_empty() || self.keep.is_match(name);
        let api = Api::parse(text, &keep)?;
        for s in &api.skipped {
            tracing::warn!(server = %self.name, operation = %s, "openapi operation not published");
        }
        let base = match (&self.base_url, &api.server_url) {
            // The connection's base URL, given per call.
            _ if self.connection.is_some() => String::new(),
            (Some(b), _) => b.clone(),
            (None, Some(u)) if is_url(u) => u.clone(),
            (None, Some(u)) if is_url(&self.spec) => reqwest::Url::parse(&self.spec)
                .and_then(|s| s.join(u))
                .map(|u| u.to_string())
                .map_err(|_| OpenApiError::NoBaseUrl)?,
            _ => return Err(OpenApiError::NoBaseUrl),
        };
        Ok(Loaded {
            api,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    async fn loaded(
        &self,
        caller: &HeaderMap,
        via: Option<&dyn Connection>,
    ) -> Result<Arc<Loaded>, UpstreamError> {
        self.loaded
            .get_or_try_init(|| async {
                let url = self.url(&self.spec)?;
                // A document under the connection's base URL is fetched
                // through it (its credential); any other with the server's.
                let through = via.and_then(|c| {
                    let path = url.as_str().strip_prefix(c.base_url())?;
                    (path.is_empty() || path.starts_with('/')).then_some((c, path))
                });
                let (client, headers) = match through {
                    Some((c, path)) => (
                        c.client(),
                        c.headers(&http::Method::GET, path, caller).await?,
                    ),
                    None => (&self.client, self.request_headers(caller).await?),
                };
                let secrets = Secrets::of(&headers);
                let send = client
                    .get(url)
                    .map_err(|denied| self.denied(denied))?
                    .headers(headers)
                    .send();
                let work = async {
                    let resp = send.await.map_err(|e| self.unreachable(&e))?;
                    if !resp.status().is_success() {
                        return Err(UpstreamError::Status {
                            server: self.name.clone(),
                            status: resp.status().as_u16(),
                        });
                    }
                    let body = self.read(resp, MAX_SPEC_BYTES).await?;
                    let text = secrets.scrub(String::from_utf8_lossy(&body).into_owned());
                    self.publish(&text)
                        .map(Arc::new)
                        .map_err(|e| UpstreamError::Protocol {
                            server: self.name.clone(),
                            detail: format!("openapi.spec: {e}"),
                        })
                };
                super::within(&self.name, self.timeout, work).await
            })
            .await
            .cloned()
    }

    /// The static headers and the credential.
    async fn request_headers(&self, caller: &HeaderMap) -> Result<HeaderMap, UpstreamError> {
        super::http::with_credential(&self.name, &self.headers, &self.creds, caller).await
    }

    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<&Value>,
        caller: &HeaderMap,
        via: Option<&dyn Connection>,
    ) -> Result<Value, UpstreamError> {
        let via = match (&self.connection, via) {
            (None, _) => None,
            (Some(_), Some(c)) => Some(c),
            (Some(c), None) => {
                return Err(UpstreamError::Config {
                    server: self.name.clone(),
                    detail: format!("its connection {c} is not available here"),
                })
            }
        };
        match method {
            "tools/list" => Ok(self.loaded(caller, via).await?.api.tools()),
            "tools/call" => self.call(params, caller, via).await,
            "ping" | "logging/setLevel" => Ok(json!({})),
            "prompts/list" => Ok(json!({"prompts": []})),
            "resources/list" => Ok(json!({"resources": []})),
            "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
            _ => Err(self.rpc(
                code::METHOD_NOT_FOUND,
                format!("{method} is not offered by a REST API"),
            )),
        }
    }

    async fn call(
        &self,
        params: Option<&Value>,
        caller: &HeaderMap,
        via: Option<&dyn Connection>,
    ) -> Result<Value, UpstreamError> {
        let loaded = self.loaded(caller, via).await?;
        let name = params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(op) = loaded.api.find(name) else {
            return Err(self.rpc(code::INVALID_PARAMS, format!("unknown tool {name:?}")));
        };
        let empty = Map::new();
        let args = match params.and_then(|p| p.get("arguments")) {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(a)) => a,
            Some(_) => {
                return Err(self.rpc(code::INVALID_PARAMS, "arguments must be an object"));
            }
        };
        let (path, query, extra) = request_parts("", op, args)
            .map_err(|e| self.rpc(code::INVALID_PARAMS, e.to_string()))?;
        let (client, base, mut headers) = match via {
            Some(c) => (
                c.client(),
                c.base_url(),
                c.headers(&op.method, &path, caller).await?,
            ),
            None => (
                &self.client,
                loaded.base.as_str(),
                self.request_headers(caller).await?,
            ),
        };
        let url = format!("{base}{path}");
        let secrets = Secrets::of(&headers);
        for (k, v) in extra {
            headers.insert(k, v);
        }
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json, */*;q=0.5"),
        );
        let mut req = client
            .request(op.method.clone(), self.url(&url)?)
            .map_err(|denied| self.denied(denied))?
            .headers(headers)
            .query(&query);
        if op.body.is_some() {
            if let Some(body) = args.get(BODY_ARG) {
                let bytes = serde_json::to_vec(body).map_err(|e| self.protocol(e.to_string()))?;
                req = req
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(bytes);
            }
        }
        let work = async {
            let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
            let status = resp.status();
            let json_answer = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(is_json);
            let body = self.read(resp, self.max_bytes).await?;
            let text = secrets.scrub(String::from_utf8_lossy(&body).into_owned());
            Ok(tool_result(status, json_answer, text))
        };
        super::within(&self.name, self.timeout, work).await
    }

    /// The body, up to `limit` bytes (else `TooLarge`).
    async fn read(
        &self,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<bytes::Bytes, UpstreamError> {
        let too_large = || UpstreamError::TooLarge {
            server: self.name.clone(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(&e))? {
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    fn rpc(&self, code: i64, message: impl Into<String>) -> UpstreamError {
        UpstreamError::Rpc {
            server: self.name.clone(),
            error: RpcError::new(code, message),
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> UpstreamError {
        UpstreamError::Unreachable {
            server: self.name.clone(),
            detail: tollgate_llm::providers::error_chain(e),
        }
    }

    fn url(&self, url: &str) -> Result<reqwest::Url, UpstreamError> {
        reqwest::Url::parse(url).map_err(|e| self.protocol(format!("bad URL: {e}")))
    }

    fn denied(&self, denied: tollgate_net::EgressDenied) -> UpstreamError {
        UpstreamError::Egress {
            server: self.name.clone(),
            denied,
        }
    }

    fn protocol(&self, detail: String) -> UpstreamError {
        UpstreamError::Protocol {
            server: self.name.clone(),
            detail,
        }
    }

    pub(crate) fn reload(&self) {
        self.creds.reload();
    }
}
