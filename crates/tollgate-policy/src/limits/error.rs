//! A limit's refusal: the 429 (or 503 when its store is unreachable), its
//! headers, its metric and its ledger decision.

use http::HeaderValue;

use std::sync::Arc;

use super::templates::Template;
use super::{CapKind, RateHeaders};
use tollgate_core::limit_decision::{CounterId, Decision, LimitDecision};

/// A cap that would be crossed, for the 429.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate limit exceeded: limit `{rule}` ({cap} {max}, used {used}, this request needs {needed}); retry after {retry_after_s}s")]
pub struct Exceeded {
    pub rule: String,
    pub cap: &'static str,
    pub max: f64,
    pub used: f64,
    pub needed: f64,
    pub retry_after_s: u64,
    headers: RateHeaders,
    /// The ledger's decision: this counter, `rejected`, nothing charged.
    decision: LimitDecision,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Exceeded(Box<Exceeded>),
    #[error("limit `{rule}` cannot be checked: its counter store is unreachable")]
    Unavailable { rule: String },
}

impl LimitError {
    pub(super) fn exceeded(t: &Template, window: i64, used: f64, needed: f64, now: i64) -> Self {
        let cap = t.cap();
        let reset_ms = match cap.kind {
            CapKind::Concurrent => 1000,
            _ => (cap.window.end_ms(window) - now).max(0),
        };
        let mut headers = RateHeaders::default();
        headers.offer(cap, used, window, now);
        let decision = LimitDecision {
            counter: t.id.clone(),
            decision: Decision::Rejected,
            charged: 0.0,
            window,
        };
        LimitError::Exceeded(Box::new(Exceeded {
            rule: t.rule.name.to_string(),
            cap: cap.label,
            max: cap.max,
            used: (used * 1e6).round() / 1e6,
            needed: (needed * 1e6).round() / 1e6,
            retry_after_s: (reset_ms as u64).div_ceil(1000).max(1),
            headers,
            decision,
        }))
    }

    pub(super) fn record(&self) {
        let (rule, cap, decision) = match self {
            LimitError::Exceeded(e) => (&e.rule, e.cap, "rejected"),
            LimitError::Unavailable { rule } => (rule, "", "unavailable"),
        };
        metrics::counter!("tollgate_limit_decisions_total", "rule" => rule.clone(),
            "cap" => cap, "decision" => decision)
        .increment(1);
    }

    /// The decision for the ledger (a refused request charges nothing).
    pub fn ledger_decisions(&self) -> Vec<LimitDecision> {
        vec![match self {
            LimitError::Exceeded(e) => e.decision.clone(),
            LimitError::Unavailable { rule } => LimitDecision {
                counter: Arc::new(CounterId::new(rule, "", "", false)),
                decision: Decision::Unavailable,
                charged: 0.0,
                window: 0,
            },
        }]
    }

    /// Status, `Retry-After` and rate-limit headers for the response.
    pub fn apply_headers(&self, h: &mut http::HeaderMap) {
        if let LimitError::Exceeded(e) = self {
            e.headers.apply(h);
            if let Ok(v) = HeaderValue::from_str(&e.retry_after_s.to_string()) {
                h.insert(http::header::RETRY_AFTER, v);
            }
        }
    }
}

impl From<LimitError> for tollgate_core::error::GatewayError {
    fn from(e: LimitError) -> Self {
        use tollgate_core::error::{ErrorKind, GatewayError};
        match &e {
            LimitError::Exceeded(x) => {
                let mut headers = http::HeaderMap::new();
                x.headers.apply(&mut headers);
                GatewayError::new(ErrorKind::RateLimit, 429, "rate_limited", e.to_string())
                    .with_code("rate_limit_exceeded")
                    .with_retry_after(x.retry_after_s)
                    .with_headers(headers)
            }
            LimitError::Unavailable { .. } => {
                GatewayError::new(ErrorKind::Server, 503, "limit_unavailable", e.to_string())
                    .with_code("limit_store_unavailable")
                    .retryable()
            }
        }
    }
}
