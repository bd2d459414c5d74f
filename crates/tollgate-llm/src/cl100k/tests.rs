//! The counter against `bpe-openai` (the gateway's counter before this
//! one): the same pieces and the same count for every text of a varied
//! corpus, and the two merge strategies against each other.

use super::*;
use std::path::{Path, PathBuf};

fn counter() -> &'static Counter {
    COUNTER.as_ref().expect("the table and the regex load")
}

fn reference(text: &str) -> usize {
    bpe_openai::cl100k_base().count(text)
}

/// Same pieces as `bpe-openai`'s pre-tokeniser, same count.
#[track_caller]
fn check(text: &str) {
    let c = counter();
    let ours: Vec<&str> = split::pieces(&c.regex, text).collect();
    let theirs: Vec<&str> = bpe_openai::cl100k_base().split(text).collect();
    assert_eq!(ours, theirs, "pieces of {text:?}");
    assert_eq!(count(text), reference(text), "count of {text:?}");
}

/// xorshift64*: a fixed seed, the same corpus on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
    fn char_in(&mut self, lo: u32, hi: u32) -> char {
        let c = lo + (self.next() % u64::from(hi - lo)) as u32;
        char::from_u32(c).unwrap_or('?')
    }
}

/// A random text of `words` runs of one kind of character each.
fn random_text(rng: &mut Rng, words: usize) -> String {
    const SEPARATORS: &[&str] = &[
        " ", " ", " ", "  ", "\n", "\n\n", "\r\n", "\t", " \n ", "   \n", "\u{a0}", "\u{3000}", "",
        "", "",
    ];
    const FIXED: &[&str] = &[
        "'s",
        "'t",
        "'re",
        "'ve",
        "'m",
        "'ll",
        "'d",
        "'S",
        "'LL",
        "'Re",
        "don't",
        "I'm",
        "we'll",
        "...",
        "!!",
        "?!",
        "->",
        "=>",
        "::",
        "{}",
        "[]",
        "()",
        "\"",
        "'",
        "`",
        "#",
        "@",
        "$",
        "%",
        "😀",
        "👍🏽",
        "👨‍👩‍👧",
        "🇫🇷",
        "é",
        "e\u{301}",
        "ß",
        "İ",
        "ﬁ",
        "½",
        "²",
        "٣",
        "Ⅻ",
        "\u{200b}",
        "\u{feff}",
        "\0",
        "\u{7f}",
        "\u{1b}[0m",
    ];
    let mut s = String::new();
    for _ in 0..words {
        let longest = if rng.below(20) == 0 { 200 } else { 12 };
        let len = 1 + rng.below(longest);
        match rng.below(12) {
            0 => (0..len).for_each(|_| s.push(rng.char_in(0x61, 0x7b))),
            1 => (0..len).for_each(|_| s.push(rng.char_in(0x41, 0x5b))),
            2 => (0..len).for_each(|_| s.push(rng.char_in(0x30, 0x3a))),
            3 => (0..len).for_each(|_| s.push(rng.char_in(0x21, 0x30))),
            4 => (0..len).for_each(|_| s.push(rng.char_in(0x4e00, 0x9fff))),
            5 => (0..len).for_each(|_| s.push(rng.char_in(0x3040, 0x30ff))),
            6 => (0..len).for_each(|_| s.push(rng.char_in(0x0400, 0x04ff))),
            7 => (0..len).for_each(|_| s.push(rng.char_in(0x1f300, 0x1f6ff))),
            8 => (0..len).for_each(|_| s.push(rng.char_in(0x20, 0x7f))),
            9 => (0..len).for_each(|_| s.push(rng.char_in(0x80, 0x2fff))),
            10 => (0..len).for_each(|_| s.push(rng.char_in(0xac00, 0xd7a3))),
            _ => s.push_str(rng.pick(FIXED)),
        }
        s.push_str(rng.pick(SEPARATORS));
    }
    s
}

#[test]
fn every_token_is_in_the_table_at_its_rank() {
    let bpe = &bpe_openai::cl100k_base().bpe;
    let table = &counter().table;
    for rank in 0..bpe.num_tokens() as u32 {
        assert_eq!(table.rank(bpe.token_bytes(rank)), Some(rank));
    }
    assert_eq!(table.rank(b"no such token, surely"), None);
}

#[test]
fn known_counts() {
    // Reference counts from OpenAI's tiktoken (cl100k_base).
    assert_eq!(count(""), 0);
    assert_eq!(count("hello world"), 2);
    assert_eq!(count("tiktoken is great!"), 6);
    assert_eq!(count("Say hello to the benchmark in a few words."), 10);
}

#[test]
fn same_as_bpe_openai_on_random_texts() {
    let mut rng = Rng(0x7011_9a7e_c0de_0028);
    for i in 0..4000 {
        let text = random_text(&mut rng, 1 + i % 60);
        check(&text);
    }
}

