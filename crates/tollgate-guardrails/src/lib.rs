#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! Guardrails: content detectors over text (independent of any LLM request
//! type, so the MCP gateway can reuse them), masking with consistent
//! placeholders (and their restoring in an answer), and a streaming scanner
//! with a bounded hold-back window.
//! A `Finding` holds offsets only, never the matched value, so nothing here
//! can leak a value into a log or an error.

mod allow;
mod deny;
mod detect;
mod gate;
mod json;
mod mask;
mod plausible;
mod reach;
mod restore;
mod scanner;

pub use allow::AllowList;
pub use mask::Masker;
pub use restore::{RestoreStream, Restorer};
pub use scanner::{StreamOut, StreamScanner};

use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    Email,
    Phone,
    CreditCard,
    Ssn,
    Iban,
    IpAddress,
    Secret,
}

impl Builtin {
    /// Every built-in detector.
    pub const ALL: [Builtin; 7] = [
        Builtin::Email,
        Builtin::Phone,
        Builtin::CreditCard,
        Builtin::Ssn,
        Builtin::Iban,
        Builtin::IpAddress,
        Builtin::Secret,
    ];
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    pub name: String,
    pub pattern: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DenyList {
    pub name: String,
    pub terms: Vec<String>,
    /// Match whole words only (Unicode-aware), case-insensitive either way.
    #[serde(default = "default_true")]
    pub whole_word: bool,
}

/// What a policy detects.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    #[serde(default)]
    pub builtins: Vec<Builtin>,
    /// Named regular expressions.
    #[serde(default)]
    pub custom: Vec<CustomDetector>,
    /// Keyword and topic lists.
    #[serde(default)]
    pub deny_lists: Vec<DenyList>,
    /// Bits per character above which a long mixed token counts as a secret.
    #[serde(default = "default_entropy")]
    pub entropy_threshold: f64,
    /// Values never reported (own email domains, private addresses).
    #[serde(default)]
    pub allow: AllowList,
}

fn default_true() -> bool {
    true
}
fn default_entropy() -> f64 {
    3.8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Email,
    Phone,
    CreditCard,
    Ssn,
    Iban,
    IpAddress,
    Secret,
    Custom,
    Keyword,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::CreditCard => "credit_card",
            Category::Ssn => "ssn",
            Category::Iban => "iban",
            Category::IpAddress => "ip_address",
            Category::Secret => "secret",
            Category::Custom => "custom",
            Category::Keyword => "keyword",
        }
    }
}

/// One detected value: where it is, never what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub category: Category,
    /// The detector's name: the category for built-ins, else the custom
    /// detector's or deny list's name.
    pub detector: Arc<str>,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("detector {name}: invalid pattern: {message}")]
    Pattern { name: String, message: String },
}

pub struct DetectorSet {
    builtins: Option<detect::Builtins>,
    enabled: Vec<Builtin>,
    custom: Vec<(Arc<str>, Regex)>,
    deny: Vec<(Arc<str>, deny::DenyMatcher)>,
    entropy: f64,
    allow: AllowList,
    names: [Arc<str>; 7],
}

