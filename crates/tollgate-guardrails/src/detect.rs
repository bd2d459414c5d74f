//! The built-in detectors. Regexes find candidates; checksums and range
//! rules (Luhn and issuer prefix and length, IBAN mod-97, SSN ranges, IP
//! octets, phone plausibility, entropy) confirm them, so near-misses (a bad
//! card number, a version string, a part number) are not reported.

use regex::Regex;

use super::gate::Shape;
use super::plausible::{card_issuer_ok, phone_plausible};
use super::Category;

pub(super) struct Builtins {
    pub email: Regex,
    pub card: Regex,
    pub ssn: Regex,
    pub iban: Regex,
    pub phone: Regex,
    pub ipv4: Regex,
    pub ipv6: Regex,
    pub secret: Regex,
    pub token: Regex,
}

/// A candidate span and its category.
pub(super) type Hit = (usize, usize, Category);

impl Builtins {
    pub(crate) fn new() -> Result<Self, regex::Error> {
        Ok(Self {
            email: Regex::new(
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            )?,
            card: Regex::new(r"(?-u)\b\d(?:[ -]?\d){12,18}\b")?,
            ssn: Regex::new(r"(?-u)\b(\d{3})-(\d{2})-(\d{4})\b")?,
            iban: Regex::new(r"(?-u)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")?,
            phone: Regex::new(concat!(
                r"(?-u)(?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}\b",
                r"|\(\d{3}\) ?\d{3}[-. ]\d{4}\b",
                r"|\b\d{3}[-.]\d{3}[-.]\d{4}\b",
                r"|\b0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}\b)",
            ))?,
            ipv4: Regex::new(r"(?-u)\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")?,
            ipv6: Regex::new(r"(?i-u)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}")?,
            secret: Regex::new(concat!(
                r"(?:(?-u:\b)(?:AKIA|ASIA)[0-9A-Z]{16}\b",
                r"|-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY-----)?",
                r"|\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
                r"|\bsk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_-]{20,}",
                r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b",
                r"|\bxox[baprs]-[A-Za-z0-9-]{10,}",
                r"|\bAIza[0-9A-Za-z_-]{35}\b)",
            ))?,
            token: Regex::new(r"(?-u)[A-Za-z0-9_+/=-]{20,}")?,
        })
    }
}

pub(super) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

pub(super) fn iban_valid(raw: &str) -> bool {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&s.len()) {
        return false;
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    let area: u32 = area.parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && group != "00" && serial != "0000"
}