#[test]
fn same_as_bpe_openai_on_random_bytes() {
    let mut rng = Rng(0xb17e_5b17_e5b1_7e50);
    for i in 0..3000 {
        let len = 1 + rng.below(if i % 10 == 0 { 3000 } else { 80 });
        // Mostly ASCII and UTF-8 lead/continuation bytes, so some runs
        // decode to real characters between the replacement characters.
        let bytes: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => rng.next() as u8,
                1 => 0x20 + rng.below(0x5f) as u8,
                2 => 0x80 + rng.below(0x40) as u8,
                _ => [0xc3, 0xe4, 0xf0, b' ', b'\n', b'a'][rng.below(6)],
            })
            .collect();
        check(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn same_as_bpe_openai_on_long_runs() {
    let mut rng = Rng(0x1006_1006_1006_1006);
    let mut texts = vec![
        "a".repeat(5000),
        "ab".repeat(3000),
        "!".repeat(4000),
        "1".repeat(4001),
        " ".repeat(3000),
        "\n".repeat(3000),
        " \n".repeat(1500),
        "😀".repeat(1000),
        "日本語".repeat(1000),
        format!("x{}", " ".repeat(999)),
        format!("{}x", " ".repeat(999)),
    ];
    for _ in 0..40 {
        // A long word: base64-like, letters only, or symbols only.
        let len = 65 + rng.below(3000);
        let alphabet: &[u8] = match rng.below(3) {
            0 => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            1 => b"etaoinshrdlucmfwyp",
            _ => b"!#$%&*+-./:;<=>?@^_|~",
        };
        texts.push(
            (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())] as char)
                .collect(),
        );
    }
    for text in &texts {
        check(text);
    }
}

#[test]
fn rescan_and_heap_merge_alike() {
    let bpe = &bpe_openai::cl100k_base().bpe;
    let table = &counter().table;
    let mut rng = Rng(0x4ea9_4ea9_4ea9_4ea9);
    for _ in 0..3000 {
        // Pieces built of tokens (so merges happen across their seams),
        // some with stray bytes between them.
        let mut piece = Vec::new();
        for _ in 0..1 + rng.below(12) {
            piece.extend_from_slice(bpe.token_bytes(rng.below(bpe.num_tokens()) as u32));
            if rng.below(4) == 0 {
                piece.push(rng.next() as u8);
            }
        }
        assert_eq!(
            merge::rescan(table, &piece),
            merge::heap(table, &piece),
            "{piece:?}"
        );
        assert_eq!(merge::count(table, &piece), bpe.count(&piece), "{piece:?}");
    }
}

/// The repository's texts: docs, fixtures, sources, benches' notes.
fn repo_texts() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(&*name, "target" | ".git" | "node_modules" | ".venv") {
                    walk(&path, out);
                }
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.len() < 2_000_000 {
                    out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    for dir in [
        "docs", "bench", "examples", "crates", "tests", "scripts", "fuzz",
    ] {
        walk(&root.join(dir), &mut out);
    }
    for file in ["README.md", "ARCHITECTURE.md"] {
        if let Ok(text) = std::fs::read_to_string(root.join(file)) {
            out.push((root.join(file), text));
        }
    }
    out
}

#[test]
fn same_as_bpe_openai_on_the_repository() {
    let texts = repo_texts();
    assert!(texts.len() > 100, "{} files", texts.len());
    for (path, text) in &texts {
        let c = counter();
        assert_eq!(count(text), reference(text), "{}", path.display());
        let ours: Vec<&str> = split::pieces(&c.regex, text).collect();
        let theirs: Vec<&str> = bpe_openai::cl100k_base().split(text).collect();
        assert!(ours == theirs, "pieces of {}", path.display());
        for line in text.lines().take(200) {
            check(line);
        }
    }
}

/// Counting speed against `bpe-openai` on the repository's texts, both
/// loaded first: `cargo test -p tollgate-llm --release cl100k::tests::speed
/// -- --ignored --nocapture`.
#[test]
#[ignore = "a timing, not a check: run by hand"]
#[allow(clippy::disallowed_methods)] // times real work on the real clock
fn speed() {
    use std::time::Instant;
    let texts: Vec<String> = repo_texts().into_iter().map(|(_, t)| t).collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let t = Instant::now();
    let _ = count("load");
    let ours_load = t.elapsed();
    let t = Instant::now();
    let _ = reference("load");
    let theirs_load = t.elapsed();
    let mut ours = std::time::Duration::ZERO;
    let mut theirs = std::time::Duration::ZERO;
    for round in 0..6 {
        let t = Instant::now();
        let a: usize = texts.iter().map(|s| count(s)).sum();
        let d_ours = t.elapsed();
        let t = Instant::now();
        let b: usize = texts.iter().map(|s| reference(s)).sum();
        let d_theirs = t.elapsed();
        assert_eq!(a, b);
        if round > 0 {
            ours += d_ours;
            theirs += d_theirs;
        }
    }
    let mb = bytes as f64 * 5.0 / 1e6;
    eprintln!(
        "{} texts, {:.1} MB x 5: ours {:.1} MB/s, bpe-openai {:.1} MB/s (ours/theirs time {:.2}); first use: ours {:?}, bpe-openai {:?}",
        texts.len(),
        bytes as f64 / 1e6,
        mb / ours.as_secs_f64(),
        mb / theirs.as_secs_f64(),
        ours.as_secs_f64() / theirs.as_secs_f64(),
        ours_load,
        theirs_load,
    );
}
