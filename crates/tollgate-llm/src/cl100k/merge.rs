//! One piece's token count by tiktoken's byte-pair merge: start from the
//! piece's bytes and repeatedly merge the adjacent pair whose concatenation
//! is the token of lowest rank (the leftmost such pair on a tie) until no
//! adjacent pair is a token. This is the "original BPE algorithm" that
//! `bpe`'s encoders reproduce (its README: they differ from tiktoken only
//! where tiktoken's pre-tokeniser splits the text, and the pieces here are
//! split the same way), so a piece gets the tokens `bpe-openai` gives it:
//! `bpe-openai` checks its encodings against tiktoken's, and the tests in
//! `tests.rs` check these counts against `bpe-openai`'s.
//!
//! Short pieces (nearly all) rescan their few parts after each merge, as
//! tiktoken does; that is quadratic, so a longer piece (a long run of
//! letters or symbols with no space) merges through a heap of candidate
//! pairs and a linked list of parts instead: O(n log n), a few hash
//! lookups and heap operations per byte whatever the text.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::table::Table;

/// Longest piece merged by rescanning.
const SHORT: usize = 64;
/// No rank: the pair is not a token.
const NONE: u32 = u32::MAX;

/// Tokens of `piece`.
pub(super) fn count(table: &Table, piece: &[u8]) -> usize {
    if piece.len() <= 1 {
        return piece.len();
    }
    if table.rank(piece).is_some() {
        return 1;
    }
    if piece.len() <= SHORT {
        rescan(table, piece)
    } else {
        heap(table, piece)
    }
}

fn rank(table: &Table, bytes: &[u8]) -> u32 {
    table.rank(bytes).unwrap_or(NONE)
}

/// tiktoken's `byte_pair_merge`: `parts` holds each part's start and the
/// rank of the pair it begins, plus two sentinels.
pub(super) fn rescan(table: &Table, piece: &[u8]) -> usize {
    let n = piece.len();
    if n < 2 {
        return n;
    }
    let mut parts: Vec<(usize, u32)> = (0..n - 1)
        .map(|i| (i, rank(table, &piece[i..i + 2])))
        .collect();
    parts.push((n - 1, NONE));
    parts.push((n, NONE));
    let pair = |parts: &[(usize, u32)], i: usize| match parts.get(i + 3) {
        Some(&(end, _)) => rank(table, &piece[parts[i].0..end]),
        None => NONE,
    };
    loop {
        let mut min = (NONE, 0);
        for (i, &(_, r)) in parts[..parts.len() - 1].iter().enumerate() {
            if r < min.0 {
                min = (r, i);
            }
        }
        let (r, i) = min;
        if r == NONE {
            break;
        }
        if i > 0 {
            parts[i - 1].1 = pair(&parts, i - 1);
        }
        parts[i].1 = pair(&parts, i);
        parts.remove(i + 1);
    }
    parts.len() - 1
}

/// The same merges, each pair a heap entry `(rank, start, mid, end)`;
/// an entry is stale once either of its parts has merged with another.
pub(super) fn heap(table: &Table, piece: &[u8]) -> usize {
    let Ok(n) = u32::try_from(piece.len()) else {
        return piece.len(); // one token per byte: an upper bound
    };
    if n < 2 {
        return piece.len();
    }
    const DEAD: u32 = u32::MAX;
    // The start of the part after the part starting at `i` (`DEAD` once
    // that part merged into the one before it), and of the part before.
    let mut next: Vec<u32> = (1..=n).collect();
    let mut prev: Vec<u32> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let bytes = |from: u32, to: u32| &piece[from as usize..to as usize];
    let mut heap: BinaryHeap<Reverse<(u32, u32, u32, u32)>> = (0..n - 1)
        .filter_map(|i| {
            let r = rank(table, bytes(i, i + 2));
            (r != NONE).then_some(Reverse((r, i, i + 1, i + 2)))
        })
        .collect();
    let mut tokens = piece.len();
    while let Some(Reverse((_, start, mid, end))) = heap.pop() {
        if next[start as usize] != mid || next[mid as usize] != end {
            continue;
        }
        next[start as usize] = end;
        next[mid as usize] = DEAD;
        tokens -= 1;
        if start > 0 {
            let before = prev[start as usize];
            let r = rank(table, bytes(before, end));
            if r != NONE {
                heap.push(Reverse((r, before, start, end)));
            }
        }
        if end < n {
            prev[end as usize] = start;
            let after = next[end as usize];
            let r = rank(table, bytes(start, after));
            if r != NONE {
                heap.push(Reverse((r, start, end, after)));
            }
        }
    }
    tokens
}
