//! OpenAI-style `x-ratelimit-*` headers, on successes and rejections: the
//! tightest enforced request cap and token cap. Built on every limited
//! response, so names are constants and values are formatted without `fmt`.

use http::{HeaderName, HeaderValue};

use super::{Cap, CapKind};

static NAMES: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];

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

    pub fn apply(&self, h: &mut http::HeaderMap) {
        let slots = [&self.requests, &self.tokens];
        let n = slots.iter().copied().flatten().count();
        if n == 0 {
            return;
        }
        // The remaining and reset values in one buffer, each header a slice
        // of it: one allocation instead of one per value.
        let mut text = String::with_capacity(32);
        let mut ends = [0usize; 4];
        let mut num = itoa::Buffer::new();
        for (i, s) in slots.iter().copied().flatten().enumerate() {
            text.push_str(num.format(s.remaining.floor() as u64));
            ends[2 * i] = text.len();
            push_reset(&mut text, s.reset);
            ends[2 * i + 1] = text.len();
        }
        let buf = bytes::Bytes::from(text);
        h.reserve(3 * n);
        let mut start = 0;
        let present = NAMES
            .iter()
            .zip(slots)
            .filter_map(|(names, s)| s.as_ref().map(|s| (names, s)));
        for (i, ([limit, remaining, reset], s)) in present.enumerate() {
            h.insert(limit.clone(), s.limit.clone());
            for (j, name) in [remaining, reset].into_iter().enumerate() {
                let end = ends[2 * i + j];
                if let Ok(v) = HeaderValue::from_maybe_shared(buf.slice(start..end)) {
                    h.insert(name.clone(), v);
                }
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
        crate::json_text::push_thousandths(out, ms);
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

    #[test]
    fn headers_carry_the_tightest_values() {
        let mut h = http::HeaderMap::new();
        let slot = |limit: f64, remaining, reset| {
            Some(Slot {
                limit: limit_value(limit),
                remaining,
                reset,
            })
        };
        let rh = RateHeaders {
            requests: slot(100.0, 41.7, 1_500),
            tokens: slot(9_000.0, 0.0, 61_000),
        };
        rh.apply(&mut h);
        let get = |n: &str| h.get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(get("x-ratelimit-limit-requests"), "100");
        assert_eq!(get("x-ratelimit-remaining-requests"), "41");
        assert_eq!(get("x-ratelimit-reset-requests"), "1.5s");
        assert_eq!(get("x-ratelimit-limit-tokens"), "9000");
        assert_eq!(get("x-ratelimit-remaining-tokens"), "0");
        assert_eq!(get("x-ratelimit-reset-tokens"), "1m1s");
        let mut h = http::HeaderMap::new();
        RateHeaders {
            requests: None,
            tokens: slot(5.0, 2.0, 0),
        }
        .apply(&mut h);
        assert_eq!(h.len(), 3);
        assert_eq!(h.get("x-ratelimit-reset-tokens").unwrap(), "0s");
        RateHeaders::default().apply(&mut h);
        assert_eq!(h.len(), 3);
    }
}
