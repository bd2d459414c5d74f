//! hyper's own answers to a request head it cannot parse, put in the
//! caller's shape. hyper answers a malformed request line or header line
//! (400), a request target over its limit (414) and a header section over
//! its limits (431) itself, with an empty body, and offers no hook for it;
//! the connection's socket (`conn.rs`) keeps the first [`HEAD_KEPT`] bytes
//! of each request head as it reads them, recognises that answer among the
//! bytes hyper writes, and writes `api::protocol::answer` in its place.
//!
//! hyper's automatic answer is told apart from a response the router made
//! by its exact form: status 400, 414 or 431 followed directly by
//! `connection: close`, `content-length: 0` and `date` (an empty header map
//! and no body; every data-plane response carries at least
//! `x-request-id`). HTTP/1 only: HTTP/2 has no such answer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

/// How much of each request head is kept to answer in the caller's shape:
/// the request line and the headers near it (an `x-request-id` further in
/// is not seen; a new id is sent).
pub(super) const HEAD_KEPT: usize = 1024;

/// The first bytes of the request head being read.
#[derive(Default)]
pub(super) struct HeadBytes {
    bytes: Vec<u8>,
    /// How many requests had started on the connection when the kept bytes
    /// began.
    after: u64,
}

impl HeadBytes {
    /// `read` arrived while no request was in flight, `started` requests
    /// having started on the connection: it belongs to the next head.
    pub(super) fn record(&mut self, read: &[u8], started: u64) {
        if self.after != started {
            self.bytes.clear();
            self.after = started;
        }
        let room = HEAD_KEPT.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&read[..read.len().min(room)]);
    }

    /// The kept bytes, if they are the start of the head read after the
    /// `started`th request (not, say, of one pipelined behind it).
    pub(super) fn current(&self, started: u64) -> Option<&[u8]> {
        (self.after == started && !self.bytes.is_empty()).then_some(&self.bytes[..])
    }
}

/// hyper's automatic answer at the start of `buf`: (status, the status
/// line, the date).
fn automatic(buf: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    const TAIL: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\ndate: ";
    let rest = buf.strip_prefix(b"HTTP/1.1 4")?;
    let status = match rest.get(..2)? {
        b"00" => 400,
        b"14" => 414,
        b"31" => 431,
        _ => return None,
    };
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let date = buf[line_end..].strip_prefix(TAIL)?;
    let date = date.strip_suffix(b"\r\n\r\n")?;
    if date.contains(&b'\n') {
        return None;
    }
    Some((status, &buf[..line_end], date))
}

/// Our answer, being written in place of hyper's.
pub(super) struct Replacement {
    bytes: Vec<u8>,
    written: usize,
}

impl Replacement {
    /// The answer to write instead of `buf`, if `buf` starts with hyper's
    /// automatic answer; `head` is the refused request head as kept.
    pub(super) fn of(buf: &[u8], head: Option<&[u8]>) -> Option<Self> {
        let (status, line, date) = automatic(buf)?;
        metrics::counter!("tollgate_malformed_requests_total", "status" => status.to_string())
            .increment(1);
        Some(Self {
            bytes: crate::api::protocol::answer(status, line, date, head),
            written: 0,
        })
    }

    /// Writes what is left of the answer to `io`.
    pub(super) fn poll_drive<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.written < self.bytes.len() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.bytes[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// Whether `buf` starts with hyper's automatic answer.
pub(super) fn is_automatic(buf: &[u8]) -> bool {
    automatic(buf).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_answer_is_recognised() {
        let ours = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 18:04:00 GMT\r\n\r\n";
        assert_eq!(
            automatic(ours),
            Some((
                431,
                &b"HTTP/1.1 431 Request Header Fields Too Large"[..],
                &b"Mon, 07 Dec 2026 18:04:00 GMT"[..]
            ))
        );
        let routed = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-request-id: a\r\ncontent-length: 2\r\ndate: D\r\n\r\n{}";
        assert!(!is_automatic(routed));
        let other =
            b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\ndate: D\r\n\r\n";
        assert!(!is_automatic(other));
        assert!(!is_automatic(b"0\r\n\r\n"));
    }

    #[test]
    fn kept_head_bytes_belong_to_one_head() {
        let mut h = HeadBytes::default();
        h.record(b"GET /a HTTP/1.1\r\n", 0);
        h.record(&[b'x'; 2 * HEAD_KEPT], 0);
        assert_eq!(h.current(0).map(<[u8]>::len), Some(HEAD_KEPT));
        assert!(h.current(1).is_none());
        h.record(b"GET /b", 1);
        assert_eq!(h.current(1), Some(&b"GET /b"[..]));
    }
}
