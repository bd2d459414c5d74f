//! The one place errors become HTTP. Every area's error converts into
//! `ApiError`, which renders in the caller's API shape (OpenAI's
//! `{"error":{message,type,param,code}}`, or Anthropic's
//! `{"type":"error","error":{type,message}}`) with a status, a low-cardinality metrics label and a retryable flag.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use tollgate_llm::providers::ProviderError;
use tollgate_policy::auth::{AuthError, Denial, Principal};

/// The API dialect the caller speaks; errors are rendered in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiShape {
    #[default]
    OpenAi,
    /// Databricks REST: `{"error_code":"…","message":"…"}` (api/databricks.rs).
    Databricks,
    /// Anthropic Messages: `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("model `{model}` is not granted to principal `{principal}` ({detail})")]
    ModelForbidden {
        model: String,
        principal: String,
        /// `groups: …; tenant: …; kind: …` — the inputs the policy saw.
        detail: String,
        denial: Denial,
    },
    #[error("the model `{model}` does not exist or is not served by this gateway")]
    ModelNotFound { model: String },
    #[error("the prompt template `{name}`{} does not exist", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    PromptNotFound { name: String, version: Option<u32> },
    #[error("the model `{model}` does not serve {endpoint}")]
    WrongEndpoint {
        model: String,
        endpoint: &'static str,
    },
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<&'static str>,
    },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within `server.timeouts.body_read`.
    #[error("the request body was not received within {}ms (server.timeouts.body_read)", after.as_millis())]
    RequestTimeout { after: std::time::Duration },
    #[error("{0}")]
    Provider(#[from] ProviderError),
    #[error("not found: {path}")]
    RouteNotFound { path: String },
    #[error("method {method} is not allowed on this route")]
    MethodNotAllowed { method: String },
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// `server.max_concurrent_requests` are in flight; shed at the edge.
    #[error("the gateway is at its limit of {limit} concurrent requests; retry shortly")]
    Overloaded { limit: usize },
    #[error("internal error")]
    Internal,
    #[error("{0}")]
    Guardrail(#[from] tollgate_policy::guard::GuardError),
    #[error("{0}")]
    Limit(#[from] tollgate_policy::limits::LimitError),
}

impl From<tollgate_core::error::InvalidRequest> for ApiError {
    fn from(e: tollgate_core::error::InvalidRequest) -> Self {
        ApiError::BadRequest {
            message: e.message,
            param: e.param,
        }
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param,
        }
    }

    /// A policy denial for `model`; the message names the principal and the
    /// groups and tenant the policy saw (never the credential).
    pub fn forbidden(model: &str, principal: &Principal, denial: Denial) -> Self {
        ApiError::ModelForbidden {
            model: model.to_string(),
            principal: principal.subject.to_string(),
            detail: tollgate_policy::auth::policy::describe(principal),
            denial,
        }
    }

    /// Logs authentication and authorization denials with their reason.
    pub fn log_denial(&self, request_id: &str) {
        match self {
            ApiError::Auth(e) => {
                tracing::info!(request_id, reason = e.label(), detail = %e, "authentication failed")
            }
            ApiError::ModelForbidden {
                model,
                principal,
                detail,
                denial,
            } => tracing::info!(request_id, reason = denial.label(), %model, %principal,
                %detail, "access denied"),
            _ => {}
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::ModelForbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::ModelNotFound { .. }
            | ApiError::RouteNotFound { .. }
            | ApiError::PromptNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::WrongEndpoint { .. } | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Provider(e) => e.status(),
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ShuttingDown | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Guardrail(tollgate_policy::guard::GuardError::Blocked { .. }) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Guardrail(tollgate_policy::guard::GuardError::Failed { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Limit(tollgate_policy::limits::LimitError::Exceeded(_)) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Limit(tollgate_policy::limits::LimitError::Unavailable { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Low-cardinality label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            ApiError::Auth(e) => e.label(),
            ApiError::ModelForbidden {
                denial: Denial::TenantMismatch,
                ..
            } => "tenant_mismatch",
            ApiError::ModelForbidden { .. } => "model_forbidden",
            ApiError::ModelNotFound { .. } => "model_not_found",
            ApiError::PromptNotFound { .. } => "prompt_not_found",
            ApiError::WrongEndpoint { .. } => "wrong_endpoint",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::Provider(e) => e.label(),
            ApiError::RouteNotFound { .. } => "route_not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Internal => "internal",
            ApiError::Guardrail(tollgate_policy::guard::GuardError::Blocked { .. }) => {
                "guardrail_blocked"
            }
            ApiError::Guardrail(tollgate_policy::guard::GuardError::Failed { .. }) => {
                "guardrail_error"
            }
            ApiError::Limit(tollgate_policy::limits::LimitError::Exceeded(_)) => "rate_limited",
            ApiError::Limit(tollgate_policy::limits::LimitError::Unavailable { .. }) => {
                "limit_unavailable"
            }
        }
    }

    /// Whether the same request may succeed if sent again.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Provider(e) => e.retryable(),
            ApiError::ShuttingDown | ApiError::Overloaded { .. } | ApiError::Limit(_) => true,
            _ => false,
        }
    }

    fn openai_type_and_code(&self) -> (&'static str, Option<&'static str>) {
        match self {
            ApiError::Auth(e) => ("authentication_error", Some(e.code())),
            ApiError::ModelForbidden { .. } => ("permission_error", Some("model_not_allowed")),
            ApiError::ModelNotFound { .. } => ("invalid_request_error", Some("model_not_found")),
            ApiError::PromptNotFound { .. } => ("invalid_request_error", Some("prompt_not_found")),
            ApiError::WrongEndpoint { .. } => {
                ("invalid_request_error", Some("unsupported_endpoint"))
            }
            ApiError::BadRequest { .. } => ("invalid_request_error", None),
            ApiError::PayloadTooLarge { .. } => {
                ("invalid_request_error", Some("payload_too_large"))
            }
            ApiError::RequestTimeout { .. } => ("invalid_request_error", Some("request_timeout")),
            ApiError::Provider(e) => e.openai_type_and_code(),
            ApiError::RouteNotFound { .. } => ("invalid_request_error", Some("unknown_url")),
            ApiError::MethodNotAllowed { .. } => {
                ("invalid_request_error", Some("method_not_allowed"))
            }
            ApiError::ShuttingDown => ("server_error", Some("shutting_down")),
            ApiError::Overloaded { .. } => ("server_error", Some("overloaded")),
            ApiError::Internal => ("server_error", Some("internal_error")),
            ApiError::Guardrail(tollgate_policy::guard::GuardError::Blocked { .. }) => {
                ("invalid_request_error", Some("guardrail_blocked"))
            }
            ApiError::Guardrail(tollgate_policy::guard::GuardError::Failed { .. }) => {
                ("server_error", Some("guardrail_error"))
            }
            ApiError::Limit(tollgate_policy::limits::LimitError::Exceeded(_)) => {
                ("rate_limit_error", Some("rate_limit_exceeded"))
            }
            ApiError::Limit(tollgate_policy::limits::LimitError::Unavailable { .. }) => {
                ("server_error", Some("limit_store_unavailable"))
            }
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::BadRequest { param, .. } => *param,
            ApiError::ModelForbidden { .. }
            | ApiError::ModelNotFound { .. }
            | ApiError::WrongEndpoint { .. } => Some("model"),
            _ => None,
        }
    }

    /// The JSON body in the given shape (also used for in-stream error events).
    pub fn body(&self, shape: ApiShape) -> serde_json::Value {
        match shape {
            ApiShape::OpenAi => {
                let (kind, code) = self.openai_type_and_code();
                let param = match self {
                    ApiError::Provider(ProviderError::Unsupported { field, .. }) => {
                        Some(field.as_str())
                    }
                    _ => self.param(),
                };
                json!({"error": {
                    "message": self.to_string(),
                    "type": kind,
                    "param": param,
                    "code": code,
                }})
            }
            ApiShape::Databricks => json!({
                "error_code": error_code(self),
                "message": self.to_string(),
            }),
            ApiShape::Anthropic => {
                tollgate_translate::anthropic::error_body(self.status().as_u16(), &self.to_string())
            }
        }
    }

    pub fn into_response_shaped(self, shape: ApiShape) -> Response {
        let status = self.status();
        let mut resp = (status, axum::Json(self.body(shape))).into_response();
        if let ApiError::Provider(ProviderError::Status {
            retry_after: Some(secs),
            ..
        }) = &self
        {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        if let ApiError::Limit(e) = &self {
            e.apply_headers(resp.headers_mut());
        }
        if let ApiError::Overloaded { .. } = &self {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, ApiError::Auth(_)) {
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_shaped(ApiShape::default())
    }
}

/// Databricks' `error_code` for an error, by its HTTP status (the codes
/// the Databricks SDKs map to their exception types).
pub fn error_code(e: &ApiError) -> &'static str {
    match e.status() {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "INVALID_PARAMETER_VALUE",
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::FORBIDDEN => "PERMISSION_DENIED",
        StatusCode::NOT_FOUND if matches!(e, ApiError::RouteNotFound { .. }) => {
            "ENDPOINT_NOT_FOUND"
        }
        StatusCode::NOT_FOUND => "RESOURCE_DOES_NOT_EXIST",
        StatusCode::CONFLICT => "RESOURCE_CONFLICT",
        StatusCode::TOO_MANY_REQUESTS => "REQUEST_LIMIT_EXCEEDED",
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE => "TEMPORARILY_UNAVAILABLE",
        StatusCode::GATEWAY_TIMEOUT => "DEADLINE_EXCEEDED",
        s if s.is_client_error() => "BAD_REQUEST",
        _ => "INTERNAL_ERROR",
    }
}
