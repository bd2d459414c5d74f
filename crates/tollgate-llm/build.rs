//! Writes the cl100k_base token table `src/cl100k/` counts with
//! (`$OUT_DIR/cl100k.table`, layout in `src/cl100k/hash.rs`): every token's
//! bytes by rank, as `bpe-openai` (a build dependency only) holds them, and
//! a hash table from bytes to rank. About 2 MB, where `bpe-openai`'s own
//! serialised encoder is 15 MB and 15.8 MB of heap once loaded.

use std::error::Error;
use std::path::PathBuf;

#[path = "src/cl100k/hash.rs"]
#[allow(dead_code)] // the reader's helpers are not all used here
mod hash;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/cl100k/hash.rs");
    let bpe = &bpe_openai::cl100k_base().bpe;
    let tokens: Vec<&[u8]> = (0..bpe.num_tokens())
        .map(|r| u32::try_from(r).map(|r| bpe.token_bytes(r)))
        .collect::<Result<_, _>>()?;
    if tokens.len() >= (1 << hash::RANK_BITS) - 1 {
        return Err(format!("{} tokens do not fit in a slot's rank bits", tokens.len()).into());
    }
    let longest = tokens.iter().map(|t| t.len()).max().unwrap_or(0);
    // At most half full (cl100k: 0.38, 1 MB of slots): a probe for a piece
    // that is no token (most lookups while merging) ends after about two
    // slots.
    let slots = (tokens.len() * 2).next_power_of_two();
    let mut table = vec![hash::EMPTY; slots];
    for (rank, token) in tokens.iter().enumerate() {
        let h = hash::hash(token);
        let mut i = hash::index(h, slots);
        while table[i] != hash::EMPTY {
            i = (i + 1) & (slots - 1);
        }
        table[i] = (hash::tag(h) << hash::RANK_BITS) | u32::try_from(rank)?;
    }
    let mut words = vec![
        hash::MAGIC,
        u32::try_from(tokens.len())?,
        u32::try_from(longest)?,
        u32::try_from(slots)?,
    ];
    let mut offset = 0u32;
    words.push(0);
    for t in &tokens {
        offset += u32::try_from(t.len())?;
        words.push(offset);
    }
    words.extend_from_slice(&table);
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    for t in &tokens {
        out.extend_from_slice(t);
    }
    let path = PathBuf::from(std::env::var("OUT_DIR")?).join("cl100k.table");
    std::fs::write(path, out)?;
    Ok(())
}
