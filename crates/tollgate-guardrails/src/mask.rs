//! Typed placeholders, consistent within one request: the same value always
//! becomes the same `[EMAIL_1]`. The values live only in this per-request
//! map, in memory, and are dropped with it. Placeholders minted for a
//! policy that restores (`mask_restorable`) are also kept by placeholder,
//! for the `Restorer` that turns them back in the answer; a placeholder
//! the request already holds as literal text is never minted then, so each
//! one stands for one value only.

use std::collections::{HashMap, HashSet};

use super::restore::{placeholder_at, Restorer};
use super::{Category, Finding};

#[derive(Default)]
pub struct Masker {
    seen: HashMap<(Category, String), usize>,
    next: HashMap<Category, usize>,
    /// Placeholder → the value it stands for, for restoring policies only.
    restorable: HashMap<String, String>,
    /// Placeholder-shaped text the request itself holds (`reserve_literals`).
    taken: HashSet<String>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values never print: only how many there are.
        f.debug_struct("Masker")
            .field("values", &self.seen.len())
            .field("restorable", &self.restorable.len())
            .finish()
    }
}

impl Masker {
    fn placeholder(&mut self, category: Category, value: &str) -> String {
        let key = (category, value.to_string());
        if let Some(n) = self.seen.get(&key) {
            return format_placeholder(category, *n);
        }
        let next = self.next.entry(category).or_insert(0);
        loop {
            *next += 1;
            let p = format_placeholder(category, *next);
            if !self.taken.contains(&p) {
                self.seen.insert(key, *next);
                return p;
            }
        }
    }

    /// `text` with every finding replaced by its placeholder. Findings must
    /// be sorted and non-overlapping (as `DetectorSet::scan` returns them).
    pub fn mask(&mut self, text: &str, findings: &[Finding]) -> String {
        self.mask_with(text, findings, false)
    }

    /// Like `mask`, and each placeholder is kept with its value so that a
    /// `Restorer` can turn it back.
    pub fn mask_restorable(&mut self, text: &str, findings: &[Finding]) -> String {
        self.mask_with(text, findings, true)
    }

    fn mask_with(&mut self, text: &str, findings: &[Finding], keep: bool) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            if f.start < at || f.end > text.len() {
                continue;
            }
            out.push_str(&text[at..f.start]);
            let value = &text[f.start..f.end];
            let p = self.placeholder(f.category, value);
            out.push_str(&p);
            if keep && !self.restorable.contains_key(&p) {
                self.restorable.insert(p, value.to_string());
            }
            at = f.end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Notes every placeholder-shaped literal in `text` (as a caller may
    /// write `[EMAIL_1]` itself) so that none is minted: a restored answer
    /// then never turns the caller's own literal into a value. Called on
    /// the request's texts before any masking.
    pub fn reserve_literals(&mut self, text: &str) {
        let mut from = 0;
        while let Some(i) = text[from..].find('[') {
            let at = from + i;
            match placeholder_at(text, at) {
                Some(end) => {
                    self.taken.insert(text[at..end].to_string());
                    from = end;
                }
                None => from = at + 1,
            }
        }
    }

    /// The placeholders restoring policies minted, with their values;
    /// `None` when there are none.
    pub fn restorer(&self) -> Option<Restorer> {
        Restorer::new(&self.restorable)
    }
}

fn format_placeholder(category: Category, n: usize) -> String {
    format!("[{}_{}]", category.as_str().to_ascii_uppercase(), n)
}
