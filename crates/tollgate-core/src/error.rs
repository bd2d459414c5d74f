//! The gateway's one error type, in the manner of pingora-error: what went
//! wrong (`ErrorKind`, which decides the error's family in every API
//! shape), the status the caller gets, a low-cardinality label for metrics,
//! logs and the ledger, a stable code, the caller-safe message, a retry
//! hint, headers to send with it and the source kept for logs.
//!
//! Every area keeps its own `thiserror` enum and converts into
//! [`GatewayError`] in its own crate (`impl From<AuthError> for
//! GatewayError` lives beside `AuthError`). Nothing here knows a response
//! shape: [`ApiShape`] names the caller's API and the JSON and HTTP
//! rendering happens where responses are built.

use std::borrow::Cow;
use std::fmt;

/// The API dialect the caller speaks; errors are rendered in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiShape {
    #[default]
    OpenAi,
    /// Databricks REST: `{"error_code":"…","message":"…"}`.
    Databricks,
    /// Anthropic Messages: `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

/// The family of an error, as every API shape has one: OpenAI's `type`,
/// and with the status, Anthropic's type and Databricks' `error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's request is at fault (400, 404, 405, 413, and upstream
    /// 4xx passed through).
    InvalidRequest,
    /// No usable credential (401).
    Authentication,
    /// Authenticated but not allowed (403).
    Permission,
    /// A rate limit, here or upstream (429).
    RateLimit,
    /// The gateway or an upstream failed (5xx).
    Server,
}

impl ErrorKind {
    /// OpenAI's `error.type`.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Server => "server_error",
        }
    }
}

/// An error the caller sees. `Display` is the caller-safe message. One
/// pointer wide (the fields are boxed), so a `Result` carrying it through
/// the phases stays small.
#[derive(Debug)]
pub struct GatewayError(Box<Repr>);

#[derive(Debug)]
struct Repr {
    kind: ErrorKind,
    status: u16,
    label: &'static str,
    code: Option<&'static str>,
    message: String,
    param: Option<Cow<'static, str>>,
    retryable: bool,
    retry_after_s: Option<u64>,
    headers: Option<Box<http::HeaderMap>>,
    /// Server-side detail for the log line (never sent to the caller).
    detail: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl GatewayError {
    /// An error of `kind` answered with `status`, counted as `label`.
    pub fn new(
        kind: ErrorKind,
        status: u16,
        label: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self(Box::new(Repr {
            kind,
            status,
            label,
            code: None,
            message: message.into(),
            param: None,
            retryable: false,
            retry_after_s: None,
            headers: None,
            detail: None,
            source: None,
        }))
    }

    /// A malformed request (400); `param` names the field to blame.
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        let mut e = Self::new(ErrorKind::InvalidRequest, 400, "bad_request", message);
        e.0.param = param.map(Cow::Borrowed);
        e
    }

    /// A fault of the gateway's own (500); the message says nothing more.
    pub fn internal() -> Self {
        Self::new(ErrorKind::Server, 500, "internal", "internal error").with_code("internal_error")
    }

    /// The stable code (OpenAI's `error.code`).
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.0.code = Some(code);
        self
    }

    /// The request field to blame (OpenAI's `error.param`).
    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.0.param = Some(param.into());
        self
    }

    /// The same request may succeed if sent again.
    pub fn retryable(mut self) -> Self {
        self.0.retryable = true;
        self
    }

    /// `Retry-After`, in seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after_s = Some(secs);
        self.0.retryable = true;
        self
    }

    /// Headers sent with the error (rate-limit state, challenges).
    pub fn with_headers(mut self, headers: http::HeaderMap) -> Self {
        self.0.headers = Some(Box::new(headers));
        self
    }

    /// Detail for the server's log only.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// The underlying error, kept for the log.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// Low-cardinality label for metrics, logs and the ledger.
    pub fn label(&self) -> &'static str {
        self.0.label
    }

    pub fn code(&self) -> Option<&'static str> {
        self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn param(&self) -> Option<&str> {
        self.0.param.as_deref()
    }

    /// Whether the same request may succeed if sent again.
    pub fn is_retryable(&self) -> bool {
        self.0.retryable
    }

    pub fn retry_after_s(&self) -> Option<u64> {
        self.0.retry_after_s
    }

    pub fn headers(&self) -> Option<&http::HeaderMap> {
        self.0.headers.as_deref()
    }

    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The caller's request is malformed; `param` names the field when one is
