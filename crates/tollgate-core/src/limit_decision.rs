//! What a limit decided for one counter, as typed values: the limits
//! (policy layer) hand them to the usage ledger (record layer), which owns
//! how they are stored (`tollgate_record::limits_column`), and the ledger
//! hands back what budgets spent (`CounterSpend`) for the limits to
//! restore. Here because neither of those layers may import the other.

use std::sync::{Arc, OnceLock};

/// One counter: `rule:cap:partition`. Built once per (caller, model) and
/// shared by every decision on it (an `Arc` clone per request).
#[derive(Debug)]
pub struct CounterId {
    pub rule: Box<str>,
    /// The cap's label (`requests_per_minute`, `cost_per_day`); empty
    /// for a rule refused as a whole (`Unavailable`).
    pub cap: &'static str,
    /// The dimensions the rule partitions by, e.g. `group=eng|`.
    pub partition: Box<str>,
    /// A budget (a `cost_per_*` cap): its spend is restored at start.
    pub budget: bool,
    /// The ledger's encoding of the parts above (what comes before the
    /// decision, what comes before the window), made by the ledger on
    /// first use and kept: a counter's decisions are written many times.
    pub encoded: OnceLock<(Box<str>, Box<str>)>,
}

impl CounterId {
    pub fn new(rule: &str, cap: &'static str, partition: &str, budget: bool) -> Self {
        Self {
            rule: rule.into(),
            cap,
            partition: partition.into(),
            budget,
            encoded: OnceLock::new(),
        }
    }
}

/// The outcome for one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Shadow mode: would have been rejected.
    ShadowRejected,
    /// A `store: redis` rule counted on this node while Redis was down.
    FallbackLocal,
    Rejected,
    /// A `store: redis` rule that could not reach Redis refused.
    Unavailable,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ShadowRejected => "shadow_rejected",
            Decision::FallbackLocal => "fallback_local",
            Decision::Rejected => "rejected",
            Decision::Unavailable => "unavailable",
        }
    }

    /// Charged on this node's counter, or on Redis's: not a refusal.
    pub fn charged_anywhere(self) -> bool {
        !matches!(self, Decision::Rejected | Decision::Unavailable)
    }
}

/// One counter's decision for one request.
#[derive(Debug, Clone)]
pub struct LimitDecision {
    pub counter: Arc<CounterId>,
    pub decision: Decision,
    /// What the request finally cost the counter (0 when refused).
    pub charged: f64,
    /// The counter's window number (Unix time divided by its length).
    pub window: i64,
}

impl PartialEq for LimitDecision {
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (&*self.counter, &*o.counter);
        (a.rule == b.rule && a.cap == b.cap && a.partition == b.partition && a.budget == b.budget)
            && (self.decision, self.charged, self.window) == (o.decision, o.charged, o.window)
    }
}

/// What one budget counter spent in one window, summed by the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSpend {
    pub rule: String,
    pub cap: String,
    pub partition: String,
    pub window: i64,
    pub spent: f64,
}