impl DetectorSet {
    pub fn new(spec: &DetectorSpec) -> Result<Self, DetectorError> {
        let builtins = if spec.builtins.is_empty() {
            None
        } else {
            Some(detect::Builtins::new().map_err(|e| DetectorError::Pattern {
                name: "builtin".into(),
                message: e.to_string(),
            })?)
        };
        let custom = spec
            .custom
            .iter()
            .map(|c| {
                Regex::new(&c.pattern)
                    .map(|r| (Arc::from(c.name.as_str()), r))
                    .map_err(|e| DetectorError::Pattern {
                        name: c.name.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut deny = Vec::new();
        for d in &spec.deny_lists {
            let m = deny::DenyMatcher::new(&d.terms, d.whole_word).map_err(|e| {
                DetectorError::Pattern {
                    name: d.name.clone(),
                    message: e.to_string(),
                }
            })?;
            if let Some(m) = m {
                deny.push((Arc::from(d.name.as_str()), m));
            }
        }
        let name = |c: Category| Arc::<str>::from(c.as_str());
        Ok(Self {
            builtins,
            enabled: spec.builtins.clone(),
            custom,
            deny,
            entropy: spec.entropy_threshold,
            allow: spec.allow.clone(),
            names: [
                name(Category::Email),
                name(Category::Phone),
                name(Category::CreditCard),
                name(Category::Ssn),
                name(Category::Iban),
                name(Category::IpAddress),
                name(Category::Secret),
            ],
        })
    }

    /// Non-overlapping findings in text order (on overlap the earlier, then
    /// the longer, wins).
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut hits: Vec<(usize, usize, Category, Arc<str>)> = Vec::new();
        if let Some(b) = &self.builtins {
            let raw = self.builtin_hits(b, text, &gate::Shape::of(text));
            hits.extend(
                raw.into_iter()
                    .map(|(s, e, c)| (s, e, c, self.names[c as usize].clone())),
            );
        }
        for (name, re) in &self.custom {
            hits.extend(
                re.find_iter(text)
                    .filter(|m| !m.is_empty())
                    .map(|m| (m.start(), m.end(), Category::Custom, name.clone())),
            );
        }
        let mut spans = Vec::new();
        for (name, m) in &self.deny {
            spans.clear();
            m.find(text, &mut spans);
            hits.extend(
                spans
                    .iter()
                    .map(|&(s, e)| (s, e, Category::Keyword, name.clone())),
            );
        }
        if !self.allow.is_empty() {
            hits.retain(|h| !self.allow.allows(h.2, &text[h.0..h.1]));
        }
        hits.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out: Vec<Finding> = Vec::with_capacity(hits.len());
        for (start, end, category, detector) in hits {
            if out.last().is_some_and(|l| start < l.end) {
                continue;
            }
            out.push(Finding {
                category,
                detector,
                start,
                end,
            });
        }
        out
    }
}

impl DetectorSet {
    /// The enabled built-in detectors' hits, each regex run only when the
    /// text's shape allows a match.
    fn builtin_hits(
        &self,
        b: &detect::Builtins,
        text: &str,
        shape: &gate::Shape,
    ) -> Vec<detect::Hit> {
        let mut raw = Vec::new();
        for which in &self.enabled {
            match which {
                Builtin::Email => b.email(text, &mut raw),
                Builtin::Phone if shape.phone() => b.phone(text, &mut raw),
                Builtin::CreditCard if shape.card() => b.card(text, &mut raw),
                Builtin::Ssn if shape.ssn() => b.ssn(text, &mut raw),
                Builtin::Iban if shape.iban() => b.iban(text, &mut raw),
                Builtin::IpAddress => b.ip(text, shape, &mut raw),
                Builtin::Secret => b.secret(text, shape, self.entropy, &mut raw),
                _ => {}
            }
        }
        raw
    }

    /// The earliest byte of `text[from..]` at which a match could still
    /// start that text appended later would extend or change; `None` when
    /// a custom regex is configured (its reach is unknown). Text before it
    /// scans the same whatever comes next, so a stream may release it.
    pub fn hold_from(&self, text: &str, from: usize) -> Option<usize> {
        if !self.custom.is_empty() {
            return None;
        }
        let mut from = from.min(text.len());
        while !text.is_char_boundary(from) {
            from += 1;
        }
        let mut at = text.len();
        if self.builtins.is_some() {
            for which in &self.enabled {
                at = at.min(reach::builtin(*which, text, from));
            }
        }
        for (_, m) in &self.deny {
            at = at.min(m.could_start(text, from));
        }
        Some(at.max(from))
    }
}

#[cfg(test)]
mod tests;
