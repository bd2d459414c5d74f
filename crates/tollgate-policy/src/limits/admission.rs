//! A request's reservations, from admission to settlement: stream top-ups
//! (`extend`), the correction to actual usage (`settle`, exactly once) and
//! the `x-ratelimit-*` headers.

use std::sync::Arc;

use super::charge::Charge;
use super::local::LocalStore;
use super::redis::RedisStore;
use super::reserve::{record_decision, reserve, Sel};
use super::templates::Template;
use super::{rules, CapKind, Demand, LimitError, RateHeaders};
use tollgate_config::{Overrun, Price};
use tollgate_core::limit_decision::LimitDecision;

/// A request's reservations, settled exactly once (`settle`).
pub struct Admission {
    pub(super) local: Arc<LocalStore>,
    pub(super) redis: Option<Arc<RedisStore>>,
    pub(super) tpl: Arc<[Template]>,
    pub(super) charges: Vec<Charge>,
    pub(super) demand: Demand,
    /// Completion tokens seen so far in a stream.
    pub(super) streamed_completion: i64,
    /// When it was admitted (Unix ms): the headers' resets count from it.
    pub(super) admitted_ms: i64,
}

impl Admission {
    /// No limit applies.
    pub fn is_empty(&self) -> bool {
        self.charges.is_empty()
    }

    fn pairs(&self) -> impl Iterator<Item = (&Template, &Charge)> {
        self.tpl.iter().zip(&self.charges)
    }

    /// Whether streamed tokens must be counted as they flow.
    pub fn meters_stream(&self) -> bool {
        self.pairs()
            .any(|(t, _)| matches!(t.cap().kind, CapKind::Tokens(_) | CapKind::Cost))
    }

    /// A stream produced `completion` more tokens. Past the reservation, the
    /// token and cost counters are charged the excess; a cap with
    /// `stream_overrun: cut` that would be crossed ends the stream.
    pub async fn extend(&mut self, completion: i64, price: &Price) -> Result<(), LimitError> {
        self.streamed_completion += completion;
        let excess = self.streamed_completion - self.demand.completion;
        if excess <= 0 {
            return Ok(());
        }
        // Reserve in steps, so a stream costs few store calls. A step that
        // does not fit is retried with only what the stream has used past
        // its reservation: a stream is cut when its tokens cross a cap, not
        // up to a step before it.
        let now = tollgate_core::clock::wall_ms();
        let mut granted = excess.max(32);
        let mut result = self.reserve_step(granted, price, now).await;
        if result.is_err() && granted > excess {
            granted = excess;
            result = self.reserve_step(granted, price, now).await;
        }
        self.demand.completion += granted;
        // Caps that let streams finish are charged without a check.
        let soft = self.step_amounts(granted, price, false);
        for &(i, amount) in &soft {
            let c = &mut self.charges[i];
            c.reserved += amount;
            c.used_after += amount;
        }
        self.force(&soft, now);
        if let Err(e) = &result {
            tracing::info!(error = %e, "stream cut: a limit would be crossed");
            for (i, _) in self.step_amounts(granted, price, true) {
                record_decision(&self.tpl[i], "stream_cut");
            }
        }
        result
    }

    /// What `step` more completion tokens add to each token and cost
    /// counter whose rule cuts streams (`cut`) or lets them finish.
    fn step_amounts(&self, step: i64, price: &Price, cut: bool) -> Sel {
        let mut sel = Sel::new();
        for (i, t) in self.tpl.iter().enumerate() {
            let kind = t.cap().kind;
            let amount = kind.amount(0, step, price);
            if matches!(kind, CapKind::Tokens(_) | CapKind::Cost)
                && amount > 0.0
                && (t.rule.stream_overrun == Overrun::Cut) == cut
            {
                sel.push((i, amount));
            }
        }
        sel
    }

    /// Reserves `step` more completion tokens on the caps that cut streams.
    async fn reserve_step(&mut self, step: i64, price: &Price, now: i64) -> Result<(), LimitError> {
        let hard = self.step_amounts(step, price, true);
        if hard.is_empty() {
            return Ok(());
        }
        reserve(
            &self.local,
            self.redis.as_deref(),
            &self.tpl,
            &mut self.charges,
            &hard,
            now,
        )
        .await
    }

    /// Adds to counters without a check (already-spent tokens).
    fn force(&self, sel: &[(usize, f64)], now: i64) {
        let mut remote = Vec::new();
        for &(i, a) in sel {
            let (t, c) = (&self.tpl[i], &self.charges[i]);
            match (&self.redis, c.on_redis(t)) {
                (Some(r), true) => remote.push((
                    r.key(&t.key, c.window),
                    a,
                    t.cap().window.ttl_ms(c.window, now),
                )),
                _ => c.local_add(t, &self.local, a),
            }
        }
        self.send_remote(remote);
    }

    fn send_remote(&self, items: Vec<(String, f64, i64)>) {
        if let (Some(r), false) = (&self.redis, items.is_empty()) {
            r.settle_later(items);
        }
    }

    /// Corrects every reservation to the actual usage; returns the
    /// decisions for the ledger.
    pub fn settle(mut self, prompt: i64, completion: i64, cost: f64) -> Vec<LimitDecision> {
        // The clock is read only for Redis corrections (their TTL).
        let mut now = None;
        let mut remote = Vec::new();
        let mut list = Vec::with_capacity(self.tpl.len());
        let charges = std::mem::take(&mut self.charges);
        for (t, c) in self.tpl.iter().zip(charges) {
            let actual = match t.cap().kind {
                CapKind::Requests => c.reserved,
                CapKind::Concurrent => 0.0,
                CapKind::Tokens(k) => rules::tokens_of(k, prompt, completion) as f64,
                CapKind::Cost => cost,
            };
            let delta = actual - c.reserved;
            if delta != 0.0 {
                match (&self.redis, c.on_redis(t)) {
                    (Some(r), true) => remote.push((
                        r.key(&t.key, c.window),
                        delta,
                        t.cap().window.ttl_ms(
                            c.window,
                            *now.get_or_insert_with(tollgate_core::clock::wall_ms),
                        ),
                    )),
                    _ => c.local_add(t, &self.local, delta),
                }
            }
            list.push(LimitDecision {
                counter: t.id.clone(),
                decision: c.decision(),
                charged: actual,
                window: c.window,
            });
        }
        self.send_remote(remote);
        list
    }

    /// `x-ratelimit-*` headers: the tightest enforced request and token caps.
    pub fn headers(&self) -> RateHeaders {
        let now = self.admitted_ms;
        let mut h = RateHeaders::default();
        for (t, c) in self.pairs().filter(|(t, _)| t.enforce()) {
            h.offer(t.cap(), c.used_after, c.window, now);
        }
        h
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // Never settled (a request abandoned mid-phase): give it all back.
        if !self.charges.is_empty() {
            let a = Admission {
                local: self.local.clone(),
                redis: self.redis.clone(),
                tpl: self.tpl.clone(),
                charges: std::mem::take(&mut self.charges),
                demand: self.demand,
                streamed_completion: 0,
                admitted_ms: self.admitted_ms,
            };
            let _ = a.settle(0, 0, 0.0);
        }
    }
}
