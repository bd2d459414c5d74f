//! One pass over the text that tells which built-in detectors could match
//! at all, so their regexes run only when a match is possible. Each gate is
//! a necessary condition of its detector's regex (derived from the pattern
//! in `detect.rs`; keep them in step): a gate that is false proves there is
//! no match, a gate that is true only means the regex must look. Prose and
//! code rarely hold 9 digits in a row or a 15-character token, and running
//! seven regexes over every request was the largest cost of a request with
//! a PII input guardrail on.

/// What the pass saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The most digits in one run where digits are separated by at most two
    /// consecutive characters of ` .-()` (cards, SSNs, phones, IPv4).
    pub digits: u32,
    /// A `+` directly followed by a digit (international phone numbers).
    pub plus_digit: bool,
    /// Two ASCII capitals followed by two digits (an IBAN's start).
    pub iban_start: bool,
    /// `::`, or the number of colons (IPv6).
    pub double_colon: bool,
    pub colons: u32,
    /// The longest run of `[A-Za-z0-9_+/=-]` (keys, tokens, secrets).
    pub word: u32,
    /// `eyJ` (a JWT segment) and `-----B` (a PEM block) occur.
    pub jwt: bool,
    pub pem: bool,
}

impl Shape {
    pub(crate) fn of(text: &str) -> Self {
        let mut s = Shape::default();
        let (mut run, mut seps, mut word) = (0u32, 0u32, 0u32);
        let (mut p1, mut p2, mut p3) = (0u8, 0u8, 0u8);
        let mut dashes = 0u32;
        for &b in text.as_bytes() {
            if b.is_ascii_digit() {
                run += 1;
                seps = 0;
                s.digits = s.digits.max(run);
                if p1 == b'+' {
                    s.plus_digit = true;
                }
                if p1.is_ascii_digit() && p2.is_ascii_uppercase() && p3.is_ascii_uppercase() {
                    s.iban_start = true;
                }
            } else if matches!(b, b' ' | b'.' | b'-' | b'(' | b')') {
                seps += 1;
                if seps > 2 {
                    run = 0;
                }
            } else {
                run = 0;
                seps = 0;
            }
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'/' | b'=' | b'-') {
                word += 1;
                s.word = s.word.max(word);
            } else {
                word = 0;
            }
            match b {
                b':' => {
                    s.colons += 1;
                    s.double_colon |= p1 == b':';
                }
                b'J' => s.jwt |= p1 == b'y' && p2 == b'e',
                b'B' => s.pem |= dashes >= 5,
                _ => {}
            }
            dashes = if b == b'-' { dashes + 1 } else { 0 };
            (p3, p2, p1) = (p2, p1, b);
        }
        s
    }

    /// Every gate open: what the detectors did before the gates (tests
    /// compare the two).
    #[cfg(test)]
    pub(crate) fn open() -> Self {
        Shape {
            digits: u32::MAX,
            plus_digit: true,
            iban_start: true,
            double_colon: true,
            colons: u32::MAX,
            word: u32::MAX,
            jwt: true,
            pem: true,
        }
    }

    /// `\b\d(?:[ -]?\d){12,18}\b`: 13 digits.
    pub(crate) fn card(&self) -> bool {
        self.digits >= 13
    }

    /// `\d{3}-\d{2}-\d{4}`: 9 digits.
    pub(crate) fn ssn(&self) -> bool {
        self.digits >= 9
    }

    /// `+` and a digit, or one of the national forms (9 digits at least).
    pub(crate) fn phone(&self) -> bool {
        self.plus_digit || self.digits >= 9
    }

    /// `\d{1,3}(\.\d{1,3}){3}`: 4 digits.
    pub(crate) fn ipv4(&self) -> bool {
        self.digits >= 4
    }

    /// `::` or an address written in full (seven colons).
    pub(crate) fn ipv6(&self) -> bool {
        self.double_colon || self.colons >= 7
    }

    pub(crate) fn iban(&self) -> bool {
        self.iban_start
    }

    /// The named secret shapes: the shortest is `xox?-` and 10 more
    /// characters; JWTs contain `.` and PEM blocks spaces, so they are
    /// flagged by their markers instead.
    pub(crate) fn secret(&self) -> bool {
        self.word >= 15 || self.jwt || self.pem
    }

    /// `[A-Za-z0-9_+/=-]{20,}`, the candidates of the entropy rule.
    pub(crate) fn token(&self) -> bool {
        self.word >= 20
    }
}

#[cfg(test)]
mod tests {
    use super::Shape;

    #[test]
    fn prose_and_numbered_words_open_no_gate() {
        let text: String = (0..150).map(|i| format!("token{i} ")).collect();
        let s = Shape::of(&text);
        assert!(!s.card() && !s.ssn() && !s.phone() && !s.ipv4() && !s.ipv6());
        assert!(!s.iban() && !s.secret() && !s.token());
    }

    #[test]
    fn each_shape_opens_its_gate() {
        assert!(Shape::of("card 4111 1111 1111 1111.").card());
        assert!(Shape::of("4111-1111-1111-1111").card());
        assert!(Shape::of("ssn 123-45-6789").ssn());
        assert!(Shape::of("call (555) 123-4567").phone());
        assert!(Shape::of("call +1 5").phone());
        assert!(Shape::of("call 030 1234 5678").phone());
        assert!(Shape::of("at 10.0.0.1").ipv4());
        assert!(Shape::of("at fe80::1").ipv6());
        assert!(Shape::of("at 2001:db8:0:0:0:0:0:1").ipv6());
        assert!(Shape::of("GB82 WEST").iban());
        assert!(Shape::of("xoxb-1234567890").secret());
        assert!(Shape::of("a eyJhbGci.eyJzdWIi.sig").secret());
        assert!(Shape::of("-----BEGIN RSA PRIVATE KEY-----").secret());
        assert!(Shape::of("Zx9Qm2LpR7tVw4Ks8NbY").token());
        assert!(!Shape::of("4111 1111 111 and 2").card());
        assert!(!Shape::of("1 --- 2 --- 3 --- 4").ipv4());
    }
}
