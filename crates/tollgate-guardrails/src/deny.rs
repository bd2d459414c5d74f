//! Keyword and topic deny lists: every term of a list in one Aho-Corasick
//! automaton over case-folded text. Folding is Unicode (`char::to_lowercase`),
//! so "café" matches "Café"; "whole word" checks the original text's
//! neighbouring characters with Unicode `is_alphanumeric`, so "bomb" does not
//! match "bombastic" nor "bombé".

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

pub(super) struct DenyMatcher {
    ac: AhoCorasick,
    whole_word: bool,
    /// The folded terms, sorted, and the longest in characters: how far
    /// back a match can start that later text in a stream would complete.
    sorted: Vec<String>,
    max_chars: usize,
}

fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` case-folded, and for every byte of the folded text the byte offset
/// in `text` of the character it came from (plus one entry for the end).
fn fold_with_map(text: &str) -> (String, Option<Vec<usize>>) {
    if text.is_ascii() {
        return (text.to_ascii_lowercase(), None);
    }
    let mut folded = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    for (i, c) in text.char_indices() {
        for l in c.to_lowercase() {
            for _ in 0..l.len_utf8() {
                map.push(i);
            }
            folded.push(l);
        }
    }
    map.push(text.len());
    (folded, Some(map))
}

impl DenyMatcher {
    /// `None` when the list has no non-empty term.
    pub(crate) fn new(
        terms: &[String],
        whole_word: bool,
    ) -> Result<Option<Self>, aho_corasick::BuildError> {
        let pats: Vec<String> = terms
            .iter()
            .map(|t| fold(t.trim()))
            .filter(|t| !t.is_empty())
            .collect();
        if pats.is_empty() {
            return Ok(None);
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&pats)?;
        let max_chars = pats.iter().map(|p| p.chars().count()).max().unwrap_or(0);
        let mut sorted = pats;
        sorted.sort_unstable();
        Ok(Some(Self {
            ac,
            whole_word,
            sorted,
            max_chars,
        }))
    }

    /// The earliest byte of `text[from..]` from which the rest of `text`
    /// is the start of a term (so later text could complete a match, or,
    /// for whole words, show it is not a whole word).
    pub(crate) fn could_start(&self, text: &str, from: usize) -> usize {
        let mut floor = text.len().saturating_sub(4 * self.max_chars).max(from);
        while !text.is_char_boundary(floor) {
            floor += 1;
        }
        let starts = text[floor..].char_indices().map(|(i, _)| i + floor);
        for at in starts {
            let tail = fold(&text[at..]);
            let i = self.sorted.partition_point(|t| t.as_str() < tail.as_str());
            if self.sorted.get(i).is_some_and(|t| t.starts_with(&tail)) {
                return at;
            }
        }
        text.len()
    }

    /// Leftmost-longest non-overlapping spans (byte offsets into `text`).
    pub(crate) fn find(&self, text: &str, out: &mut Vec<(usize, usize)>) {
        let (folded, map) = fold_with_map(text);
        let orig = |i: usize| {
            map.as_ref()
                .map_or(i, |m| m.get(i).copied().unwrap_or(text.len()))
        };
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for m in self.ac.find_overlapping_iter(&folded) {
            let (s, e) = (orig(m.start()), orig(m.end()));
            // A match must start and end on whole characters of the original.
            if !text.is_char_boundary(s) || !text.is_char_boundary(e) || s >= e {
                continue;
            }
            // Starts or ends inside the folding of one original character.
            let split = |i: usize| i > 0 && i < folded.len() && orig(i) == orig(i - 1);
            if map.is_some() && (split(m.start()) || split(m.end())) {
                continue;
            }
            if self.whole_word
                && (text[..s].chars().next_back().is_some_and(is_word)
                    || text[e..].chars().next().is_some_and(is_word))
            {
                continue;
            }
            spans.push((s, e));
        }
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut last_end = 0;
        for (s, e) in spans {
            if s >= last_end {
                out.push((s, e));
                last_end = e;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(terms: &[&str], whole: bool, text: &str) -> Vec<String> {
        let terms: Vec<String> = terms.iter().map(|t| (*t).to_owned()).collect();
        let m = DenyMatcher::new(&terms, whole).unwrap().unwrap();
        let mut out = Vec::new();
        m.find(text, &mut out);
        out.iter().map(|(s, e)| text[*s..*e].to_owned()).collect()
    }

    #[test]
    fn whole_word_unicode_case_insensitive() {
        assert_eq!(hits(&["bomb"], true, "a BOMB, bombastic, bombé"), ["BOMB"]);
        assert_eq!(hits(&["café"], true, "Café CAFÉ cafés"), ["Café", "CAFÉ"]);
        assert_eq!(hits(&["straße"], true, "die Straße!"), ["Straße"]);
        assert_eq!(hits(&["bomb"], false, "bombastic"), ["bomb"]);
        assert_eq!(
            hits(&["new york", "york"], true, "new yorker, new york"),
            ["new york"]
        );
        assert_eq!(hits(&["new", "new york"], true, "new yorker"), ["new"]);
        assert!(DenyMatcher::new(&[" ".into()], true).unwrap().is_none());
    }

    #[test]
    fn a_stream_holds_only_what_could_still_become_a_term() {
        let terms = vec!["nerve agent".to_owned(), "bomb".to_owned()];
        let m = DenyMatcher::new(&terms, true).unwrap().unwrap();
        assert_eq!(m.could_start("a NERVE ag", 0), 2);
        assert_eq!(m.could_start("a nerve", 0), 2);
        assert_eq!(m.could_start("the bom", 0), 4);
        assert_eq!(m.could_start("the bomb", 0), 4);
        assert_eq!(m.could_start("the bombs", 0), 9);
        assert_eq!(m.could_start("plain prose", 0), 11);
        // Found by fuzzing: the look-back limit fell inside a character.
        let m = DenyMatcher::new(&["ab".to_owned()], true).unwrap().unwrap();
        assert_eq!(m.could_start("✓✓✓✓", 0), 12);
        assert_eq!(m.could_start("✓✓✓✓a", 0), 12);
    }
}
