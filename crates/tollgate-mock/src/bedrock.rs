//! The mock upstream's Bedrock face: `POST /model/{modelId}/converse` and
//! `/converse-stream`, the latter answering with a real binary
//! `application/vnd.amazon.eventstream`. Requests are translated to OpenAI's
//! shape, answered by the deterministic generator and translated back. With
//! `--require-key` the request must carry a SigV4 `Authorization` header
//! whose credential scope names that access key id, a date matching
//! `x-amz-date`, a region, and the `bedrock` service; given as
//! `KEYID:SECRET`, the signature itself is recomputed and must match.
//!
//! `x-mock-stream-error: <exceptionType>` (e.g. `throttlingException`) with
//! `x-mock-cut-after: N`: instead of breaking the connection after N chunks,
//! the stream ends with that exception frame, as Bedrock reports mid-stream
//! failures.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::generate;
use super::server::{admit_as, stream_response, Credential, Incoming, MockState, Reject};
use tollgate_core::sse::SseSplitter;
use tollgate_translate::bedrock as tr;
use tollgate_translate::bedrock_stream::{exception_frame, OpenAiToBedrock};

pub(super) fn routes() -> Router<Arc<MockState>> {
    Router::new().route("/model/{id}/{op}", post(converse))
}

/// Whether `Authorization` is a SigV4 header by access key `key`: credential
/// scope `key/<date of x-amz-date>/<region>/bedrock/aws4_request`, `host` and
/// `x-amz-date` signed. With `key` given as `KEYID:SECRET` the signature is
/// also recomputed (with `aws-sigv4`, over the method, the path as sent, the
/// signed headers and the body) and must match.
pub(super) fn sigv4_ok(headers: &HeaderMap, key: &str, raw_path: &str, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (key, secret) = match key.split_once(':') {
        Some((k, s)) => (k, Some(s)),
        None => (key, None),
    };
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
    let region = match parts.as_slice() {
        [k, d, region, "bedrock", "aws4_request"]
            if *k == key && date.starts_with(d) && d.len() == 8 && !region.is_empty() =>
        {
            *region
        }
        _ => return false,
    };
    if !(signed.contains(&"host") && signed.contains(&"x-amz-date")) {
        return false;
    }
    match secret {
        None => signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()),
        Some(secret) => {
            let expected = resign(
                headers,
                (key, secret),
                region,
                date,
                &signed,
                raw_path,
                body,
            );
            expected.as_deref() == Some(signature)
        }
    }
}

/// The signature the client should have computed.
fn resign(
    headers: &HeaderMap,
    (key, secret): (&str, &str),
    region: &str,
    date: &str,
    signed: &[&str],
    raw_path: &str,
    body: &[u8],
) -> Option<String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = header("x-amz-security-token").map(str::to_owned);
    let identity =
        aws_credential_types::Credentials::new(key, secret, token, None, "mock-upstream").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(amz_date(date)?)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    // The signer adds host, x-amz-date and the session token itself.
    let own = ["host", "x-amz-date", "x-amz-security-token"];
    let mut hs = Vec::new();
    for name in signed.iter().filter(|n| !own.contains(n)) {
        hs.push((*name, header(name)?));
    }
    let url = format!("http://{}{raw_path}", header("host")?);
    let req = SignableRequest::new("POST", &url, hs.into_iter(), SignableBody::Bytes(body)).ok()?;
    let (_, signature) = sign(req, &params).ok()?.into_parts();
    Some(signature)
}

/// `20261123T230000Z` → the instant.
fn amz_date(s: &str) -> Option<std::time::SystemTime> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if s.len() != 16 || s.get(8..9) != Some("T") || !s.ends_with('Z') {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let secs = num(9..11)? * 3600 + num(11..13)? * 60 + num(13..15)?;
    // Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = u64::try_from(days * 86_400 + secs).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(total))
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

/// One request as received: the decoded model id, the raw parts.
struct Received {
    version: http::Version,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
}

async fn admit(
    state: &MockState,
    id: &str,
    stream: bool,
    r: &Received,
) -> Result<(Value, super::Knobs), Response> {
    let kind = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    let path = format!("/model/{id}/{kind}");
    let req = Incoming {
        path: &path,
        version: r.version,
        headers: &r.headers,
        body: &r.body,
    };
    let cred = Credential::SigV4 {
        raw_path: r.uri.path(),
    };
    admit_as(state, &req, &cred, Some(id))
        .await
        .map(|(b, k)| (Value::Object(b), k))
        .map_err(error)
}

/// The `x-mock-stream-error` header: what a cut stream ends with.
pub(super) fn stream_error(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-mock-stream-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn request_id(o: &Value) -> HeaderValue {
    let id = o.get("id").and_then(Value::as_str).unwrap_or("mock");
    HeaderValue::from_str(id.trim_start_matches("chatcmpl-"))
        .unwrap_or_else(|_| HeaderValue::from_static("mock"))
}

async fn converse(
    state: State<Arc<MockState>>,
    Path((id, op)): Path<(String, String)>,
    version: http::Version,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stream = match op.as_str() {
        "converse" => false,
        "converse-stream" => true,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let r = Received {
        version,
        uri,
        headers,
        body,
    };
    answer(state, id, stream, r).await
}

async fn answer(
    State(state): State<Arc<MockState>>,
    id: String,
    stream: bool,
    r: Received,
) -> Response {
    let (b, knobs) = match admit(&state, &id, stream, &r).await {
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
    let exception = stream_error(&r.headers);
    let frames = generate::chat_stream(&o, &knobs).map(move |res| {
        let res = match (res, &exception) {
            (Err(_), Some(kind)) => {
                return Ok(exception_frame(
                    kind,
                    "mock upstream: forced stream exception",
                ));
            }
            (res, _) => res,
        };
        res.map(|bytes| {
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
    fn amz_dates() {
        let t = amz_date("20261123T230000Z").unwrap();
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_795_474_800);
        assert_eq!(amz_date("19700101T000000Z"), Some(std::time::UNIX_EPOCH));
        assert_eq!(amz_date("2026-11-23"), None);
    }

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
        assert!(sigv4_ok(&h, "AKIDEXAMPLE", "/model/m/converse", b""));
        assert!(!sigv4_ok(&h, "AKIDOTHER", "/model/m/converse", b""));
        // With the secret, the made-up signature no longer passes.
        assert!(!sigv4_ok(
            &h,
            "AKIDEXAMPLE:secret",
            "/model/m/converse",
            b""
        ));
        h.insert("x-amz-date", HeaderValue::from_static("20261124T000000Z"));
        assert!(!sigv4_ok(&h, "AKIDEXAMPLE", "/model/m/converse", b""));
    }
}
