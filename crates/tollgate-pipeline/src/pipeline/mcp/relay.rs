//! A request's answer as an event stream: once an upstream says something
//! for the caller while the request runs (a progress or log notification,
//! a sampling or elicitation request), the answer becomes a stream (the
//! edge sends it as `text/event-stream`, Streamable HTTP's answer to a
//! POST): each relayed message as it arrives, and the request's own answer
//! the last item. The request's work runs inside the stream, so a caller
//! that leaves drops it (the record then says 499, as for a model stream).

use std::future::Future;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc::Receiver;

use super::{Outcome, Relayed};

/// The stream: `first`, what else arrives on `rx`, then the answer `work`
/// ends with.
pub(super) fn stream<F>(first: String, rx: Receiver<String>, work: F) -> BoxStream<'static, Relayed>
where
    F: Future<Output = Outcome> + Send + Unpin + 'static,
{
    stream::unfold(Some((Some(first), rx, work)), |state| async move {
        let (first, mut rx, mut work) = state?;
        if let Some(msg) = first {
            return Some((vec![Relayed::Message(msg)], Some((None, rx, work))));
        }
        tokio::select! {
            biased;
            Some(msg) = rx.recv() => Some((vec![Relayed::Message(msg)], Some((None, rx, work)))),
            outcome = &mut work => {
                // What arrived just before the answer still goes first.
                let mut out = Vec::new();
                while let Ok(msg) = rx.try_recv() {
                    out.push(Relayed::Message(msg));
                }
                out.push(Relayed::Last(outcome));
                Some((out, None))
            }
        }
    })
    .flat_map(stream::iter)
    .boxed()
}
