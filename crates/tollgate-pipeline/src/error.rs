//! Errors as the caller sees them. The error itself is core's
//! [`GatewayError`] (every area converts into it beside its own error
//! type); this module holds the pipeline's own refusals (unknown model,
//! access denied, …) and their log lines. The pipeline returns them typed;
//! the server crate (`api/error.rs`) renders them in the caller's shape.

pub use tollgate_core::error::{ApiShape, ErrorKind, GatewayError};
use tollgate_policy::auth::{policy, Denial, Principal};

/// A policy denial for `model`; the message names the principal and the
/// groups and tenant the policy saw (never the credential).
pub fn forbidden(model: &str, principal: &Principal, denial: Denial) -> GatewayError {
    let label = match denial {
        Denial::TenantMismatch => "tenant_mismatch",
        _ => "model_forbidden",
    };
    let detail = policy::describe(principal);
    GatewayError::new(
        ErrorKind::Permission,
        403,
        label,
        format!(
            "model `{model}` is not granted to principal `{}` ({detail})",
            principal.subject
        ),
    )
    .with_code("model_not_allowed")
    .with_param("model")
    .with_detail(format!("{}: {detail}", denial.label()))
}

pub fn model_not_found(model: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        404,
        "model_not_found",
        format!("the model `{model}` does not exist or is not served by this gateway"),
    )
    .with_code("model_not_found")
    .with_param("model")
}

pub fn prompt_not_found(name: &str, version: Option<u32>) -> GatewayError {
    let version = version.map(|v| format!(" version {v}")).unwrap_or_default();
    GatewayError::new(
        ErrorKind::InvalidRequest,
        404,
        "prompt_not_found",
        format!("the prompt template `{name}`{version} does not exist"),
    )
    .with_code("prompt_not_found")
}

pub fn wrong_endpoint(model: &str, endpoint: &'static str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        400,
        "wrong_endpoint",
        format!("the model `{model}` does not serve {endpoint}"),
    )
    .with_code("unsupported_endpoint")
    .with_param("model")
}

pub fn payload_too_large(limit: usize) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        413,
        "payload_too_large",
        format!("request body exceeds the limit of {limit} bytes"),
    )
    .with_code("payload_too_large")
}

/// The body did not arrive within `server.timeouts.body_read` (408).
pub fn request_timeout(after: std::time::Duration) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        408,
        "request_timeout",
        format!(
            "the request body was not received within {}ms (server.timeouts.body_read)",
            after.as_millis()
        ),
    )
    .with_code("request_timeout")
}

/// `server.max_concurrent_requests` are in flight: shed at the edge (503,
/// `Retry-After: 1`).
pub fn overloaded(limit: usize) -> GatewayError {
    GatewayError::new(
        ErrorKind::Server,
        503,
        "overloaded",
        format!("the gateway is at its limit of {limit} concurrent requests; retry shortly"),
    )
    .with_code("overloaded")
    .with_retry_after(1)
}

pub fn route_not_found(path: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        404,
        "route_not_found",
        format!("not found: {path}"),
    )
    .with_code("unknown_url")
}

pub fn method_not_allowed(method: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        405,
        "method_not_allowed",
        format!("method {method} is not allowed on this route"),
    )
    .with_code("method_not_allowed")
}

/// Logs authentication and authorization refusals with their reason.
pub fn log_denial(err: &GatewayError, request_id: &str) {
    match err.status() {
        401 => tracing::info!(request_id, reason = err.label(), detail = %err,
            "authentication failed"),
        403 => tracing::info!(request_id, reason = err.label(),
            policy = err.detail().unwrap_or(""), detail = %err, "access denied"),
        _ => {}
    }
}

/// Logs, at warn with the request id, the detail of a server-side error
/// that the caller's message leaves out (upstream addresses, OS errors).
pub fn log_detail(err: &GatewayError, request_id: &str) {
    if err.status() >= 500 {
        if let Some(detail) = err.detail() {
            tracing::warn!(
                request_id,
                error = err.label(),
                detail,
                "upstream error detail"
            );
        }
    }
}
