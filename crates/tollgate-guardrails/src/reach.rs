//! How far back in a stream's held text a match could still start that
//! text arriving later would extend or invalidate. Each built-in spans a
//! known set of characters up to a known length (a card number is digits,
//! spaces and dashes, at most 37 bytes), so text before the last character
//! it cannot span, or further back than its longest match, is final for it.
//! Right-context checks (`\b`, "glued to a longer number", dotted versions)
//! look at characters the detector itself spans, so a finding followed by
//! a character outside its set is final too.

use super::Builtin;

/// The earliest byte of `text[from..]` where a run of characters `spans`
/// accepts reaches the end of `text`, no further back than `max` bytes.
fn run_start(text: &str, from: usize, max: usize, spans: impl Fn(char) -> bool) -> usize {
    let floor = text.len().saturating_sub(max).max(from);
    let mut at = text.len();
    for (i, c) in text[from..].char_indices().rev() {
        let i = i + from;
        if i < floor || !spans(c) {
            break;
        }
        at = i;
    }
    at
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+/=.-".contains(c)
}

/// Where a built-in's next match could start (`text.len()` when none can
/// grow into later text).
pub(super) fn builtin(which: Builtin, text: &str, from: usize) -> usize {
    let digit = |c: char| c.is_ascii_digit();
    match which {
        Builtin::Email => run_start(text, from, 320, |c| {
            c.is_ascii_alphanumeric() || "._%+-@".contains(c)
        }),
        Builtin::Phone => run_start(text, from, 40, |c| digit(c) || " .-()+".contains(c)),
        Builtin::CreditCard => run_start(text, from, 40, |c| digit(c) || c == ' ' || c == '-'),
        Builtin::Ssn => run_start(text, from, 12, |c| digit(c) || c == '-'),
        Builtin::Iban => run_start(text, from, 50, |c| {
            c.is_ascii_uppercase() || digit(c) || c == ' '
        }),
        Builtin::IpAddress => run_start(text, from, 48, |c| {
            c.is_ascii_hexdigit() || c == '.' || c == ':'
        }),
        Builtin::Secret => {
            let tokens = run_start(text, from, usize::MAX, token_char);
            // A private key block spans lines: hold from an unclosed header.
            let open = text[from..]
                .rfind("-----BEGIN")
                .map(|b| b + from)
                .filter(|&b| {
                    !text[b..]
                        .find("-----END")
                        .is_some_and(|e| text[b + e..].contains("KEY-----"))
                });
            open.map_or(tokens, |b| b.min(tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_stop_at_characters_a_detector_cannot_span() {
        let t = "card 4111 1111 and more";
        assert_eq!(builtin(Builtin::CreditCard, t, 0), t.len());
        let t = "card 4111 1111";
        assert_eq!(builtin(Builtin::CreditCard, t, 0), 4);
        assert_eq!(builtin(Builtin::Ssn, "x 123-45", 0), 2);
        assert_eq!(builtin(Builtin::Email, "write to bob@exa", 0), 9);
        let long = "1".repeat(100);
        assert_eq!(builtin(Builtin::CreditCard, &long, 0), 60);
        assert_eq!(
            builtin(
                Builtin::Secret,
                "key -----BEGIN RSA PRIVATE KEY-----\nMII",
                0
            ),
            4
        );
        let closed = "-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY----- ok";
        assert_eq!(builtin(Builtin::Secret, closed, 0), closed.len() - 2);
    }
}
