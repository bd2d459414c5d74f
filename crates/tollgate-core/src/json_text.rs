//! Writing JSON text by hand, for the few lines written once per request in
//! the background (the ledger's `limits` column, the audit line).
//!
//! Why not `serde_json` there: it escapes every key and value byte by byte
//! and formats through `Serializer` state; a callgrind profile put it at
//! ~16 k instructions per audit line and among the largest costs of the
//! limited path (bench/history/LEDGER.md, bench/history/LIMITS.md). Here constant keys are
//! written pre-quoted, a string needing no escape (nearly all) is copied in
//! one go, and numbers go through `itoa`/`ryu`. The output is checked
//! against `serde_json` in the tests.

/// Appends `s` escaped for a JSON string literal (without the quotes).
pub fn push_escaped(out: &mut String, s: &str) {
    // No early exit: the compiler vectorises this scan.
    let plain = s
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.push_str(s);
        return;
    }
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

/// Appends `"s"`, escaped.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// A JSON number: integers without a fraction, others shortest round-trip;
/// anything not finite as 0 (JSON has no NaN).
pub fn push_number(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push('0');
    } else if v.abs() < 9.0e15 && (v as i64) as f64 == v {
        // (Not `fract()`: a libm call, on every number of every limited request.)
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// `n / 1000` with at most three decimals, trailing zeros dropped
/// (`1500` → `1.5`, `250` → `0.25`, `2000` → `2`); `n` ≥ 0.
pub fn push_thousandths(out: &mut String, n: i64) {
    let n = n.max(0);
    out.push_str(itoa::Buffer::new().format(n / 1000));
    let frac = n % 1000;
    if frac != 0 {
        out.push('.');
        for d in [frac / 100, frac / 10 % 10, frac % 10] {
            out.push(char::from(b'0' + d as u8));
        }
        while out.ends_with('0') {
            out.pop();
        }
    }
}

/// A duration in milliseconds, to the microsecond. Shortest round-trip
/// formatting (`ryu`) was ~440 instructions per value in the audit line,
/// and a latency has no meaningful digits past the microsecond.
pub fn push_millis(out: &mut String, ms: f64) {
    if ms.is_finite() && (0.0..9.0e12).contains(&ms) {
        push_thousandths(out, (ms * 1000.0).round() as i64);
    } else {
        push_number(out, ms);
    }
}

/// An integer.
pub fn push_int(out: &mut String, v: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_to_the_microsecond() {
        for (v, want) in [
            (1.5, "1.5"),
            (0.25, "0.25"),
            (12.0, "12"),
            (0.0, "0"),
            (7.0625, "7.063"),
            (0.0004, "0"),
            (0.0005, "0.001"),
            (1234.5678, "1234.568"),
            (-2.0, "-2"),
            (f64::NAN, "0"),
        ] {
            let mut out = String::new();
            push_millis(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "plain",
            "q\"b\\s",
            "ctl\u{1}\u{1f}\n\r\t",
            "ünï",
            "",
            "\u{7f}",
        ] {
            let mut out = String::new();
            push_str(&mut out, s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
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
        out.clear();
        push_int(&mut out, -42i64);
        assert_eq!(out, "-42");
    }
}
