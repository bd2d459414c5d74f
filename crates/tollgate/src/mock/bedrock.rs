//! The mock upstream's Bedrock face: `POST /model/{modelId}/converse` and
//! `/converse-stream`, the latter answering with a real binary
//! `application/vnd.amazon.eventstream`. Requests are translated to OpenAI's
//! shape, answered by the deterministic generator and translated back. With
//! `--require-key` the request must carry a SigV4 `Authorization` header
//! whose credential scope names that access key id, a date matching
//! `x-amz-date`, a region, and the `bedrock` service (the signature itself is
//! not recomputed: the mock does not know the secret).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use super::generate;
use super::server::{admit_as, stream_response, Credential, Incoming, MockState, Reject};
use crate::pipeline::sse::SseSplitter;
use crate::translate::bedrock as tr;
use crate::translate::bedrock_stream::OpenAiToBedrock;

pub(super) fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/model/{id}/converse", post(converse))
        .route("/model/{id}/converse-stream", post(converse_stream))
}

/// Whether `Authorization` is a well-formed SigV4 header for access key `key`.
pub(super) fn sigv4_ok(headers: &HeaderMap, key: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(auth), Some(date)) = (header("authorization"), header("x-amz-date")) else {
        return false;
    };
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return false;
    };
    let field = |name: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    };
    let (Some(scope), Some(signed), Some(signature)) = (
        field("Credential"),
        field("SignedHeaders"),
        field("Signature"),
    ) else {
        return false;
    };
    let parts: Vec<&str> = scope.split('/').collect();
    let signed: Vec<&str> = signed.split(';').collect();
    matches!(parts.as_slice(), [k, d, region, "bedrock", "aws4_request"]
        if *k == key && date.starts_with(d) && d.len() == 8 && !region.is_empty())
        && signed.contains(&"host")
        && signed.contains(&"x-amz-date")
        && signature.len() == 64
        && signature.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Bedrock's error shape: `{"message"}` with the type in `x-amzn-ErrorType`.
fn error(r: Reject) -> Response {
    let kind = match r.status.as_u16() {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    };
    let mut resp = (r.status, Json(json!({"message": r.message}))).into_response();
    resp.headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(kind));
    resp
}

async fn admit(
    state: &MockState,
    path: &str,
    version: http::Version,
    headers: &HeaderMap,
    body: &Bytes,
    model: &str,
) -> Result<(Value, super::Knobs), Response> {
    let req = Incoming {
        path,
        version,
        headers,
        body,
    };
    admit_as(state, &req, &Credential::SigV4, Some(model))
        .await
        .map(|(b, k)| (Value::Object(b), k))
        .map_err(error)
}

fn request_id(o: &Value) -> HeaderValue {
    let id = o.get("id").and_then(Value::as_str).unwrap_or("mock");
    HeaderValue::from_str(id.trim_start_matches("chatcmpl-"))
        .unwrap_or_else(|_| HeaderValue::from_static("mock"))
}

async fn converse(
    state: State<Arc<MockState>>,
    Path(id): Path<String>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state, id, false, version, headers, body).await
}

async fn converse_stream(
    state: State<Arc<MockState>>,
    Path(id): Path<String>,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state, id, true, version, headers, body).await
}

async fn answer(
    State(state): State<Arc<MockState>>,
    id: String,
    stream: bool,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!(
        "/model/{id}/{}",
        if stream {
            "converse-stream"
        } else {
            "converse"
        }
    );
    let (b, knobs) = match admit(&state, &path, version, &headers, &body, &id).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let o = tr::to_openai_request(&b, &id, stream);
    let o = o.as_object().cloned().unwrap_or_default();
    if !stream {
        let answer = generate::chat_json(&o, &knobs);
        let mut resp = Json(tr::from_openai_response(&answer)).into_response();
        resp.headers_mut()
            .insert("x-amzn-requestid", request_id(&answer));
        return resp;
    }
    let mut splitter = SseSplitter::default();
    let mut translator = OpenAiToBedrock::default();
    let frames = generate::chat_stream(&o, &knobs).map(move |r| {
        r.map(|bytes| {
            let mut out = Vec::new();
            for ev in splitter.push(&bytes) {
                for f in translator.event(&ev.data()) {
                    out.extend_from_slice(&f);
                }
            }
            Bytes::from(out)
        })
    });
    stream_response(frames.boxed(), "application/vnd.amazon.eventstream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigv4_header_checks() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-date", HeaderValue::from_static("20261123T230000Z"));
        h.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        );
        assert!(sigv4_ok(&h, "AKIDEXAMPLE"));
        assert!(!sigv4_ok(&h, "AKIDOTHER"));
        h.insert("x-amz-date", HeaderValue::from_static("20261124T000000Z"));
        assert!(!sigv4_ok(&h, "AKIDEXAMPLE"));
    }
}
