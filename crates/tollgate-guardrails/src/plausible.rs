//! Plausibility rules that a checksum alone cannot give: a card number must
//! belong to an issuer's prefix range at one of that issuer's lengths (Luhn
//! passes one random digit string in ten), and a phone number must have a
//! dialable shape and not be labelled as some other kind of number.

/// The first `k` digits as a number (digits are ASCII `0`-`9`).
fn prefix(d: &[u8], k: usize) -> u32 {
    d.iter()
        .take(k)
        .fold(0, |n, b| n * 10 + u32::from(b - b'0'))
}

/// Whether `d` (13 to 19 ASCII digits) has an issuer prefix and a length
/// that issuer uses: Visa `4` (13, 16, 19); Mastercard `51`-`55` and
/// `2221`-`2720` (16); Amex `34`, `37` (15); Discover `6011`, `644`-`649`,
/// `65` (16-19); UnionPay `62`, `81` (16-19); JCB `3528`-`3589` (16-19);
/// Diners `300`-`305`, `3095`, `36`, `38`, `39` (14-19); Mir `2200`-`2204`
/// (16-19); Maestro `50`, `56`-`58`, `6304`, `67` (13-19); RuPay `60`, `82`
/// (16); UATP `1` (15).
pub(super) fn card_issuer_ok(d: &[u8]) -> bool {
    let n = d.len();
    let (p2, p3, p4) = (prefix(d, 2), prefix(d, 3), prefix(d, 4));
    let long = (16..=19).contains(&n);
    match d.first() {
        Some(b'4') => matches!(n, 13 | 16 | 19),
        Some(b'2') => {
            ((2221..=2720).contains(&p4) && n == 16) || ((2200..=2204).contains(&p4) && long)
        }
        Some(b'5') => {
            ((51..=55).contains(&p2) && n == 16)
                || ((p2 == 50 || (56..=58).contains(&p2)) && (13..=19).contains(&n))
        }
        Some(b'3') => {
            (matches!(p2, 34 | 37) && n == 15)
                || (((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39))
                    && (14..=19).contains(&n))
                || ((3528..=3589).contains(&p4) && long)
        }
        Some(b'6') => {
            ((p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || p2 == 62) && long)
                || ((p4 == 6304 || p2 == 67) && (13..=19).contains(&n))
                || (p2 == 60 && n == 16)
        }
        Some(b'8') => (p2 == 81 && long) || (p2 == 82 && n == 16),
        Some(b'1') => n == 15,
        _ => false,
    }
}

/// Words that label a number as something other than a phone number when
/// they come just before it ("Part number 0000-1111-2222", "SKU: 415-555-0132").
const NOT_PHONE_LABELS: &[&str] = &[
    "part",
    "serial",
    "sku",
    "isbn",
    "invoice",
    "order",
    "model",
    "lot",
    "batch",
    "ref",
    "reference",
    "tracking",
    "account",
    "acct",
    "iban",
    "case",
    "ticket",
    "build",
];

/// Filler between a label and its number: "Part no.", "order number".
const FILLER: &[&str] = &["no", "nr", "num", "number", "id", "code"];

/// The last word before `at`, lower-cased, skipping separators and `#`.
fn word_before(text: &str, at: usize) -> (String, usize) {
    let head = text[..at].trim_end_matches(|c: char| c.is_whitespace() || ":#.-=".contains(c));
    let start = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric())
        .last()
        .map_or(head.len(), |(i, _)| i);
    (head[start..].to_lowercase(), start)
}

fn labelled_as_other(text: &str, start: usize) -> bool {
    let (mut word, mut at) = word_before(text, start);
    for _ in 0..2 {
        if NOT_PHONE_LABELS.contains(&word.as_str()) {
            return true;
        }
        if !FILLER.contains(&word.as_str()) || at == 0 {
            return false;
        }
        (word, at) = word_before(text, at);
    }
    false
}

/// Whether the candidate `text[start..end]` (digits `d`) can be dialled: an
/// international number's country code does not start with 0; a national
/// number written with its trunk `0` has a non-zero area code after it;
/// a North American number (10 digits, or `+1` and 10) has an area code
/// and an exchange starting 2-9; at least three different digits; and the
/// word before it does not name another kind of number.
pub(super) fn phone_plausible(text: &str, start: usize, end: usize, d: &[u8]) -> bool {
    let shown = &text[start..end];
    let mut distinct = [false; 10];
    for b in d {
        distinct[usize::from(b - b'0')] = true;
    }
    if distinct.iter().filter(|x| **x).count() < 3 {
        return false;
    }
    let nanp = |n: &[u8]| n.len() == 10 && n[0] >= b'2' && n[3] >= b'2';
    let ok = if shown.starts_with('+') {
        match d {
            [b'0', ..] => false,
            [b'1', n @ ..] if n.len() == 10 => nanp(n),
            _ => true,
        }
    } else if d.first() == Some(&b'0') {
        d.get(1).is_some_and(|b| *b != b'0')
    } else {
        d.len() != 10 || nanp(d)
    };
    ok && !labelled_as_other(text, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_and_lengths() {
        let ok = |s: &str| card_issuer_ok(s.as_bytes());
        assert!(ok("4111111111111111") && ok("4222222222222") && ok("4111111111111111110"));
        assert!(!ok("411111111111111") && !ok("41111111111111111"));
        assert!(ok("5500000000000004") && ok("2221000000000009") && !ok("2721000000000000"));
        assert!(ok("378282246310005") && !ok("378282246310005000") && !ok("3782822463100050"));
        assert!(ok("6011111111111117") && ok("3530111333300000") && ok("30569309025904"));
        assert!(!ok("9111111111111111") && !ok("0000000000000000") && !ok("7111111111111111"));
    }

    #[test]
    fn phone_rules() {
        let p = |t: &str| {
            let (s, e) = (
                t.find(|c: char| c == '+' || c == '(' || c.is_ascii_digit())
                    .unwrap(),
                t.len(),
            );
            let d: Vec<u8> = t[s..e].bytes().filter(u8::is_ascii_digit).collect();
            phone_plausible(t, s, e, &d)
        };
        assert!(p("call 202-555-0143") && p("call (415) 555-0132") && p("call +1 (646) 555-0177"));
        assert!(p("call 020 7946 0958") && p("call +44 20 7946 0958") && p("call +1-202-555-0143"));
        assert!(!p("Part number 0000-1111-2222") && !p("x 0000-1111-2222"));
        assert!(!p("call 123-456-7890") && !p("call 555-555-5555") && !p("call +0 12 345 6789"));
        assert!(
            !p("SKU: 415-555-0132") && !p("order no. 415-555-0132") && !p("Part #415-555-0132")
        );
    }
}
