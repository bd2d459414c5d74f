//! Incremental Server-Sent Events splitter. Written by hand because the
//! pipeline needs the *raw bytes* of each event (to forward them unchanged)
//! alongside its `data` payload; SSE client crates only hand out decoded
//! events. Handles `\n`, `\r\n` and `\r` line ends and events split across
//! any number of reads.

use bytes::{Bytes, BytesMut};

/// Largest event held while waiting for its end; past this the stream is
/// treated as broken rather than buffered without bound.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub struct SseSplitter {
    buf: BytesMut,
    /// Bytes of `buf` already scanned without finding an event end.
    scanned: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    /// The event exactly as received, terminator included.
    pub raw: Bytes,
}

impl Event {
    /// The `data:` lines joined with `\n` (SSE rules); empty when none.
    pub fn data(&self) -> String {
        let mut out = String::new();
        let mut first = true;
        for line in split_lines(&self.raw) {
            let field = line
                .strip_prefix(b"data")
                .and_then(|rest| match rest.first() {
                    None => Some(&rest[..0]),
                    Some(b':') => Some(rest[1..].strip_prefix(b" ").unwrap_or(&rest[1..])),
                    _ => None,
                });
            if let Some(value) = field {
                if !first {
                    out.push('\n');
                }
                first = false;
                out.push_str(&String::from_utf8_lossy(value));
            }
        }
        out
    }
}

fn split_lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    raw.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .flat_map(|l| l.split(|b| *b == b'\r'))
        .filter(|l| !l.is_empty())
}

impl SseSplitter {
    /// Adds bytes; returns every event now complete.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = find_event_end(&self.buf, self.scanned.saturating_sub(3)) {
            let raw = self.buf.split_to(end).freeze();
            self.scanned = 0;
            events.push(Event { raw });
        }
        self.scanned = self.buf.len();
        events
    }

    /// Bytes received that do not yet form a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    pub fn take_rest(&mut self) -> Bytes {
        self.scanned = 0;
        self.buf.split().freeze()
    }
}

/// Index just past the blank line ending the first event, scanning from `from`.
fn find_event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        match buf[i] {
            b'\n' => {
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some(i + 2);
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some(i + 3);
                }
            }
            b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some(i + 2),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_reads_and_line_endings() {
        let mut s = SseSplitter::default();
        assert!(s.push(b"data: {\"a\"").is_empty());
        let ev = s.push(b":1}\n\ndata: [DONE]\r\n\r\nda");
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data(), "{\"a\":1}");
        assert_eq!(ev[0].raw, Bytes::from_static(b"data: {\"a\":1}\n\n"));
        assert_eq!(ev[1].data(), "[DONE]");
        assert_eq!(s.pending(), 2);
        let ev = s.push(b"ta: x\ndata: y\n\n");
        assert_eq!(ev[0].data(), "x\ny");
    }

    #[test]
    fn byte_at_a_time() {
        let input = b": comment\n\nevent: e\ndata:z\n\ndata: w\n\n";
        let mut s = SseSplitter::default();
        let mut all = Vec::new();
        for b in input.iter() {
            all.extend(s.push(&[*b]));
        }
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].data(), "");
        assert_eq!(all[1].data(), "z");
        assert_eq!(all[2].data(), "w");
        let joined: Vec<u8> = all.iter().flat_map(|e| e.raw.to_vec()).collect();
        assert_eq!(joined, input.to_vec());
    }
}
