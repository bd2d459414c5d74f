//! The ledger's `limits` column: the limits' typed decisions
//! (`tollgate_core::limit_decision`) as the ledger stores them, one array
//! per charged counter, `["rule","cap","decision",charged]`, followed by
//! `"partition",window` for a budget (a `cost_per_*` cap, whose spend is
//! restored at start) and for any decision but `allowed` and
//! `unavailable`. An allowed request or token count leaves partition and
//! window out: both follow from the record (its caller, model and time)
//! and the rule.
//!
//! Short positional arrays, not objects: every limited request writes one
//! per counter, and a row's bytes are what SQLite copies, pages, checksums
//! and writes to its WAL; a run without the decisions in the row was 2-3
//! points faster in `bench/limits.sh` (bench/history/LIMITS.md).
//!
//! Encoded by hand (`json_text`) rather than through `serde_json`, off the
//! request path (by the ledger writer or the audit writer, whichever needs
//! it first, once per record), with each counter's fixed part escaped once
//! and kept on the counter. Rows in older forms are read by `compat.rs`.
//!
//! Part of the usage record (below the ledger that writes it and the store
//! that reads it back and sums budget spend from it), so neither of those
//! imports the other for it.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use tollgate_core::json_text::{push_escaped, push_number};
use tollgate_core::limit_decision::{CounterId, CounterSpend, Decision, LimitDecision};

mod compat;

/// A record's `limits`: typed decisions handed over by the limits, or the
/// text of a record read back from the store or the spool. Reads as the
/// stored JSON text (`Deref<Target = str>`), encoded once on first read.
#[derive(Default)]
pub struct LimitsColumn {
    decisions: Vec<LimitDecision>,
    text: OnceLock<Box<str>>,
}

impl LimitsColumn {
    /// The column as read back (any of the forms `compat.rs` reads).
    pub fn stored(text: impl Into<Box<str>>) -> Self {
        let text = OnceLock::from(text.into());
        Self {
            decisions: Vec::new(),
            text,
        }
    }

    /// What each budget counter this record charged on this node spent,
    /// by (counter, window); the typed decisions when there are, else the
    /// text read in whichever form it has. Borrowed: the ledger sums these
    /// per batch, and copies a name only for a counter new to the batch.
    pub fn budget_spend(&self, mut f: impl FnMut(SpendRef<'_>)) {
        if self.decisions.is_empty() {
            if let Some(text) = self.text.get() {
                compat::budget_spend(text, |s| {
                    f(SpendRef {
                        rule: &s.rule,
                        cap: &s.cap,
                        partition: &s.partition,
                        window: s.window,
                        spent: s.spent,
                    })
                });
            }
            return;
        }
        for d in &self.decisions {
            if d.counter.budget && d.decision.charged_anywhere() {
                f(SpendRef {
                    rule: &d.counter.rule,
                    cap: d.counter.cap,
                    partition: &d.counter.partition,
                    window: d.window,
                    spent: d.charged,
                });
            }
        }
    }
}

/// One budget decision's spend, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendRef<'a> {
    pub rule: &'a str,
    pub cap: &'a str,
    pub partition: &'a str,
    pub window: i64,
    pub spent: f64,
}

impl SpendRef<'_> {
    pub fn to_owned(self) -> CounterSpend {
        CounterSpend {
            rule: self.rule.to_string(),
            cap: self.cap.to_string(),
            partition: self.partition.to_string(),
            window: self.window,
            spent: self.spent,
        }
    }
}

impl From<Vec<LimitDecision>> for LimitsColumn {
    fn from(decisions: Vec<LimitDecision>) -> Self {
        Self {
            decisions,
            text: OnceLock::new(),
        }
    }
}

impl From<&str> for LimitsColumn {
    fn from(text: &str) -> Self {
        Self::stored(text)
    }
}

impl Deref for LimitsColumn {
    type Target = str;

    fn deref(&self) -> &str {
        self.text.get_or_init(|| encode(&self.decisions))
    }
}

impl fmt::Display for LimitsColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for LimitsColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Clone for LimitsColumn {
    fn clone(&self) -> Self {
        Self {
            decisions: self.decisions.clone(),
            text: self.text.clone(),
        }
    }
}

