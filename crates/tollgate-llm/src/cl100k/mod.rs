//! OpenAI's cl100k_base token count, for the gateway's estimates (the
//! prompt a rate limit reserves, a stream's completion, counts an upstream
//! did not report). Owns the count only: no encoding, no decoding.
//!
//! The same count as `bpe_openai::cl100k_base().count` for every text
//! (tested on a corpus in `tests.rs`), in far less memory: `bpe-openai` loads
//! a 15 MB serialised encoder into 15.8 MB of heap (three Aho-Corasick
//! automata, hash maps, token tables), where this counter reads a ~2 MB
//! table of the 100 k tokens (`table.rs`, written by `build.rs` from
//! `bpe-openai`, which the gateway no longer links) in place and builds
//! only the pre-tokeniser's regex (~0.3 MB). Both on first use.
//!
//! A text is split into pieces (`split.rs`), and each piece counted on its
//! own: 1 when the piece is a token, else by byte-pair merges (`merge.rs`).
//! A count costs a few hash lookups per byte of text past the split, and
//! measured faster than `bpe-openai`'s (bench/README.md).

mod hash;
mod merge;
mod split;
mod table;

use std::sync::LazyLock;

struct Counter {
    regex: regex_automata::meta::Regex,
    table: table::Table,
}

static COUNTER: LazyLock<Option<Counter>> = LazyLock::new(|| {
    Some(Counter {
        regex: split::regex()?,
        table: table::Table::load()?,
    })
});

/// The number of cl100k_base tokens `text` encodes to (special tokens are
/// not recognised: their text counts as ordinary text, as in `bpe-openai`).
pub fn count(text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    match &*COUNTER {
        Some(c) => split::pieces(&c.regex, text)
            .map(|piece| merge::count(&c.table, piece.as_bytes()))
            .sum(),
        // Unreachable with the table this crate builds: one token per byte
        // bounds any byte-level encoding from above.
        None => text.len(),
    }
}

#[cfg(test)]
mod tests;
