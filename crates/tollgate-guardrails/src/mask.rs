//! Typed placeholders, consistent within one request: the same value always
//! becomes the same `[EMAIL_1]`. The values live only in this per-request
//! map, in memory, and are dropped with it.

use std::collections::HashMap;

use super::{Category, Finding};

#[derive(Default)]
pub struct Masker {
    seen: HashMap<(Category, String), usize>,
    next: HashMap<Category, usize>,
}

impl Masker {
    fn placeholder(&mut self, category: Category, value: &str) -> String {
        let n = match self.seen.get(&(category, value.to_string())) {
            Some(n) => *n,
            None => {
                let n = self.next.entry(category).or_insert(0);
                *n += 1;
                let n = *n;
                self.seen.insert((category, value.to_string()), n);
                n
            }
        };
        format!("[{}_{}]", category.as_str().to_ascii_uppercase(), n)
    }

    /// `text` with every finding replaced by its placeholder. Findings must
    /// be sorted and non-overlapping (as `DetectorSet::scan` returns them).
    pub fn mask(&mut self, text: &str, findings: &[Finding]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            if f.start < at || f.end > text.len() {
                continue;
            }
            out.push_str(&text[at..f.start]);
            let p = self.placeholder(f.category, &text[f.start..f.end]);
            out.push_str(&p);
            at = f.end;
        }
        out.push_str(&text[at..]);
        out
    }
}
