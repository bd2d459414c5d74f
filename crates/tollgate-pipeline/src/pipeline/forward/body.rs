//! The upstream's response body on its way to the caller: relayed chunk by
//! chunk as it arrives (memory stays bounded whatever its size), scrubbed
//! of the credential the call carried when the upstream echoes it, under
//! the route's total deadline. The stream owns the request's end guard, so
//! the request is recorded when the body ends, fails, or the caller leaves
//! (499, from the guard's drop).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::Bytes;
use futures_util::Stream;

use super::super::finish::Finish;

const REDACTED: &[u8] = b"[redacted]";

/// The compiled search for one set of credential strings.
struct Matcher {
    ac: AhoCorasick,
    /// `[redacted]` once per pattern (the matcher wants one each).
    with: Vec<&'static [u8]>,
    keep: usize,
}

impl Matcher {
    /// `None` when there is nothing to look for.
    fn build(needles: &[String]) -> Option<Self> {
        let keep = needles.iter().map(String::len).max()?.saturating_sub(1);
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(needles)
            .ok()?;
        Some(Self {
            with: vec![REDACTED; needles.len()],
            ac,
            keep,
        })
    }
}

/// Replaces every credential string in a byte stream, holding back the
/// last `longest - 1` bytes of each chunk in case a secret is split across
/// chunks.
pub(super) struct Scrubber {
    matcher: Arc<Matcher>,
    carry: Vec<u8>,
}

/// A route's or connection's last matcher, reused while the credential it
/// was built for is unchanged: compiling one took a third of a route
/// call's instructions (138 k of 420 k, bench/README.md). Kept only for a
/// credential the gateway holds anyway (a configured value, a minted
/// token), never for a named secret revealed per call or a caller's own
/// token, so the cache holds no plaintext the gateway would otherwise drop.
#[derive(Default)]
pub(super) struct ScrubCache(Mutex<Option<(Vec<String>, Arc<Matcher>)>>);

impl ScrubCache {
    /// The scrubber for `needles` (`None`: nothing to look for), from the
    /// cache when `reuse` and it was built for the same strings.
    pub(super) fn scrubber(&self, needles: Vec<String>, reuse: bool) -> Option<Scrubber> {
        if !reuse {
            return Scrubber::new(needles);
        }
        if let Ok(slot) = self.0.lock() {
            if let Some((_, m)) = slot.as_ref().filter(|(held, _)| *held == needles) {
                return Some(Scrubber::with(Arc::clone(m)));
            }
        }
        let m = Arc::new(Matcher::build(&needles)?);
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((needles, Arc::clone(&m)));
        }
        Some(Scrubber::with(m))
    }
}

impl Scrubber {
    /// `None` when there is nothing to look for.
    pub(super) fn new(needles: Vec<String>) -> Option<Self> {
        Matcher::build(&needles).map(|m| Self::with(Arc::new(m)))
    }

    fn with(matcher: Arc<Matcher>) -> Self {
        Self {
            matcher,
            carry: Vec::new(),
        }
    }

    /// Text (a header value, a whole body) with every secret replaced.
    pub(super) fn all(&self, text: &[u8]) -> Vec<u8> {
        self.matcher.ac.replace_all_bytes(text, &self.matcher.with)
    }

    /// The part of `chunk` (after what was held back) that can go out now.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let buf = self.all(&buf);
        let cut = buf.len().saturating_sub(self.matcher.keep);
        self.carry = buf[cut..].to_vec();
        Bytes::from(buf[..cut].to_vec())
    }

    /// What was held back, at the end of the stream.
    pub(super) fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.carry))
    }
}

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The caller's response body.
pub(super) struct Relay {
    inner: Upstream,
    scrub: Option<Scrubber>,
    fin: Finish,
    deadline: Pin<Box<tokio::time::Sleep>>,
    status: u16,
    bytes: u64,
    ended: bool,
}

impl Relay {
    pub(super) fn new(
        inner: Upstream,
        scrub: Option<Scrubber>,
        fin: Finish,
        deadline: tokio::time::Instant,
        status: u16,
    ) -> Self {
        Self {
            inner,
            scrub,
            fin,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            status,
            bytes: 0,
            ended: false,
        }
    }

    fn end(&mut self, status: u16, error: &'static str) {
        self.ended = true;
        let bytes = self.bytes;
        self.fin.end(|_, ctx| {
            ctx.status = status;
            if !error.is_empty() {
                ctx.error = error;
            }
            if let Some(f) = ctx.forwarded.as_mut() {
                f.response_bytes = bytes;
            }
        });
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.end(504, "upstream_timeout");
            return Poll::Ready(Some(Err(std::io::Error::other(
                "upstream response exceeded the total timeout",
            ))));
        }
        loop {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    self.bytes += chunk.len() as u64;
                    let out = match self.scrub.as_mut() {
                        Some(s) => s.push(&chunk),
                        None => chunk,
                    };
                    if out.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(out)));
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "forwarded upstream body cut");
                    self.end(502, "upstream_stream_interrupted");
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "upstream response was cut",
                    ))));
                }
                Poll::Ready(None) => {
                    let tail = self.scrub.as_mut().map(Scrubber::finish);
                    let status = self.status;
                    let label = if status >= 400 { "upstream_status" } else { "" };
                    self.end(status, label);
                    return Poll::Ready(tail.filter(|t| !t.is_empty()).map(Ok));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{ScrubCache, Scrubber};

    #[test]
    fn the_matcher_is_reused_only_for_the_same_held_credential() {
        let cache = ScrubCache::default();
        let a = || vec!["token-aaaa".to_string()];
        let first = cache.scrubber(a(), true).unwrap();
        let again = cache.scrubber(a(), true).unwrap();
        assert!(Arc::ptr_eq(&first.matcher, &again.matcher));
        assert_eq!(again.all(b"x token-aaaa y"), b"x [redacted] y");
        // A refreshed token: a new matcher, which replaces the old one.
        let other = cache
            .scrubber(vec!["token-bbbb".to_string()], true)
            .unwrap();
        assert!(!Arc::ptr_eq(&first.matcher, &other.matcher));
        assert_eq!(
            other.all(b"token-aaaa token-bbbb"),
            b"token-aaaa [redacted]"
        );
        // Not reusable (a named secret, a caller's token): never cached.
        let named = cache
            .scrubber(vec!["token-bbbb".to_string()], false)
            .unwrap();
        assert!(!Arc::ptr_eq(&named.matcher, &other.matcher));
        assert!(cache.scrubber(Vec::new(), true).is_none());
    }

    #[test]
    fn secrets_split_across_chunks_are_scrubbed() {
        let mut s = Scrubber::new(vec!["sekret-value-123".into(), "value-123".into()]).unwrap();
        let mut out = Vec::new();
        for chunk in ["aa sekret-", "value-", "123 bb sekret-value-123", " end"] {
            out.extend_from_slice(&s.push(chunk.as_bytes()));
        }
        out.extend_from_slice(&s.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "aa [redacted] bb [redacted] end"
        );
        assert!(Scrubber::new(vec![]).is_none());
    }
}
