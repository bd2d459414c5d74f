//! The ledger's `limits` column: one JSON object per charged counter,
//! `{"rule","cap","counter","window","store","decision","charged"}`.
//!
//! Written by hand rather than through `serde_json`: it runs on every limited
//! request, and a callgrind profile of five caps put `serde_json::Value`
//! building, then `write!` with float formatting, among the largest costs of
//! the limited path (bench/LIMITS.md). The constant part of each object (rule,
//! cap, counter prefix) is escaped once per cap when the rules are built.

use super::Cap;

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

/// Appends `s` escaped for a JSON string literal (without the quotes).
pub fn push_escaped(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// A JSON number: integers without a fraction, others shortest round-trip;
/// anything not finite as 0 (JSON has no NaN).
fn push_number(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push('0');
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        for s in ["plain", "q\"b\\s", "ctl\u{1}\u{1f}\n\r\t", "ünï", ""] {
            let mut out = String::from("\"");
            push_escaped(&mut out, s);
            out.push('"');
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn numbers_round_trip() {
        for v in [0.0, 1.0, -3.0, 0.2, 1e-7, 123456.75, 1e20] {
            let mut out = String::new();
            push_number(&mut out, v);
            assert_eq!(out.parse::<f64>().unwrap(), v, "{out}");
        }
        let mut out = String::new();
        push_number(&mut out, f64::NAN);
        assert_eq!(out, "0");
    }
}
