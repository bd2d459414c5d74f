//! What can go wrong talking to an upstream. Messages name the provider and
//! the upstream status, never a credential.

use http::StatusCode;
use tollgate_core::error::{ErrorKind, GatewayError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("upstream {provider} could not be reached: {message}")]
    Connect { provider: String, message: String },
    #[error("upstream {provider} timed out ({stage} timeout)")]
    Timeout {
        provider: String,
        stage: &'static str,
    },
    #[error("upstream {provider} returned {status}: {message}")]
    Status {
        provider: String,
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    #[error("upstream {provider} sent an invalid response: {message}")]
    Protocol { provider: String, message: String },
    /// A non-streamed answer longer than the provider's `max_response_bytes`;
    /// the read stopped at the limit.
    #[error(
        "upstream {provider} response exceeded the limit of {limit} bytes (max_response_bytes)"
    )]
    TooLarge { provider: String, limit: usize },
    #[error("upstream {provider} stream ended before completion: {message}")]
    StreamInterrupted { provider: String, message: String },
    /// The gateway could not obtain its own upstream credential (token
    /// endpoint down, rejected client, missing caller token). The message
    /// never contains a secret; `public` is the part a caller may see (no
    /// endpoint URL, address, path or OS error).
    #[error("upstream {provider} credentials unavailable: {message}")]
    Credentials {
        provider: String,
        public: String,
        message: String,
    },
    /// The request holds something the provider's API cannot express
    /// (`field` is the OpenAI parameter path); the caller's to fix.
    #[error("{message} (provider {provider})")]
    Unsupported {
        provider: String,
        field: String,
        message: String,
    },
    /// The egress allowlist refused the call (its URL, a redirect, or the
    /// addresses its name resolved to); nothing was sent.
    #[error("upstream {provider}: {denied}")]
    Egress {
        provider: String,
        denied: tollgate_net::EgressDenied,
    },
}

impl ProviderError {
    /// The status the caller sees. Upstream 429 and the client-side 4xx that
    /// are the caller's to fix pass through; an upstream 401/403 is the
    /// gateway's credential problem, so the caller gets 502.
    pub fn status(&self) -> StatusCode {
        match self {
            ProviderError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProviderError::Unsupported { .. } => StatusCode::BAD_REQUEST,
            ProviderError::Status { status, .. } => match *status {
                400 | 404 | 409 | 413 | 422 | 429 => {
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
                }
                _ => StatusCode::BAD_GATEWAY,
            },
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            ProviderError::Connect { .. } => "upstream_connect",
            ProviderError::Timeout { .. } => "upstream_timeout",
            ProviderError::Status { status: 429, .. } => "upstream_rate_limited",
            ProviderError::Status { .. } => "upstream_status",
            ProviderError::Protocol { .. } => "upstream_protocol",
            ProviderError::TooLarge { .. } => "upstream_too_large",
            ProviderError::StreamInterrupted { .. } => "upstream_stream_interrupted",
            ProviderError::Credentials { .. } => "upstream_credentials",
            ProviderError::Unsupported { .. } => "unsupported_field",
            ProviderError::Egress { .. } => "egress_denied",
        }
    }

    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            ProviderError::Protocol { .. }
            | ProviderError::TooLarge { .. }
            | ProviderError::Credentials { .. }
            | ProviderError::Unsupported { .. }
            | ProviderError::Egress { .. } => false,
            _ => true,
        }
    }

    /// The error's family (OpenAI `type`) and stable code.
    pub fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            ProviderError::Timeout { .. } => (ErrorKind::Server, "upstream_timeout"),
            ProviderError::Status { status: 429, .. } => {
                (ErrorKind::RateLimit, "rate_limit_exceeded")
            }
            ProviderError::Status { status, .. } if self.status().as_u16() == *status => {
                (ErrorKind::InvalidRequest, "upstream_rejected")
            }
            ProviderError::StreamInterrupted { .. } => (ErrorKind::Server, "stream_interrupted"),
            ProviderError::Credentials { .. } => (ErrorKind::Server, "upstream_credentials"),
            ProviderError::TooLarge { .. } => (ErrorKind::Server, "upstream_too_large"),
            ProviderError::Egress { .. } => (ErrorKind::Server, "egress_denied"),
            ProviderError::Unsupported { .. } => {
                (ErrorKind::InvalidRequest, "unsupported_parameter")
            }
            _ => (ErrorKind::Server, "upstream_error"),
        }
    }
}

impl ProviderError {
    /// What the caller is told: a stable, actionable sentence. Transport
    /// and protocol details (upstream URLs and addresses, OS and decoder
    /// errors) stay in the log (`GatewayError::detail`).
    fn caller_message(&self) -> Option<String> {
        match self {
            // Descriptor exhaustion is the gateway's own state, said
            // plainly (docs/hardening.md); the OS text stays in the log.
            ProviderError::Connect { provider, message }
                if message.contains("Too many open files") =>
            {
                Some(format!(
                    "upstream {provider} could not be reached: the gateway has Too many open files"
                ))
            }
            ProviderError::Connect { provider, .. } => Some(format!(
                "upstream {provider} could not be reached; try again later"
            )),
            ProviderError::Protocol { provider, .. } => Some(format!(
                "upstream {provider} sent a response the gateway could not read"
            )),
            ProviderError::StreamInterrupted { provider, .. } => Some(format!(
                "upstream {provider} stream ended before completion; retry the request"
            )),
            ProviderError::Egress { provider, denied } => {
                Some(format!("upstream {provider}: {}", denied.public()))
            }
            ProviderError::Credentials {
                provider, public, ..
            } => Some(format!(
                "upstream {provider} credentials unavailable: {public}"
            )),
            ProviderError::Timeout {
                provider,
                stage: DEADLINE,
            } => Some(format!(
                "the model's deadline ran out before an answer (last tried upstream {provider})"
            )),
            _ => None,
        }
    }
}

/// `ProviderError::Timeout`'s stage when the request's overall deadline
/// (a virtual model's `deadline`), not the provider's own timeout, ran out.
pub const DEADLINE: &str = "deadline";

impl From<ProviderError> for GatewayError {
    fn from(e: ProviderError) -> Self {
        let (kind, code) = e.kind_and_code();
        let mut out = match e.caller_message() {
            Some(message) => GatewayError::new(kind, e.status().as_u16(), e.label(), message)
                .with_detail(e.to_string()),
            None => GatewayError::new(kind, e.status().as_u16(), e.label(), e.to_string()),
        }
        .with_code(code);
        if e.retryable() {
            out = out.retryable();
        }
        match e {
            ProviderError::Status {
                retry_after: Some(secs),
                ..
            } => out.with_retry_after(secs),
            ProviderError::Unsupported { field, .. } => out.with_param(field),
            _ => out,
        }
    }
}
