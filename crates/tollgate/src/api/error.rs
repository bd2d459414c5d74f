//! Errors rendered in the caller's shape, here at the edge and nowhere
//! else. The error is core's [`GatewayError`] (the pipeline's own refusals
//! are constructors in `tollgate_pipeline::error`, re-exported here); this
//! module turns it into OpenAI's `{"error":{message,type,param,code}}`,
//! Anthropic's `{"type":"error","error":{type,message}}` (type from the
//! status) or Databricks' `{"error_code","message"}` (code from the
//! status), and a whole response with `Retry-After`, the error's own
//! headers (rate-limit state) and `WWW-Authenticate: Bearer` on 401.
//! MCP's JSON-RPC errors are rendered by `pipeline/mcp/reply.rs`.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

pub use tollgate_pipeline::error::*;

/// Renders an error in the caller's shape.
pub trait Render {
    /// The JSON body (also the data of a stream's last error event).
    fn body(&self, shape: ApiShape) -> serde_json::Value;
    /// The whole response: status, body, headers.
    fn into_response_shaped(self, shape: ApiShape) -> Response;
}

impl Render for GatewayError {
    fn body(&self, shape: ApiShape) -> serde_json::Value {
        match shape {
            ApiShape::OpenAi => json!({"error": {
                "message": self.message(),
                "type": self.kind().openai_type(),
                "param": self.param(),
                "code": self.code(),
            }}),
            ApiShape::Databricks => json!({
                "error_code": error_code(self),
                "message": self.message(),
            }),
            ApiShape::Anthropic => {
                tollgate_translate::anthropic::error_body(self.status(), self.message())
            }
        }
    }

    fn into_response_shaped(self, shape: ApiShape) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut resp = (status, axum::Json(self.body(shape))).into_response();
        let headers = resp.headers_mut();
        if let Some(h) = self.headers() {
            for (name, value) in h {
                headers.insert(name, value.clone());
            }
        }
        if let Some(secs) = self.retry_after_s() {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(http::header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Databricks' `error_code` for an error, by its HTTP status (the codes
/// the Databricks SDKs map to their exception types).
pub fn error_code(e: &GatewayError) -> &'static str {
    match StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY) {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "INVALID_PARAMETER_VALUE",
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::FORBIDDEN => "PERMISSION_DENIED",
        StatusCode::NOT_FOUND if e.code() == Some("unknown_url") => "ENDPOINT_NOT_FOUND",
        StatusCode::NOT_FOUND => "RESOURCE_DOES_NOT_EXIST",
        StatusCode::CONFLICT => "RESOURCE_CONFLICT",
        StatusCode::TOO_MANY_REQUESTS => "REQUEST_LIMIT_EXCEEDED",
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE => "TEMPORARILY_UNAVAILABLE",
        StatusCode::GATEWAY_TIMEOUT => "DEADLINE_EXCEEDED",
        s if s.is_client_error() => "BAD_REQUEST",
        _ => "INTERNAL_ERROR",
    }
}