impl PartialEq for LimitsColumn {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// In the spool, the column's text (as spools written by earlier builds
/// hold it).
impl serde::Serialize for LimitsColumn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LimitsColumn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::stored)
    }
}

/// The decisions as the column's JSON text.
fn encode(decisions: &[LimitDecision]) -> Box<str> {
    let mut out = String::with_capacity(2 + 48 * decisions.len());
    out.push('[');
    for (i, d) in decisions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push(&mut out, d);
    }
    out.push(']');
    out.into()
}

/// Appends one decision.
fn push(out: &mut String, d: &LimitDecision) {
    let c = &*d.counter;
    let (head, part) = c.encoded.get_or_init(|| fixed(c));
    out.push_str(head);
    out.push_str(quoted(d.decision));
    push_number(out, d.charged);
    if c.budget || !matches!(d.decision, Decision::Allowed | Decision::Unavailable) {
        out.push_str(part);
        out.push_str(itoa::Buffer::new().format(d.window));
    }
    out.push(']');
}

/// A counter's fixed parts, escaped: `["rule","cap",` and `,"partition",`.
fn fixed(c: &CounterId) -> (Box<str>, Box<str>) {
    let mut head = String::with_capacity(8 + c.rule.len() + c.cap.len());
    head.push_str("[\"");
    push_escaped(&mut head, &c.rule);
    head.push_str("\",\"");
    push_escaped(&mut head, c.cap);
    head.push_str("\",");
    let mut part = String::with_capacity(4 + c.partition.len());
    part.push_str(",\"");
    push_escaped(&mut part, &c.partition);
    part.push_str("\",");
    (head.into(), part.into())
}

/// `"allowed",`: the decision and the separator after it in one copy.
fn quoted(d: Decision) -> &'static str {
    match d {
        Decision::Allowed => "\"allowed\",",
        Decision::ShadowRejected => "\"shadow_rejected\",",
        Decision::FallbackLocal => "\"fallback_local\",",
        Decision::Rejected => "\"rejected\",",
        Decision::Unavailable => "\"unavailable\",",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use serde_json::{json, Value};

    fn decision(budget: bool, decision: Decision, charged: f64) -> LimitDecision {
        let cap = if budget {
            "cost_per_day"
        } else {
            "requests_per_minute"
        };
        LimitDecision {
            counter: Arc::new(CounterId::new("r\"", cap, "key=a|", budget)),
            decision,
            charged,
            window: 7,
        }
    }

    #[test]
    fn decisions_encode_as_documented_and_read_back() {
        let all = [
            Decision::Allowed,
            Decision::ShadowRejected,
            Decision::FallbackLocal,
            Decision::Rejected,
            Decision::Unavailable,
        ];
        for d in all {
            // A budget always carries its partition and window.
            let col = LimitsColumn::from(vec![decision(true, d, 0.25)]);
            let v: Value = serde_json::from_str(&col).unwrap();
            assert_eq!(
                v,
                json!([["r\"", "cost_per_day", d.as_str(), 0.25, "key=a|", 7]])
            );
            // Its spend reads back the same from the text.
            let mut typed = Vec::new();
            col.budget_spend(|s| typed.push(s.to_owned()));
            let mut read = Vec::new();
            LimitsColumn::stored(&*col).budget_spend(|s| read.push(s.to_owned()));
            assert_eq!(typed, read);
            assert_eq!(typed.len(), usize::from(d.charged_anywhere()));
            // A request count carries them only when not plainly allowed.
            let col = LimitsColumn::from(vec![decision(false, d, 1.0)]);
            let v: Value = serde_json::from_str(&col).unwrap();
            let short = matches!(d, Decision::Allowed | Decision::Unavailable);
            assert_eq!(v[0].as_array().unwrap().len(), if short { 4 } else { 6 });
            assert_eq!(v[0][2], d.as_str());
            assert_eq!(v[0][3], 1);
        }
        assert_eq!(&*LimitsColumn::default(), "[]");
    }

    #[test]
    fn the_spool_keeps_the_text() {
        let col = LimitsColumn::from(vec![decision(true, Decision::Allowed, 0.5)]);
        let line = serde_json::to_string(&col).unwrap();
        let back: LimitsColumn = serde_json::from_str(&line).unwrap();
        assert_eq!(back, col);
        assert_eq!(&*back, &*col);
    }
}
