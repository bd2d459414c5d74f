//! The cl100k_base token table: every token's bytes by rank and the hash
//! table from bytes to rank, read in place from the blob `build.rs` writes
//! into the binary (layout in `hash.rs`). Nothing is copied to the heap;
//! the pages a lookup touches become resident, at most the blob's ~2 MB.

use super::hash::{self, EMPTY, HEADER_WORDS, MAGIC, RANK_BITS};

static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cl100k.table"));

/// The blob, its sections located once.
pub(super) struct Table {
    offsets: &'static [u8],
    slots: &'static [u8],
    bytes: &'static [u8],
    /// The longest token's length: no longer piece is a token.
    longest: usize,
}

/// The `i`th little-endian `u32` of `words` (0 past its end, which a
/// table checked by `Table::load` never reads).
fn word(words: &[u8], i: usize) -> u32 {
    match words.get(i * 4..i * 4 + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

impl Table {
    /// The table built into the binary, or `None` if its header does not
    /// describe its size (a build defect; counting then falls back to one
    /// token per byte, an overestimate).
    pub(super) fn load() -> Option<Table> {
        if word(BLOB, 0) != MAGIC {
            return None;
        }
        let tokens = word(BLOB, 1) as usize;
        let longest = word(BLOB, 2) as usize;
        let slots = word(BLOB, 3) as usize;
        let offsets_at = HEADER_WORDS * 4;
        let slots_at = offsets_at + (tokens + 1) * 4;
        let bytes_at = slots_at + slots * 4;
        let offsets = BLOB.get(offsets_at..slots_at)?;
        let total = word(offsets, tokens) as usize;
        if !slots.is_power_of_two() || BLOB.len() != bytes_at + total {
            return None;
        }
        Some(Table {
            offsets,
            slots: BLOB.get(slots_at..bytes_at)?,
            bytes: BLOB.get(bytes_at..)?,
            longest,
        })
    }

    /// The bytes of the token of this rank.
    fn token(&self, rank: u32) -> &[u8] {
        let from = word(self.offsets, rank as usize) as usize;
        let to = word(self.offsets, rank as usize + 1) as usize;
        self.bytes.get(from..to).unwrap_or_default()
    }

    /// The rank of the token whose bytes are `piece`, if there is one.
    pub(super) fn rank(&self, piece: &[u8]) -> Option<u32> {
        if piece.is_empty() || piece.len() > self.longest {
            return None;
        }
        let h = hash::hash(piece);
        let tag = hash::tag(h);
        let mask = self.slots.len() / 4 - 1;
        let mut i = hash::index(h, mask + 1);
        // The table is at most half full, so a probe meets an empty slot
        // long before it could wrap around.
        for _ in 0..=mask {
            let slot = word(self.slots, i);
            if slot == EMPTY {
                return None;
            }
            let rank = slot & ((1 << RANK_BITS) - 1);
            if slot >> RANK_BITS == tag && self.token(rank) == piece {
                return Some(rank);
            }
            i = (i + 1) & mask;
        }
        None
    }
}
