//! OpenAI-style `x-ratelimit-*` headers, on successes and rejections: the
//! tightest enforced request cap and token cap. Built on every limited
//! response, so names are constants and values are formatted without `fmt`.

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Cap, CapKind};

static NAMES: [HeaderName; 6] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

/// One map per shape (requests, tokens, both) holding its names with
/// placeholder values, in `NAMES` order; `RateHeaders::map` clones one.
/// Room for 12 headers, so a response's own few fit without growing.
static TEMPLATES: LazyLock<[HeaderMap; 3]> = LazyLock::new(|| {
    let map = |names: &[HeaderName]| {
        let mut h = HeaderMap::with_capacity(12);
        for n in names {
            h.append(n.clone(), HeaderValue::from_static("0"));
        }
        h
    };
    [map(&NAMES[..3]), map(&NAMES[3..]), map(&NAMES[..])]
});

/// Values for the rate-limit headers of one kind (requests or tokens).
#[derive(Debug, Clone)]
struct Slot {
    /// The cap's limit, formatted once when the rule was built.
    limit: HeaderValue,
    remaining: f64,
    /// Until the window resets, in ms.
    reset: i64,
}

/// The tightest request cap and token cap a response reports.
#[derive(Debug, Clone, Default)]
pub struct RateHeaders {
    requests: Option<Slot>,
    tokens: Option<Slot>,
}

/// A cap's `x-ratelimit-limit-*` value (built once per cap).
pub(super) fn limit_value(max: f64) -> HeaderValue {
    HeaderValue::from(max.max(0.0).floor() as u64)
}

impl RateHeaders {
    pub(super) fn offer(&mut self, cap: &Cap, used: f64, window: i64, now: i64) {
        let slot = match cap.kind {
            CapKind::Requests => &mut self.requests,
            CapKind::Tokens(_) => &mut self.tokens,
            _ => return,
        };
        let remaining = (cap.max - used).max(0.0);
        if slot.as_ref().is_none_or(|s| remaining < s.remaining) {
            *slot = Some(Slot {
                limit: cap.limit_header.clone(),
                remaining,
                reset: (cap.window.end_ms(window) - now).max(0),
            });
        }
    }

    /// Inserts the headers into `h` (a rejection's or any other map).
    pub fn apply(&self, h: &mut HeaderMap) {
        let mut names = self.names().iter();
        h.reserve(names.len());
        self.each_value(|v| {
            if let Some(name) = names.next() {
                h.insert(name.clone(), v);
            }
        });
    }

    /// A new response header map holding the headers, with room for
    /// `extra` more. Cloned from a map of the same names (per shape) and
    /// the values overwritten in place: a clone keeps each name's hash, so
    /// nothing is hashed per request. Six `insert`s hashed each name with
    /// FNV, byte by byte, and probed the table: 1.7 k of the 3.5 k
    /// instructions the headers cost (callgrind, bench/history/LIMITS.md).
    pub fn map(&self, extra: usize) -> HeaderMap {
        let Some(shape) = self.shape() else {
            return HeaderMap::with_capacity(extra);
        };
        let mut h = TEMPLATES[shape].clone();
        h.reserve(extra);
        // The template's entries are in `names()` order (a unit test
        // checks), each with one value.
        let mut slots = h.values_mut();
        self.each_value(|v| {
            if let Some(slot) = slots.next() {
                *slot = v;
            }
        });
        h
    }

    /// 0: requests only, 1: tokens only, 2: both.
    fn shape(&self) -> Option<usize> {
        match (&self.requests, &self.tokens) {
            (None, None) => None,
            (Some(_), None) => Some(0),
            (None, Some(_)) => Some(1),
            (Some(_), Some(_)) => Some(2),
        }
    }

    fn names(&self) -> &'static [HeaderName] {
        match self.shape() {
            None => &[],
            Some(0) => &NAMES[..3],
            Some(1) => &NAMES[3..],
            Some(_) => &NAMES[..],
        }
    }

    /// Calls `f` with each value, in `names()` order: each slot's limit,
    /// remaining and reset. The remaining and reset texts share one
    /// buffer, each value a slice of it: one allocation instead of one per
    /// value.
    fn each_value(&self, mut f: impl FnMut(HeaderValue)) {
        let slots = [&self.requests, &self.tokens];
        let mut text = String::with_capacity(48);
        let mut ends = [0usize; 4];
        let mut num = itoa::Buffer::new();
        for (i, s) in slots.iter().copied().flatten().enumerate() {
            text.push_str(num.format(s.remaining.floor() as u64));
            ends[2 * i] = text.len();
            push_reset(&mut text, s.reset);
            ends[2 * i + 1] = text.len();
        }
        let buf = bytes::Bytes::from(text);
        let mut start = 0;
        for (i, s) in slots.iter().copied().flatten().enumerate() {
            f(s.limit.clone());
            for end in [ends[2 * i], ends[2 * i + 1]] {
                // Digits, '.', 'h', 'm' and 's' only: always valid.
                f(HeaderValue::from_maybe_shared(buf.slice(start..end))
                    .unwrap_or_else(|_| HeaderValue::from_static("0")));
                start = end;
            }
        }
    }
}