/// to blame. For layers that return their own small error; it becomes a
/// 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<&'static str>,
}

impl InvalidRequest {
    pub fn new(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            message: message.into(),
            param,
        }
    }
}

impl From<InvalidRequest> for GatewayError {
    fn from(e: InvalidRequest) -> Self {
        GatewayError::invalid(e.message, e.param)
    }
}

/// The request body did not arrive in time (`server.timeouts.body_read`):
/// the edge's body wrapper yields it as the body's error, and whoever reads
/// the body finds it in the error's source chain and answers 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body was not received within {}ms", after.as_millis())]
pub struct BodyTimeout {
    pub after: std::time::Duration,
}

impl BodyTimeout {
    /// The `BodyTimeout` in `e` or anywhere in its source chain.
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(t) = err.downcast_ref::<BodyTimeout>() {
                return Some(t);
            }
            cur = err.source();
        }
        None
    }
}

/// OS error codes for "too many open files": the process (`EMFILE`) or the
/// whole system (`ENFILE`) is out of file descriptors.
#[cfg(unix)]
const FD_EXHAUSTED: &[i32] = &[24, 23];
#[cfg(windows)]
const FD_EXHAUSTED: &[i32] = &[10024]; // WSAEMFILE
#[cfg(not(any(unix, windows)))]
const FD_EXHAUSTED: &[i32] = &[];

/// Whether `e`, or an error in its source chain, is the OS refusing a new
/// file descriptor (`EMFILE` / `ENFILE`, "Too many open files").
pub fn is_fd_exhausted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(code) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            if FD_EXHAUSTED.contains(&code) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reads_back() {
        let e = GatewayError::invalid("`model` is required", Some("model"));
        assert_eq!(
            (e.status(), e.label(), e.param()),
            (400, "bad_request", Some("model"))
        );
        assert_eq!(e.kind().openai_type(), "invalid_request_error");
        assert!(!e.is_retryable());
        let e = GatewayError::new(ErrorKind::RateLimit, 429, "rate_limited", "slow down")
            .with_code("rate_limit_exceeded")
            .with_retry_after(3);
        assert_eq!((e.retry_after_s(), e.is_retryable()), (Some(3), true));
        assert_eq!(e.to_string(), "slow down");
        let e = GatewayError::internal().with_source(std::io::Error::other("disk"));
        assert_eq!(e.to_string(), "internal error");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn recognises_fd_exhaustion_in_a_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Connect(#[source] std::io::Error);

        let emfile = std::io::Error::from_raw_os_error(24);
        assert!(is_fd_exhausted(&emfile));
        assert!(is_fd_exhausted(&Connect(
            std::io::Error::from_raw_os_error(23)
        )));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_fd_exhausted(&Connect(refused)));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] BodyTimeout);

    #[test]
    fn finds_a_body_timeout_in_the_chain() {
        let t = BodyTimeout {
            after: std::time::Duration::from_millis(300),
        };
        assert_eq!(BodyTimeout::find(&Outer(t)), Some(&t));
        assert_eq!(
            t.to_string(),
            "the request body was not received within 300ms"
        );
        let other = InvalidRequest::new("x", None);
        assert_eq!(BodyTimeout::find(&other), None);
    }
}

/// Why a config could not be turned into its runtime form (a provider's
/// client, a credential, a rule, a whole snapshot). Reported at start and
/// reload, in the log or on the command line; never seen by a caller, so it
/// is no `GatewayError`. The message names where the problem is, outermost
/// first (`provider openai: auth.token_url is required`); a library error
/// behind it stays reachable as its `source`.
#[derive(Debug)]
pub struct BuildError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BuildError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A library's error, its text as the message.
    pub fn of(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// Puts where the problem is in front: `{what}: {message}`.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A message written where the problem was found (`format!` at a check).
impl From<String> for BuildError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for BuildError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}
