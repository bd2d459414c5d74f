//! The ledger's `limits` column: one array per charged counter,
//! `["rule","cap","partition",window,"decision",charged]`. The counter is
//! `rule:cap:partition`; its store follows from the rule (`store:`) and the
//! decision (`fallback_local`: counted on this node while Redis was down).
//!
//! Positional arrays, not objects: every limited request writes one per
//! counter, and a row's bytes are what SQLite copies, pages, checksums and
//! writes to its WAL (bench/LIMITS.md, sixth and eighth sessions); the
//! field names were half of each decision. Records written before
//! 2026-12-05 hold objects, `{"rule","cap","partition","window","decision",
//! "charged"}`, and before 2026-12-04 `counter` (the full key) and `store`
//! in place of `partition`; `read` takes all three.
//!
//! Written by hand (`json_text`) rather than through `serde_json`: it runs
//! on every limited request, and a callgrind profile of five caps put
//! `serde_json::Value` building, then `write!` with float formatting, among
//! the largest costs of the limited path (bench/LIMITS.md). The constant
//! part of each decision (rule, cap, partition) is escaped once per
//! (caller, model) counter, when its template is built.

use std::borrow::Cow;

use serde_json::Value;

use crate::json_text::{push_escaped, push_number};

/// `["rule","cap","partition",` — the part of a decision fixed by its
/// counter.
pub fn head(rule: &str, label: &str, partition: &str) -> String {
    let mut out = String::with_capacity(12 + rule.len() + label.len() + partition.len());
    out.push_str("[\"");
    push_escaped(&mut out, rule);
    out.push_str("\",\"");
    push_escaped(&mut out, label);
    out.push_str("\",\"");
    push_escaped(&mut out, partition);
    out.push_str("\",");
    out
}

/// What a limit decided for one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Shadow mode: would have been rejected.
    ShadowRejected,
    /// A `store: redis` rule counted on this node while Redis was down.
    FallbackLocal,
    Rejected,
    /// A `store: redis` rule that could not reach Redis refused.
    Unavailable,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ShadowRejected => "shadow_rejected",
            Decision::FallbackLocal => "fallback_local",
            Decision::Rejected => "rejected",
            Decision::Unavailable => "unavailable",
        }
    }

    /// `,"allowed",`: the decision with the separators around it, one copy
    /// instead of three (this runs per counter of every limited request).
    fn quoted(self) -> &'static str {
        match self {
            Decision::Allowed => ",\"allowed\",",
            Decision::ShadowRejected => ",\"shadow_rejected\",",
            Decision::FallbackLocal => ",\"fallback_local\",",
            Decision::Rejected => ",\"rejected\",",
            Decision::Unavailable => ",\"unavailable\",",
        }
    }
}

/// Appends one decision; `head` is `head()` of its counter.
pub fn push(out: &mut String, head: &str, window: i64, decision: Decision, charged: f64) {
    out.push_str(head);
    out.push_str(itoa::Buffer::new().format(window));
    out.push_str(decision.quoted());
    push_number(out, charged);
    out.push(']');
}

/// One decision read back from a record (any of the three forms).
pub struct Read<'a> {
    pub rule: &'a str,
    pub cap: &'a str,
    /// `rule:cap:partition`.
    pub counter: Cow<'a, str>,
    pub window: i64,
    pub charged: f64,
    /// Counted on this node: the rule is local (the caller checks), or the
    /// record says so. False for a rejection and for a record naming
    /// another store.
    pub counted_here: bool,
}

pub fn read(d: &Value) -> Option<Read<'_>> {
    if let Value::Array(a) = d {
        let [rule, cap, part, window, decision, charged] = a.as_slice() else {
            return None;
        };
        let (rule, cap, part) = (rule.as_str()?, cap.as_str()?, part.as_str()?);
        return Some(Read {
            rule,
            cap,
            counter: Cow::Owned(format!("{rule}:{cap}:{part}")),
            window: window.as_i64()?,
            charged: charged.as_f64()?,
            counted_here: !matches!(decision.as_str(), Some("rejected" | "unavailable")),
        });
    }
    let (rule, cap) = (d["rule"].as_str()?, d["cap"].as_str()?);
    let counter = match (d["partition"].as_str(), d["counter"].as_str()) {
        (Some(part), _) => Cow::Owned(format!("{rule}:{cap}:{part}")),
        (None, Some(key)) => Cow::Borrowed(key),
        (None, None) => return None,
    };
    Some(Read {
        rule,
        cap,
        counter,
        window: d["window"].as_i64()?,
        charged: d["charged"].as_f64()?,
        counted_here: match d["store"].as_str() {
            Some(store) => store == "local",
            None => d["decision"].as_str() != Some("rejected"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_write_and_read_back() {
        let names = [
            (Decision::Allowed, "allowed"),
            (Decision::ShadowRejected, "shadow_rejected"),
            (Decision::FallbackLocal, "fallback_local"),
            (Decision::Rejected, "rejected"),
            (Decision::Unavailable, "unavailable"),
        ];
        for (d, name) in names {
            assert_eq!(d.as_str(), name);
            let mut out = String::new();
            push(&mut out, &head("r\"", "cost_per_day", "key=a|"), 7, d, 0.25);
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                v,
                serde_json::json!(["r\"", "cost_per_day", "key=a|", 7, name, 0.25])
            );
            let r = read(&v).unwrap();
            assert_eq!(
                (r.rule, r.cap, &*r.counter),
                ("r\"", "cost_per_day", "r\":cost_per_day:key=a|")
            );
            assert_eq!((r.window, r.charged), (7, 0.25));
            assert_eq!(
                r.counted_here,
                !matches!(d, Decision::Rejected | Decision::Unavailable)
            );
        }
        assert!(read(&serde_json::json!(["r", "c", "p", 1, "allowed"])).is_none());
    }
}
