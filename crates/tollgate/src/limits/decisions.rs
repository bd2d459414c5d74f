//! The ledger's `limits` column: one JSON object per charged counter,
//! `{"rule","cap","counter","window","store","decision","charged"}`.
//!
//! Written by hand (`json_text`) rather than through `serde_json`: it runs
//! on every limited request, and a callgrind profile of five caps put
//! `serde_json::Value` building, then `write!` with float formatting, among
//! the largest costs of the limited path (bench/LIMITS.md). The constant part of each object (rule,
//! cap, counter prefix) is escaped once per cap when the rules are built.

use super::Cap;
use crate::json_text::{push_escaped, push_number};

/// `{"rule":"…","cap":"…","counter":"<prefix>` — the part of a decision
/// fixed by its cap; the counter's partition follows.
pub fn head(rule: &str, label: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(32 + rule.len() + label.len() + prefix.len());
    out.push_str("{\"rule\":\"");
    push_escaped(&mut out, rule);
    out.push_str("\",\"cap\":\"");
    push_escaped(&mut out, label);
    out.push_str("\",\"counter\":\"");
    push_escaped(&mut out, prefix);
    out
}

/// Appends one decision object.
pub fn push(
    out: &mut String,
    cap: &Cap,
    partition: &str,
    window: i64,
    redis: bool,
    decision: &str,
    charged: f64,
) {
    out.push_str(&cap.json_head);
    push_escaped(out, partition);
    out.push_str("\",\"window\":");
    out.push_str(itoa::Buffer::new().format(window));
    out.push_str(if redis {
        ",\"store\":\"redis\",\"decision\":\""
    } else {
        ",\"store\":\"local\",\"decision\":\""
    });
    out.push_str(decision);
    out.push_str("\",\"charged\":");
    push_number(out, charged);
    out.push('}');
}
