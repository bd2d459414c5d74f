//! OpenAI-style `x-ratelimit-*` headers, on successes and rejections: the
//! tightest enforced request cap and token cap. Built on every limited
//! response, so names are constants and values are formatted without `fmt`.

use http::{HeaderName, HeaderValue};

use super::{Cap, CapKind};

const NAMES: [[HeaderName; 3]; 2] = [
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

/// Values for the rate-limit headers: (limit, remaining, reset in ms).
#[derive(Debug, Clone, Default)]
pub struct RateHeaders {
    requests: Option<(f64, f64, i64)>,
    tokens: Option<(f64, f64, i64)>,
}

impl RateHeaders {
    pub(super) fn offer(&mut self, cap: &Cap, used: f64, window: i64, now: i64) {
        let slot = match cap.kind {
            CapKind::Requests => &mut self.requests,
            CapKind::Tokens(_) => &mut self.tokens,
            _ => return,
        };
        let remaining = (cap.max - used).max(0.0);
        let reset = (cap.window.end_ms(window) - now).max(0);
        if slot.is_none_or(|(_, r, _)| remaining < r) {
            *slot = Some((cap.max, remaining, reset));
        }
    }

    pub fn apply(&self, h: &mut http::HeaderMap) {
        for (names, v) in NAMES.into_iter().zip([self.requests, self.tokens]) {
            let Some((limit, remaining, reset)) = v else {
                continue;
            };
            let [limit_name, remaining_name, reset_name] = names;
            h.insert(limit_name, HeaderValue::from(limit.floor() as u64));
            h.insert(remaining_name, HeaderValue::from(remaining.floor() as u64));
            // The String's buffer becomes the value's (no copy).
            if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(format_reset(reset))) {
                h.insert(reset_name, v);
            }
        }
    }
}

/// OpenAI's reset format: `1s`, `0.25s`, `6m0s`, `1h2m3s`.
fn format_reset(ms: i64) -> String {
    let ms = ms.max(0);
    let mut out = String::with_capacity(12);
    let mut num = itoa::Buffer::new();
    if ms < 60_000 {
        out.push_str(num.format(ms / 1000));
        let frac = ms % 1000;
        if frac != 0 {
            // Three digits, trailing zeros dropped: 250 → ".25".
            out.push('.');
            for d in [frac / 100, frac / 10 % 10, frac % 10] {
                out.push(char::from(b'0' + d as u8));
            }
            while out.ends_with('0') {
                out.pop();
            }
        }
        out.push('s');
        return out;
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
    out
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
            assert_eq!(format_reset(ms), want, "{ms}");
        }
    }
}
