//! What the translating providers (`gemini`, `bedrock`) share: turning an
//! upstream byte stream into OpenAI chunk SSE through a stateful translator,
//! and turning translation faults and refusals into `ProviderError`s.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};

use super::ProviderError;
use crate::upstream_text::error_chain;
use tollgate_translate::{Fault, Unsupported};

/// A streaming translator: upstream bytes in, OpenAI SSE bytes out.
pub(super) trait StreamTranslator: Send + 'static {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, Fault>;
    /// The upstream ended cleanly: the closing bytes (`[DONE]`), or a fault
    /// when it ended too early.
    fn finish(&mut self) -> Result<Vec<u8>, Fault>;
}

pub(super) fn fault(provider: &str, f: Fault) -> ProviderError {
    let provider = provider.to_string();
    match f {
        Fault::Upstream {
            status,
            message,
            retry_after,
        } => ProviderError::Status {
            provider,
            status,
            message,
            retry_after,
        },
        Fault::Protocol(message) => ProviderError::Protocol { provider, message },
        Fault::Interrupted(message) => ProviderError::StreamInterrupted { provider, message },
    }
}

pub(super) fn unsupported(provider: &str, u: Unsupported) -> ProviderError {
    ProviderError::Unsupported {
        provider: provider.to_string(),
        field: u.field,
        message: u.message,
    }
}

pub(super) fn bad_json(provider: &str, e: serde_json::Error) -> ProviderError {
    ProviderError::Protocol {
        provider: provider.to_string(),
        message: format!("response is not JSON: {e}"),
    }
}

/// JSON bytes of a value (writing a `Value` into a Vec cannot fail).
pub(super) fn to_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub(super) fn now() -> u64 {
    tollgate_core::clock::wall_secs()
}

struct State<S, T> {
    upstream: S,
    translator: T,
    provider: String,
    ended: bool,
}

/// Runs `upstream` through `translator`; each upstream read yields the
/// OpenAI bytes it completes (none are held back), errors end the stream.
pub(super) fn translate_stream<S, T>(
    provider: &str,
    upstream: S,
    translator: T,
) -> BoxStream<'static, Result<Bytes, ProviderError>>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
    T: StreamTranslator,
{
    let state = State {
        upstream,
        translator,
        provider: provider.to_string(),
        ended: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if st.ended {
                return None;
            }
            let out = match st.upstream.next().await {
                Some(Ok(chunk)) => st.translator.push(&chunk),
                Some(Err(e)) => {
                    st.ended = true;
                    let e = ProviderError::StreamInterrupted {
                        provider: st.provider.clone(),
                        message: error_chain(&e),
                    };
                    return Some((Err(e), st));
                }
                None => {
                    st.ended = true;
                    st.translator.finish()
                }
            };
            match out {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Some((Ok(Bytes::from(bytes)), st)),
                Err(f) => {
                    st.ended = true;
                    let e = fault(&st.provider, f);
                    return Some((Err(e), st));
                }
            }
        }
    })
    .boxed()
}

/// Sends `req` with the caller headers `forward` allows and the config's
/// static headers; a non-2xx answer comes back as the error and its body.
pub(super) async fn send(
    provider: &str,
    first_byte: std::time::Duration,
    mut req: reqwest::RequestBuilder,
    forward: &[String],
    client_headers: &http::HeaderMap,
    static_headers: &http::HeaderMap,
) -> Result<reqwest::Response, (ProviderError, Bytes)> {
    if !forward.is_empty() {
        for (name, value) in client_headers {
            if super::header_allowed(forward, name.as_str()) {
                req = req.header(name, value);
            }
        }
    }
    for (name, value) in static_headers {
        req = req.header(name, value);
    }
    let (resp, secrets) = super::transport::send_redacted(provider, first_byte, req)
        .await
        .map_err(|e| (e, Bytes::new()))?;
    if !resp.status().is_success() {
        // AWS names the error type in a header (`ThrottlingException:…`).
        let kind = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(':').next())
            .map(str::to_owned);
        let (mut e, body) =
            super::transport::status_error(provider, http::Response::from(resp), &secrets).await;
        if let (ProviderError::Status { message, .. }, Some(kind)) = (&mut e, kind) {
            *message = format!("{kind}: {message}");
        }
        return Err((e, body));
    }
    Ok(resp)
}

/// The whole body of a successful answer, at most `limit` bytes
/// (`max_response_bytes`; past it the attempt fails).
pub(super) async fn body(
    provider: &str,
    resp: reqwest::Response,
    limit: usize,
) -> Result<Bytes, ProviderError> {
    super::transport::read_limited(provider, http::Response::from(resp), limit).await
}
