//! Fault and shape knobs, chosen per request by `x-mock-*` headers or by the
//! model name (`name?status=503&latency_ms=20`). Headers win over the name.
//!
//! | knob | header | meaning |
//! | --- | --- | --- |
//! | status | x-mock-status | answer with this HTTP status and an OpenAI error body |
//! | retry_after | x-mock-retry-after | `Retry-After` seconds sent with an error status |
//! | latency_ms | x-mock-latency-ms | wait before the response headers |
//! | ttft_ms | x-mock-ttft-ms | stream: wait before the first chunk |
//! | tokens_per_sec | x-mock-tokens-per-sec | stream: pace of content chunks |
//! | tokens | x-mock-tokens | completion length in tokens (words), default 16 |
//! | cut_after | x-mock-cut-after | stream: break the connection after N chunks |
//! | no_usage | x-mock-no-usage | omit the usage block (tests token estimation) |
//! | echo | x-mock-echo | answer with the last message's (or prompt's) words instead of generated ones |
//! | fail_first | x-mock-fail-first | mock-upstream: apply `status` only to the first N requests with this model string, then answer normally |
//! | chunk_chars | x-mock-chunk-chars | stream: content in pieces of N characters instead of one word per chunk |

use std::time::Duration;

use http::HeaderMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Knobs {
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub latency: Option<Duration>,
    pub ttft: Option<Duration>,
    pub tokens_per_sec: Option<f64>,
    pub tokens: Option<usize>,
    pub cut_after: Option<usize>,
    pub no_usage: bool,
    pub fail_first: Option<u64>,
    pub echo: bool,
    pub chunk_chars: Option<usize>,
}

/// Longest completion the mock writes, whatever is asked.
const MAX_TOKENS: usize = 1_000_000;

impl Knobs {
    pub fn from_request(headers: &HeaderMap, model: &str) -> Self {
        let mut k = Knobs::default();
        if let Some((_, query)) = model.split_once('?') {
            for pair in query.split('&') {
                if let Some((name, value)) = pair.split_once('=') {
                    k.set(name, value);
                }
            }
        }
        for (name, value) in headers {
            if let (Some(knob), Ok(value)) = (name.as_str().strip_prefix("x-mock-"), value.to_str())
            {
                k.set(&knob.replace('-', "_"), value);
            }
        }
        k
    }

    fn set(&mut self, name: &str, value: &str) {
        let ms = |v: &str| v.parse::<u64>().ok().map(Duration::from_millis);
        match name {
            "status" => self.status = value.parse().ok().filter(|s| (100..600).contains(s)),
            "retry_after" => self.retry_after = value.parse().ok(),
            "latency_ms" => self.latency = ms(value),
            "ttft_ms" => self.ttft = ms(value),
            "tokens_per_sec" => self.tokens_per_sec = value.parse().ok().filter(|v: &f64| *v > 0.0),
            "tokens" => self.tokens = value.parse().ok().map(|t: usize| t.min(MAX_TOKENS)),
            "cut_after" => self.cut_after = value.parse().ok(),
            "no_usage" => self.no_usage = matches!(value, "1" | "true" | "yes"),
            "fail_first" => self.fail_first = value.parse().ok(),
            "echo" => self.echo = matches!(value, "1" | "true" | "yes"),
            "chunk_chars" => self.chunk_chars = value.parse().ok().filter(|n| *n > 0),
            _ => {}
        }
    }

    /// The model name without its knob suffix.
    pub fn base_model(model: &str) -> &str {
        model.split_once('?').map_or(model, |(m, _)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_and_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-mock-status", http::HeaderValue::from_static("429"));
        h.insert("x-mock-retry-after", http::HeaderValue::from_static("3"));
        let k = Knobs::from_request(&h, "m?status=503&latency_ms=5&tokens=4");
        assert_eq!(k.status, Some(429));
        assert_eq!(k.retry_after, Some(3));
        assert_eq!(k.latency, Some(Duration::from_millis(5)));
        assert_eq!(k.tokens, Some(4));
        assert_eq!(Knobs::base_model("m?status=1"), "m");
        assert_eq!(
            Knobs::from_request(&HeaderMap::new(), "plain"),
            Knobs::default()
        );
    }
}
