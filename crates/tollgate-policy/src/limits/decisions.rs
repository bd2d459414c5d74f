//! The ledger's `limits` column: one array per charged counter,
//! `["rule","cap","decision",charged]`, followed by `"partition",window`
//! for a budget (a `cost_per_*` cap: restore reads them) and for any
//! decision but `allowed`. The counter is `rule:cap:partition`; its store
//! follows from the rule (`store:`) and the decision (`fallback_local`:
//! counted on this node while Redis was down). An allowed request or token
//! count leaves its partition and window out: both follow from the record
//! (its caller, model and time) and the rule.
//!
//! Short positional arrays, not objects: every limited request writes one
//! per counter, and a row's bytes are what SQLite copies, pages, checksums
//! and writes to its WAL; a run without the decisions in the row was 2-3
//! points faster in `bench/limits.sh` (bench/history/LIMITS.md).
//! Records written before 2026-12-05 hold objects, `{"rule","cap",
//! "partition","window","decision","charged"}`, and before 2026-12-04
//! `counter` (the full key) and `store` in place of `partition`; `read`
//! takes every form.
//!
//! Written by hand (`json_text`) rather than through `serde_json`: it runs
//! on every limited request, and a callgrind profile of five caps put
//! `serde_json::Value` building, then `write!` with float formatting, among
//! the largest costs of the limited path (bench/history/LIMITS.md). The constant
//! part of each decision (rule, cap, partition) is escaped once per
//! (caller, model) counter, when its template is built.

use std::borrow::Cow;

use serde_json::Value;

use tollgate_core::json_text::{push_escaped, push_number};

/// The parts of a counter's decisions fixed by the counter, escaped once
/// (per (caller, model) template, `templates.rs`).
pub(super) struct Fixed {
    /// `["rule","cap",`
    head: Box<str>,
    /// `["rule","cap","allowed",`: the common case in one copy.
    allowed: Box<str>,
    /// For a counter whose charge is always the same when allowed (a
    /// request count: 1; in flight: 0 once settled): that charge and the
    /// whole decision, built once (`constant`) and copied per request.
    whole: Option<(f64, Box<str>)>,
    /// `,"partition",`
    part: Box<str>,
    /// A budget: partition and window are always written.
    budget: bool,
}

impl Fixed {
    pub(super) fn new(rule: &str, label: &str, partition: &str, budget: bool) -> Self {
        let mut head = String::with_capacity(8 + rule.len() + label.len());
        head.push_str("[\"");
        push_escaped(&mut head, rule);
        head.push_str("\",\"");
        push_escaped(&mut head, label);
        head.push_str("\",");
        let mut part = String::with_capacity(4 + partition.len());
        part.push_str(",\"");
        push_escaped(&mut part, partition);
        part.push_str("\",");
        let mut allowed = head.clone();
        allowed.push_str(Decision::Allowed.quoted());
        Self {
            head: head.into(),
            allowed: allowed.into(),
            whole: None,
            part: part.into(),
            budget,
        }
    }

    /// An allowed decision charging `charged` is written whole, from one
    /// string built here (not for a budget, which carries its window).
    pub(super) fn constant(mut self, charged: Option<f64>) -> Self {
        self.whole = charged.filter(|_| !self.budget).map(|v| {
            let mut text = String::from(&*self.allowed);
            push_number(&mut text, v);
            text.push(']');
            (v, text.into())
        });
        self
    }

    /// An upper bound of one decision's length.
    pub(super) fn max_len(&self) -> usize {
        self.head.len() + self.part.len() + 64
    }
}

/// What a limit decided for one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ShadowRejected => "shadow_rejected",
            Decision::FallbackLocal => "fallback_local",
            Decision::Rejected => "rejected",
            Decision::Unavailable => "unavailable",
        }
    }

    /// `"allowed",`: the decision and the separator after it, one copy
    /// instead of two (this runs per counter of every limited request).
    fn quoted(self) -> &'static str {
        match self {
            Decision::Allowed => "\"allowed\",",
            Decision::ShadowRejected => "\"shadow_rejected\",",
            Decision::FallbackLocal => "\"fallback_local\",",
            Decision::Rejected => "\"rejected\",",
            Decision::Unavailable => "\"unavailable\",",
        }
    }
}

/// Appends one decision.
pub(super) fn push(out: &mut String, f: &Fixed, window: i64, decision: Decision, charged: f64) {
    if decision == Decision::Allowed {
        match &f.whole {
            Some((v, text)) if *v == charged => out.push_str(text),
            _ => {
                out.push_str(&f.allowed);
                push_number(out, charged);
                if f.budget {
                    out.push_str(&f.part);
                    out.push_str(itoa::Buffer::new().format(window));
                }
                out.push(']');
            }
        }
        return;
    }
    out.push_str(&f.head);
    out.push_str(decision.quoted());
    push_number(out, charged);
    if f.budget || !matches!(decision, Decision::Allowed | Decision::Unavailable) {
        out.push_str(&f.part);
        out.push_str(itoa::Buffer::new().format(window));
    }
    out.push(']');
}

/// One decision read back from a record (any of the three forms).
pub(super) struct Read<'a> {
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

pub(super) fn read(d: &Value) -> Option<Read<'_>> {
    if let Value::Array(a) = d {
        // Without partition and window (an allowed request or token
        // count) there is nothing to restore.
        let [rule, cap, decision, charged, part, window] = a.as_slice() else {
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
            // A budget always carries its counter and window.
            let mut out = String::new();
            push(
                &mut out,
                &Fixed::new("r\"", "cost_per_day", "key=a|", true),
                7,
                d,
                0.25,
            );
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                v,
                serde_json::json!(["r\"", "cost_per_day", name, 0.25, "key=a|", 7])
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
            // A request count only when the decision is not plain.
            let mut out = String::new();
            push(
                &mut out,
                &Fixed::new("r", "requests_per_minute", "key=a|", false),
                7,
                d,
                1.0,
            );
            let v: Value = serde_json::from_str(&out).unwrap();
            let short = matches!(d, Decision::Allowed | Decision::Unavailable);
            assert_eq!(
                v.as_array().unwrap().len(),
                if short { 4 } else { 6 },
                "{out}"
            );
            assert_eq!(v[2], name);
            // A counter with a constant charge writes the same text, for
            // that charge (written whole) and any other.
            for (budget, charged) in [(false, 1.0), (false, 2.5), (true, 1.0)] {
                let text = |f: &Fixed| {
                    let mut out = String::new();
                    push(&mut out, f, 7, d, charged);
                    out
                };
                let plain = Fixed::new("r", "requests_per_minute", "key=a|", budget);
                let constant =
                    Fixed::new("r", "requests_per_minute", "key=a|", budget).constant(Some(1.0));
                assert_eq!(text(&plain), text(&constant));
            }
        }
        assert!(read(&serde_json::json!(["r", "c", "allowed", 1])).is_none());
        assert!(read(&serde_json::json!(["r", "c", "allowed", 1, "p"])).is_none());
    }
}
