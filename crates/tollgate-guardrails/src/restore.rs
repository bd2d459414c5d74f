//! Placeholders turned back into the values they stand for, in an answer
//! the caller receives (the model saw only the placeholders). The map is a
//! request's own, held in memory and dropped with it; nothing here prints
//! a value (`Debug` shows a count). A stream restores piece by piece:
//! `RestoreStream` holds back only a tail that is the start of a known
//! placeholder (`[EMA` while `[EMAIL_1]` is known), and releases it as
//! soon as the next piece completes or breaks it.

use std::collections::HashMap;

/// Longest placeholder-shaped text looked at (`[` … `]`), in bytes.
const MAX_PLACEHOLDER: usize = 64;

/// Where the placeholder-shaped text starting at byte `at` (a `[`) ends:
/// `[`, upper-case letters and `_`, then `_`, digits and `]`.
pub(crate) fn placeholder_at(text: &str, at: usize) -> Option<usize> {
    let bytes = text.as_bytes().get(at..)?;
    if bytes.first() != Some(&b'[') {
        return None;
    }
    let close = bytes
        .iter()
        .take(MAX_PLACEHOLDER)
        .position(|b| *b == b']')?;
    let inner = &bytes[1..close];
    let split = inner.iter().rposition(|b| *b == b'_')?;
    let (name, digits) = (&inner[..split], &inner[split + 1..]);
    let shaped = !name.is_empty()
        && name.iter().all(|b| b.is_ascii_uppercase() || *b == b'_')
        && !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit);
    shaped.then_some(at + close + 1)
}

/// A request's placeholders and their values.
pub struct Restorer {
    values: HashMap<Box<str>, Box<str>>,
    /// Longest known placeholder, in bytes.
    longest: usize,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer")
            .field("placeholders", &self.values.len())
            .finish()
    }
}

impl Restorer {
    /// `None` when there is nothing to restore.
    pub(crate) fn new(map: &HashMap<String, String>) -> Option<Self> {
        if map.is_empty() {
            return None;
        }
        let values: HashMap<Box<str>, Box<str>> = map
            .iter()
            .map(|(p, v)| (Box::from(p.as_str()), Box::from(v.as_str())))
            .collect();
        let longest = values.keys().map(|k| k.len()).max().unwrap_or(0);
        Some(Self { values, longest })
    }

    /// How many placeholders are known.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every known placeholder replaced by its value; `None`
    /// when it holds none.
    pub fn restore(&self, text: &str) -> Option<String> {
        let mut out = String::new();
        self.restore_into(text, &mut out).then_some(out)
    }

    /// Appends `text`, restored, to `out`; whether anything was replaced.
    fn restore_into(&self, text: &str, out: &mut String) -> bool {
        let mut copied = 0;
        let mut from = 0;
        let mut changed = false;
        while let Some(i) = text[from..].find('[') {
            let at = from + i;
            let value = placeholder_at(text, at)
                .and_then(|end| Some((end, self.values.get(&text[at..end])?)));
            match value {
                Some((end, value)) => {
                    if !changed {
                        out.reserve(text.len());
                        changed = true;
                    }
                    out.push_str(&text[copied..at]);
                    out.push_str(value);
                    copied = end;
                    from = end;
                }
                None => from = at + 1,
            }
        }
        if changed {
            out.push_str(&text[copied..]);
        }
        changed
    }

    /// Where a known placeholder may begin at the end of `text` and be
    /// completed by text still to come; `text.len()` when none can. A
    /// placeholder holds one `[`, so only the last one can start it.
    fn partial_from(&self, text: &str) -> usize {
        let Some(at) = text.rfind('[') else {
            return text.len();
        };
        let tail = &text[at..];
        let partial = tail.len() < self.longest
            && !tail.contains(']')
            && self.values.keys().any(|k| k.starts_with(tail));
        if partial {
            at
        } else {
            text.len()
        }
    }
}

/// One text stream of an answer (a choice's content, a tool call's
/// arguments) restored piece by piece.
#[derive(Default)]
pub struct RestoreStream {
    /// The start of a placeholder whose end has not arrived yet.
    held: String,
}

impl std::fmt::Debug for RestoreStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreStream")
            .field("held_bytes", &self.held.len())
            .finish()
    }
}

impl RestoreStream {
    /// The text to emit for `piece`: restored, without a trailing start of
    /// a known placeholder (held for the next piece).
    pub fn push(&mut self, restorer: &Restorer, piece: &str) -> String {
        if self.held.is_empty() && !piece.contains('[') {
            return piece.to_string();
        }
        let mut text = std::mem::take(&mut self.held);
        text.push_str(piece);
        let cut = restorer.partial_from(&text);
        self.held = text[cut..].to_string();
        let mut out = String::with_capacity(cut);
        if !restorer.restore_into(&text[..cut], &mut out) {
            out.push_str(&text[..cut]);
        }
        out
    }

    /// What is still held (the stream ended inside what looked like a
    /// placeholder): released as it is.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Whether a partial placeholder is held back.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }
}
