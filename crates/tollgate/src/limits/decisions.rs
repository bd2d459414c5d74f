//! The ledger's `limits` column: one JSON object per charged counter,
//! `{"rule","cap","partition","window","decision","charged"}`. The counter
//! is `rule:cap:partition`; its store follows from the rule (`store:`) and
//! the decision (`fallback_local`: counted on this node while Redis was
//! down). Records written before this form have `counter` (the full key)
//! and `store` instead of `partition`; `limits::restore` reads both. The
//! shorter form keeps the ledger row small: a row's bytes are what SQLite
//! copies, pages and checksums (bench/LIMITS.md, sixth session).
//!
//! Written by hand (`json_text`) rather than through `serde_json`: it runs
//! on every limited request, and a callgrind profile of five caps put
//! `serde_json::Value` building, then `write!` with float formatting, among
//! the largest costs of the limited path (bench/LIMITS.md). The constant part of each object (rule,
//! cap, partition) is escaped once per (caller, model) counter, when its
//! template is built.

use crate::json_text::{push_escaped, push_number};

/// `{"rule":"…","cap":"…","partition":"` — the part of a decision fixed
/// by its cap; the counter's partition follows.
pub fn head(rule: &str, label: &str) -> String {
    let mut out = String::with_capacity(40 + rule.len() + label.len());
    out.push_str("{\"rule\":\"");
    push_escaped(&mut out, rule);
    out.push_str("\",\"cap\":\"");
    push_escaped(&mut out, label);
    out.push_str("\",\"partition\":\"");
    out
}

/// Appends one decision object; `head` is `head()` with the counter's
/// partition and `","window":` appended (`templates.rs`).
pub fn push(out: &mut String, head: &str, window: i64, decision: &str, charged: f64) {
    out.push_str(head);
    out.push_str(itoa::Buffer::new().format(window));
    out.push_str(",\"decision\":\"");
    out.push_str(decision);
    out.push_str("\",\"charged\":");
    push_number(out, charged);
    out.push('}');
}
