//! Streaming detection with a bounded hold-back window.
//!
//! Every push appends to a buffer; text is held back only where a match
//! could still start that later text would extend or change
//! (`DetectorSet::hold_from`: a run of characters some configured detector
//! can span, within its longest match), and never more than the last
//! `window` bytes. The rest is scanned and released (masked when masking
//! is on). Prose thus flows at once, while `4111 1111` waits for the next
//! group. A finding that crosses the cut is released whole, through its
//! end, so it is never split and the held-back tail never exceeds `window`
//! bytes (a window of N bytes is at most N characters). A value that fits
//! in the window is therefore always seen whole, however it is split over
//! chunks. A custom regex can span anything, so with one configured the
//! whole window is held, as before.
//!
//! Trade-off: a value longer than the window (a long private-key block, say)
//! may be released before it is complete, and is then found in parts or
//! only partly masked. Raise the window for that, at the cost of delay.
//!
//! A pass-through scanner (audit-only policies: nothing is ever rewritten
//! or blocked) emits every push at once and reports findings as its shadow
//! copy of the text is released, so auditing adds no delay.
//!
//! The last few released bytes are kept (not re-sent) as left context, so
//! word boundaries and "part of a longer number" checks see the same text
//! they would have seen unsplit.

use std::sync::Arc;

use super::{DetectorSet, Finding, Masker};

/// Bytes of already released text kept as left context for the next scan.
const CONTEXT: usize = 16;

pub struct StreamScanner {
    detectors: Arc<DetectorSet>,
    window: usize,
    mask: bool,
    /// Emit pushed text at once; findings still come from the held copy.
    passthrough: bool,
    masker: Masker,
    /// Released context (`..ctx`) followed by held text (`ctx..`).
    buf: String,
    ctx: usize,
}

#[derive(Debug, Default, PartialEq)]
pub struct StreamOut {
    /// Text to send now (masked when masking is on).
    pub emit: String,
    /// Findings in the released text (offsets relative to the unmasked release).
    pub findings: Vec<Finding>,
}

fn ceil(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn floor(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl StreamScanner {
    /// `window`: most bytes held back (at least 1).
    pub fn new(detectors: Arc<DetectorSet>, window: usize, mask: bool) -> Self {
        Self {
            detectors,
            window: window.max(1),
            mask,
            passthrough: false,
            masker: Masker::default(),
            buf: String::new(),
            ctx: 0,
        }
    }

    /// A scanner that never delays or changes text: `push` emits what it
    /// is given, and findings are reported once the detectors are sure.
    pub fn passthrough(detectors: Arc<DetectorSet>, window: usize) -> Self {
        Self {
            passthrough: true,
            ..Self::new(detectors, window, false)
        }
    }

    /// Bytes currently held back (never more than the window after a push).
    pub fn held(&self) -> usize {
        self.buf.len() - self.ctx
    }

    /// Findings in the held text, offsets relative to `buf`; those starting
    /// in the context were handled with the released text.
    fn scan(&self) -> Vec<Finding> {
        let mut f = self.detectors.scan(&self.buf);
        f.retain(|f| f.start >= self.ctx);
        f
    }

    fn release(&mut self, upto: usize, findings: Vec<Finding>) -> StreamOut {
        let ctx = self.ctx;
        let released: Vec<Finding> = findings
            .into_iter()
            .filter(|f| f.end <= upto)
            .map(|mut f| {
                f.start -= ctx;
                f.end -= ctx;
                f
            })
            .collect();
        let head = &self.buf[ctx..upto];
        let emit = if self.mask {
            self.masker.mask(head, &released)
        } else {
            head.to_owned()
        };
        // Keep up to CONTEXT bytes of released text as left context.
        let keep_from = floor(&self.buf, upto.saturating_sub(CONTEXT));
        self.buf.drain(..keep_from);
        self.ctx = upto - keep_from;
        StreamOut {
            emit,
            findings: released,
        }
    }

    pub fn push(&mut self, text: &str) -> StreamOut {
        self.buf.push_str(text);
        let by_window = ceil(&self.buf, self.buf.len().saturating_sub(self.window)).max(self.ctx);
        let hold = self
            .detectors
            .hold_from(&self.buf, self.ctx)
            .map_or(by_window, |h| h.max(by_window));
        let mut out = if hold <= self.ctx {
            StreamOut::default()
        } else {
            let findings = self.scan();
            let mut upto = hold;
            for f in &findings {
                if f.start < upto && f.end > upto {
                    upto = f.end;
                }
            }
            self.release(upto, findings)
        };
        if self.passthrough {
            text.clone_into(&mut out.emit);
        }
        out
    }

    /// Releases everything still held.
    pub fn finish(&mut self) -> StreamOut {
        let findings = self.scan();
        let all = self.buf.len();
        let mut out = self.release(all, findings);
        if self.passthrough {
            out.emit.clear();
        }
        self.buf.clear();
        self.ctx = 0;
        out
    }
}
