//! cl100k_base's pre-tokeniser: the text split into the pieces that are
//! encoded on their own, exactly as `bpe-openai` 0.3 splits it.
//!
//! Written here rather than taken from `bpe-openai`: its `Pretokenizer`
//! has no public constructor and comes only inside a `Tokenizer`, which
//! loads the whole 15 MB encoder. The patterns and the look-ahead
//! handling below are `bpe-openai`'s (its `lib.rs`, `BPE_CL100K_BASE` and
//! `Splits`), on the same `regex-automata` meta regex, so the pieces are
//! the same (the equivalence test in `mod.rs` checks the counts).
//!
//! tiktoken's pattern has `\s+(?!\S)`, a negative look-ahead that
//! `regex-automata` does not support. `bpe-openai` rewrites it as a second
//! pattern `\s+\s` whose match loses its last character (the "look-ahead"
//! whitespace stays for the next piece), plus `\s+$` in the first pattern
//! for whitespace that ends the text, and `\s+` as the last resort. The
//! three patterns are searched together, anchored at the end of the last
//! piece, the first pattern that matches winning (leftmost-first).

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

/// tiktoken's cl100k pattern without its look-ahead alternative.
const MAIN: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+$";
/// `\s+(?!\S)` as a match whose last character is given back.
const LOOKAHEAD: &str = "\\s+\\s";
/// Whitespace the other patterns leave.
const REST: &str = "\\s+";
/// Index of `LOOKAHEAD` among the patterns.
const LOOKAHEAD_PATTERN: usize = 1;

/// The compiled patterns (~0.3 MB).
pub(super) fn regex() -> Option<Regex> {
    Regex::new_many(&[MAIN, LOOKAHEAD, REST]).ok()
}

/// The pieces of `text`, in order.
pub(super) fn pieces<'a>(regex: &'a Regex, text: &'a str) -> Pieces<'a> {
    Pieces { regex, text, at: 0 }
}

pub(super) struct Pieces<'a> {
    regex: &'a Regex,
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.text.get(self.at..)?;
        // Like `bpe-openai`, the split ends where no pattern matches (only
        // at the end of the text: the patterns cover every character).
        let found = self.regex.find(Input::new(rest).anchored(Anchored::Yes))?;
        let mut piece = rest.get(..found.end())?;
        if found.pattern().as_usize() == LOOKAHEAD_PATTERN {
            // `\s+\s` always leaves at least one character.
            let mut chars = piece.chars();
            if chars.next_back().is_some() && !chars.as_str().is_empty() {
                piece = chars.as_str();
            }
        }
        if piece.is_empty() {
            return None;
        }
        self.at += piece.len();
        Some(piece)
    }
}
