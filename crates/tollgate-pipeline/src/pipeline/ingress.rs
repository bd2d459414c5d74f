//! Ingress: the body read under the size limit. Parsing and checking it
//! (model, stream, the endpoint's required field) is pure and lives in
//! `tollgate_core::ingress`, re-exported here, so it is fuzzed without the
//! pipeline (fuzz/fuzz_targets/ingress.rs).

use axum::body::Body;
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::error::GatewayError;

pub(super) use tollgate_core::ingress::check_numbers;
pub use tollgate_core::ingress::{parse, Parsed, ML_PAYLOAD_KEYS};

pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, GatewayError> {
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
