//! The token table's layout and hash, shared by the build script that
//! writes the table (`build.rs` includes this file) and the reader
//! (`table.rs`), so both place a token in the same slot.
//!
//! The table is little-endian `u32`s: a header (`MAGIC`, the token count,
//! the longest token's length, the slot count), then `tokens + 1` offsets
//! into the token bytes (token `r`'s bytes are `offsets[r]..offsets[r+1]`,
//! `r` its rank: tiktoken's merge priority), then the slots, then the
//! token bytes. A slot holds `tag << RANK_BITS | rank`, or `EMPTY`; a token
//! sits in the first free slot from `index(hash)` on (linear probing), and
//! `tag(hash)` lets a probe skip most other tokens without comparing bytes.

/// First word of the table.
pub(crate) const MAGIC: u32 = 0x6b30_3031; // "100k"
/// Words before the offsets.
pub(crate) const HEADER_WORDS: usize = 4;
/// Low bits of a slot that hold the rank (cl100k has 100,256 tokens).
pub(crate) const RANK_BITS: u32 = 17;
/// A slot with no token.
pub(crate) const EMPTY: u32 = u32::MAX;

/// FNV-1a over the bytes, then folded so the low bits see the high ones.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ (h >> 29)
}

/// The first slot to probe, for a table of `slots` (a power of two).
pub(crate) fn index(hash: u64, slots: usize) -> usize {
    (hash as usize) & (slots - 1)
}

/// The slot's high bits that a token with this hash carries.
pub(crate) fn tag(hash: u64) -> u32 {
    ((hash >> 40) as u32) & ((1 << (32 - RANK_BITS)) - 1)
}
