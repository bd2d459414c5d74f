//! Ingress: the body read under the size limit. Parsing and checking it
//! (model, stream, the endpoint's required field) is pure and lives in
//! `tollgate_core::ingress`, re-exported here, so it is fuzzed without the
//! pipeline (fuzz/fuzz_targets/ingress.rs).

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

use crate::error::GatewayError;

pub(super) use tollgate_core::ingress::check_numbers;
pub use tollgate_core::ingress::{parse, Parsed, ML_PAYLOAD_KEYS};

/// A body error of any kind (the edge's read deadline, a cut connection).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body could not be read: the edge's own error, shown as
/// it is and kept as the source (where `BodyTimeout` is found). A type of
/// its own rather than `BoxError`, whose `'static` the compiler loses when
/// it proves the MCP handler's future `Send`.
#[derive(Debug)]
pub struct BodyError(BoxError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A request's body as the pipeline takes it: any HTTP body of bytes, so
/// the pipeline does not depend on the edge's framework (the edge hands
/// its own body over through [`request_body`]).
pub type RequestBody = UnsyncBoxBody<Bytes, BodyError>;

/// Any HTTP body of bytes as a [`RequestBody`].
pub fn request_body<B>(body: B) -> RequestBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    UnsyncBoxBody::new(body.map_err(|e| BodyError(e.into())))
}

/// The whole body, refused past `limit` bytes (413, at once when its
/// `Content-Length` says so).
pub async fn read_body(
    headers: &HeaderMap,
    body: RequestBody,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(crate::error::payload_too_large(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(crate::error::payload_too_large(limit))
        }
        Err(e) => match tollgate_core::error::BodyTimeout::find(&*e) {
            // The edge's `server.timeouts.body_read` ran out.
            Some(t) => Err(crate::error::request_timeout(t.after)),
            None => Err(GatewayError::invalid(
                format!("could not read request body: {e}"),
                None,
            )),
        },
    }
}
