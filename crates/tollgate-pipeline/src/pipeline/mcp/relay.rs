//! A request's answer as an event stream: once an upstream says something
//! for the caller while the request runs (a progress or log notification,
//! a sampling or elicitation request), the answer becomes `text/event-stream`
//! (Streamable HTTP's answer to a POST): each relayed message is an SSE
//! `message` event as it arrives, and the JSON-RPC answer the last one. The
//! request's work runs inside the stream, so a caller that leaves drops it
//! (the record then says 499, as for a model stream).

use std::future::Future;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::mpsc::Receiver;

/// The event stream: `first`, what else arrives on `rx`, then the answer
/// `work` ends with.
pub(super) fn stream<F>(first: String, rx: Receiver<String>, work: F) -> Response
where
    F: Future<Output = Response> + Send + Unpin + 'static,
{
    let events = stream::unfold(Some((Some(first), rx, work)), |state| async move {
        let (first, mut rx, mut work) = state?;
        if let Some(msg) = first {
            return Some((Ok(event(&msg)), Some((None, rx, work))));
        }
        tokio::select! {
            biased;
            Some(msg) = rx.recv() => Some((Ok(event(&msg)), Some((None, rx, work)))),
            resp = &mut work => {
                // What arrived just before the answer still goes first.
                let mut out = Vec::new();
                while let Ok(msg) = rx.try_recv() {
                    out.extend_from_slice(&event(&msg));
                }
                out.extend_from_slice(&last(resp).await);
                Some((Ok::<_, std::convert::Infallible>(Bytes::from(out)), None))
            }
        }
    });
    super::listen::event_stream(Body::from_stream(events))
}

/// One JSON-RPC message (one line of JSON) as an SSE event.
fn event(json: &str) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The answer's JSON body (every MCP answer is built whole) as the last
/// event; its status and headers can no longer be sent.
async fn last(resp: Response) -> Bytes {
    match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
        Ok(body) if !body.is_empty() => event(&String::from_utf8_lossy(&body)),
        _ => Bytes::new(),
    }
}