fn shannon(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A generic secret: long, mixed letters and digits (and mixed case), and
/// random-looking (Shannon entropy per character above `threshold`).
fn high_entropy(s: &str, threshold: f64) -> bool {
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    let lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let upper = s.bytes().any(|b| b.is_ascii_uppercase());
    digit && lower && upper && shannon(s) >= threshold
}

fn before_is(text: &str, start: usize, f: impl Fn(char) -> bool) -> bool {
    text[..start].chars().next_back().is_some_and(f)
}

fn after_is(text: &str, end: usize, f: impl Fn(char) -> bool) -> bool {
    text[end..].chars().next().is_some_and(f)
}

impl Builtins {
    pub(crate) fn email(&self, text: &str, out: &mut Vec<Hit>) {
        if !text.contains('@') {
            return;
        }
        out.extend(
            self.email
                .find_iter(text)
                .map(|m| (m.start(), m.end(), Category::Email)),
        );
    }

    pub(crate) fn card(&self, text: &str, out: &mut Vec<Hit>) {
        // Digits inside an IBAN-shaped run are account numbers, valid or
        // mistyped (a failed mod-97 must not turn its BBAN into a card).
        let mut ibans: Option<Vec<(usize, usize)>> = None;
        for m in self.card.find_iter(text) {
            let digits: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).collect();
            if !(13..=19).contains(&digits.len()) || !card_issuer_ok(&digits) || !luhn(&digits) {
                continue;
            }
            let ibans = ibans.get_or_insert_with(|| {
                self.iban
                    .find_iter(text)
                    .map(|i| (i.start(), i.end()))
                    .collect()
            });
            if !ibans.iter().any(|&(s, e)| s < m.end() && m.start() < e) {
                out.push((m.start(), m.end(), Category::CreditCard));
            }
        }
    }

    pub(crate) fn ssn(&self, text: &str, out: &mut Vec<Hit>) {
        for c in self.ssn.captures_iter(text) {
            if let (Some(all), Some(a), Some(g), Some(s)) = (c.get(0), c.get(1), c.get(2), c.get(3))
            {
                if ssn_valid(a.as_str(), g.as_str(), s.as_str()) {
                    out.push((all.start(), all.end(), Category::Ssn));
                }
            }
        }
    }

    pub(crate) fn iban(&self, text: &str, out: &mut Vec<Hit>) {
        for m in self.iban.find_iter(text) {
            if iban_valid(m.as_str()) {
                out.push((m.start(), m.end(), Category::Iban));
            }
        }
    }

    pub(crate) fn phone(&self, text: &str, out: &mut Vec<Hit>) {
        for m in self.phone.find_iter(text) {
            let digits: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).collect();
            // Part of a longer number (also across one separator, as in the
            // groups of a card number) or a dotted version: not a phone.
            let sep = |c: char| matches!(c, ' ' | '-' | '.');
            let mut back = text[..m.start()].chars().rev();
            let mut fwd = text[m.end()..].chars();
            let glued = match (back.next(), back.next()) {
                (Some(c), _) if c.is_ascii_digit() || c == '.' => true,
                (Some(c), Some(d)) => sep(c) && d.is_ascii_digit(),
                _ => false,
            } || match (fwd.next(), fwd.next()) {
                (Some(c), _) if c.is_ascii_digit() => true,
                (Some(c), Some(d)) => sep(c) && d.is_ascii_digit(),
                _ => false,
            };
            if (7..=15).contains(&digits.len())
                && !glued
                && phone_plausible(text, m.start(), m.end(), &digits)
            {
                out.push((m.start(), m.end(), Category::Phone));
            }
        }
    }

    pub(crate) fn ip(&self, text: &str, shape: &Shape, out: &mut Vec<Hit>) {
        let v4 = if shape.ipv4() {
            Some(self.ipv4.find_iter(text))
        } else {
            None
        };
        for m in v4.into_iter().flatten() {
            let ok = m
                .as_str()
                .split('.')
                .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255));
            // 1.2.3.4.5 is a version, not an address.
            let dotted = (before_is(text, m.start(), |c| c == '.')
                && text[..m.start()]
                    .chars()
                    .rev()
                    .nth(1)
                    .is_some_and(|c| c.is_ascii_digit()))
                || (after_is(text, m.end(), |c| c == '.')
                    && text[m.end()..]
                        .chars()
                        .nth(1)
                        .is_some_and(|c| c.is_ascii_digit()));
            if ok && !dotted {
                out.push((m.start(), m.end(), Category::IpAddress));
            }
        }
        if shape.ipv6() {
            for m in self.ipv6.find_iter(text) {
                let s = m.as_str();
                // `a::b` parses, but an address in prose carries digits.
                let digits = s.bytes().any(|b| b.is_ascii_digit());
                if s.len() >= 3 && digits && s.parse::<std::net::Ipv6Addr>().is_ok() {
                    out.push((m.start(), m.end(), Category::IpAddress));
                }
            }
        }
    }

    pub(crate) fn secret(&self, text: &str, shape: &Shape, entropy: f64, out: &mut Vec<Hit>) {
        if shape.secret() {
            out.extend(
                self.secret
                    .find_iter(text)
                    .map(|m| (m.start(), m.end(), Category::Secret)),
            );
        }
        if !shape.token() {
            return;
        }
        for m in self.token.find_iter(text) {
            if high_entropy(m.as_str(), entropy) {
                out.push((m.start(), m.end(), Category::Secret));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(!iban_valid("GB82 WEST 1234 5698 7654 33"));
        assert!(ssn_valid("123", "45", "6789"));
        assert!(!ssn_valid("000", "45", "6789"));
        assert!(!ssn_valid("666", "45", "6789"));
        assert!(!ssn_valid("923", "45", "6789"));
        assert!(!ssn_valid("123", "00", "6789"));
        assert!(high_entropy("Zx9Qm2LpR7tVw4Ks8NbYc3Hd", 3.5));
        assert!(!high_entropy("aaaaaaaaaaaaaaaaaaaaaaaaa1A", 3.5));
    }
}