/// OpenAI's reset format: `1s`, `0.25s`, `6m0s`, `1h2m3s`.
fn push_reset(out: &mut String, ms: i64) {
    let ms = ms.max(0);
    let mut num = itoa::Buffer::new();
    if ms < 60_000 {
        // Seconds, three decimals at most: 250 → "0.25s".
        tollgate_core::json_text::push_thousandths(out, ms);
        out.push('s');
        return;
    }
    let total = ms / 1000;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        out.push_str(num.format(h));
        out.push('h');
    }
    out.push_str(num.format(m));
    out.push('m');
    out.push_str(num.format(s));
    out.push('s');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_format_matches_openai() {
        let cases = [
            (0, "0s"),
            (1000, "1s"),
            (250, "0.25s"),
            (1, "0.001s"),
            (59_999, "59.999s"),
            (12_300, "12.3s"),
            (60_000, "1m0s"),
            (360_000, "6m0s"),
            (3_723_000, "1h2m3s"),
            (-5, "0s"),
        ];
        for (ms, want) in cases {
            let mut out = String::from("7");
            push_reset(&mut out, ms);
            assert_eq!(&out[1..], want, "{ms}");
        }
    }

    fn slot(limit: f64, remaining: f64, reset: i64) -> Option<Slot> {
        Some(Slot {
            limit: limit_value(limit),
            remaining,
            reset,
        })
    }

    /// The headers as `(name, value)` pairs in the map's order.
    fn pairs(h: &HeaderMap) -> Vec<(String, String)> {
        h.iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn headers_carry_the_tightest_values() {
        let both = RateHeaders {
            requests: slot(100.0, 41.7, 1_500),
            tokens: slot(9_000.0, 0.0, 61_000),
        };
        let want = [
            ("x-ratelimit-limit-requests", "100"),
            ("x-ratelimit-remaining-requests", "41"),
            ("x-ratelimit-reset-requests", "1.5s"),
            ("x-ratelimit-limit-tokens", "9000"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1m1s"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        // Inserted into a map, and set in place in a map of their own.
        let mut h = HeaderMap::new();
        both.apply(&mut h);
        assert_eq!(pairs(&h), want);
        let mut m = both.map(4);
        assert_eq!(pairs(&m), want);
        // The map has the room asked for and finds each name by hash.
        m.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("a/b"));
        assert_eq!(m.get("x-ratelimit-reset-tokens").unwrap(), "1m1s");
        assert_eq!(m.len(), 7);

        let tokens = RateHeaders {
            requests: None,
            tokens: slot(5.0, 2.0, 0),
        };
        let want_tokens = vec![
            ("x-ratelimit-limit-tokens".to_string(), "5".to_string()),
            ("x-ratelimit-remaining-tokens".to_string(), "2".to_string()),
            ("x-ratelimit-reset-tokens".to_string(), "0s".to_string()),
        ];
        let mut h = HeaderMap::new();
        tokens.apply(&mut h);
        assert_eq!(pairs(&h), want_tokens);
        assert_eq!(pairs(&tokens.map(0)), want_tokens);
        let requests = RateHeaders {
            requests: slot(7.0, 6.0, 250),
            tokens: None,
        };
        assert_eq!(
            pairs(&requests.map(0)),
            vec![
                ("x-ratelimit-limit-requests".to_string(), "7".to_string()),
                (
                    "x-ratelimit-remaining-requests".to_string(),
                    "6".to_string()
                ),
                (
                    "x-ratelimit-reset-requests".to_string(),
                    "0.25s".to_string()
                ),
            ]
        );
        // No cap to report: nothing added.
        RateHeaders::default().apply(&mut h);
        assert_eq!(h.len(), 3);
        assert!(RateHeaders::default().map(3).is_empty());
    }
}
