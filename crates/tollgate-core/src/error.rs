//! Errors every layer may return without knowing the gateway's error type
//! (which lives above them and renders in the caller's API shape).

/// The caller's request is malformed; `param` names the field when one is
/// to blame. Becomes a 400 `invalid_request_error` at the edge.
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
