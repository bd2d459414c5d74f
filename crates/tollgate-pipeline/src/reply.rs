//! What the pipeline answers, typed: a status, headers and a body that is
//! whole, a stream of events, or a relayed upstream body; or the failure
//! that ended the call before its answer began. Nothing here knows a
//! response shape: the server crate (`api/`) turns a `Reply` into HTTP and
//! renders every `GatewayError`, before or inside a stream, in the
//! caller's shape.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use http::{HeaderMap, StatusCode};

use crate::error::GatewayError;

/// A call's answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

/// What follows the headers.
pub enum Body {
    /// The whole body (JSON, or what the upstream sent), sent with its length.
    Full(Bytes),
    /// A model call's event stream, already in the caller's shape. A failure
    /// after the answer began is its last item.
    Events(BoxStream<'static, Result<Bytes, StreamError>>),
    /// A forwarded upstream body relayed as it arrives; an error cuts the
    /// connection (the status was sent, and nothing in the upstream's own
    /// format could say more).
    Relay(BoxStream<'static, Result<Bytes, std::io::Error>>),
}

/// A stream's failure after the answer began: the status cannot change any
/// more, so the edge ends the stream with one error event in the caller's
/// shape.
pub struct StreamError {
    /// Events approved in the same read before the failure, in the
    /// caller's shape: they leave together with the error event.
    pub before: Bytes,
    pub error: GatewayError,
    /// The Responses API numbers its events: the number the error event
    /// takes (`None` for other shapes).
    pub sequence: Option<u64>,
}

/// A call that failed before its answer began: the error, which the edge
/// renders in the caller's shape, and headers sent after the error's own
/// (the resolved model, once routing chose one).
pub struct Failed {
    pub error: GatewayError,
    pub headers: HeaderMap,
}

impl From<GatewayError> for Failed {
    fn from(error: GatewayError) -> Self {
        Self {
            error,
            headers: HeaderMap::new(),
        }
    }
}

impl Reply {
    /// A whole body.
    pub fn full(status: StatusCode, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers,
            body: Body::Full(body.into()),
        }
    }

    /// A JSON value, `200` with `content-type: application/json`.
    pub fn json(value: &impl serde::Serialize) -> Self {
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let body = serde_json::to_vec(value).unwrap_or_default();
        Self::full(StatusCode::OK, headers, body)
    }
}
