//! Streaming detection with a bounded hold-back window. Text is released
//! only when no finding can still grow into it: the last `window` bytes stay
//! held, and so does any finding that reaches into them. A value split over
//! several chunks is therefore seen whole. Trade-off: a value longer than
//! the window (plus the slack below) may be released in two parts.

use std::sync::Arc;

use super::{DetectorSet, Finding, Masker};

/// Most bytes ever held, as a multiple of the window, before text is
/// released regardless (bounds memory and delay on pathological input).
const MAX_HOLD_FACTOR: usize = 4;

pub struct StreamScanner {
    detectors: Arc<DetectorSet>,
    window: usize,
    mask: bool,
    masker: Masker,
    buf: String,
}

#[derive(Debug, Default, PartialEq)]
pub struct StreamOut {
    /// Text to send now (masked when masking is on).
    pub emit: String,
    /// Findings in the released text (offsets relative to the unmasked release).
    pub findings: Vec<Finding>,
}

impl StreamScanner {
    pub fn new(detectors: Arc<DetectorSet>, window: usize, mask: bool) -> Self {
        Self {
            detectors,
            window: window.max(1),
            mask,
            masker: Masker::default(),
            buf: String::new(),
        }
    }

    fn floor(&self, mut i: usize) -> usize {
        while i > 0 && !self.buf.is_char_boundary(i) {
            i -= 1;
        }
        i
    }

    fn release(&mut self, upto: usize, findings: Vec<Finding>) -> StreamOut {
        let released: Vec<Finding> = findings.into_iter().filter(|f| f.end <= upto).collect();
        let head: String = self.buf.drain(..upto).collect();
        let emit = if self.mask {
            self.masker.mask(&head, &released)
        } else {
            head
        };
        StreamOut {
            emit,
            findings: released,
        }
    }

    pub fn push(&mut self, text: &str) -> StreamOut {
        self.buf.push_str(text);
        if self.buf.len() <= self.window {
            return StreamOut::default();
        }
        let findings = self.detectors.scan(&self.buf);
        let mut upto = self.floor(self.buf.len() - self.window);
        for f in &findings {
            if f.start < upto && f.end > upto {
                upto = f.start;
            }
        }
        if upto == 0 && self.buf.len() > self.window * MAX_HOLD_FACTOR {
            upto = self.floor(self.buf.len() - self.window);
        }
        self.release(upto, findings)
    }

    /// Releases everything still held.
    pub fn finish(&mut self) -> StreamOut {
        let findings = self.detectors.scan(&self.buf);
        let all = self.buf.len();
        self.release(all, findings)
    }
}
