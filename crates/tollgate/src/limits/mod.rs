//! Rate limits, token quotas and budgets, exact on one node and across many.
//!
//! Reserve, then settle: admission reserves the request's estimate (prompt
//! tokens counted with the tokenizer plus `max_tokens`, or
//! `default_max_tokens`; cost from the price table) on every counter the
//! request charges, atomically per store; after the response the
//! reservation is corrected to the actual usage. Streams extend their
//! reservation as tokens flow (`Admission::extend`). Counters live on this
//! node (`local`) or in Redis (`redis`); see docs/limits.md for the bound.

mod admit_batch;
mod decisions;
mod headers;
mod local;
mod redis;
mod rules;
mod window;

pub use headers::RateHeaders;
pub use local::LocalStore;
pub use redis::RedisStore;
pub use rules::{Cap, CapKind, Rule};
pub use window::Window;

use std::sync::Arc;

use http::HeaderValue;
use serde_json::json;

use crate::auth::Principal;
use crate::config::{CacheHits, LimitMode, LimitStore, LimitsConfig, Overrun, Price, StoreFailure};

/// The runtime form of `limits:`; counters outlive config reloads.
pub struct Limits {
    rules: Vec<Arc<Rule>>,
    pub default_max_tokens: i64,
    pub cache_hits: CacheHits,
    pub local: Arc<LocalStore>,
    pub redis: Option<Arc<RedisStore>>,
}

impl Limits {
    pub fn build(cfg: &LimitsConfig, previous: Option<&Limits>) -> Result<Self, String> {
        let local = previous.map_or_else(Default::default, |p| p.local.clone());
        let redis = match &cfg.redis {
            None => None,
            Some(r) => match previous.and_then(|p| p.redis.as_ref()) {
                Some(old) if old.config == *r => Some(old.clone()),
                _ => Some(Arc::new(RedisStore::new(r)?)),
            },
        };
        Ok(Self {
            rules: cfg.rules.iter().map(|r| Arc::new(Rule::build(r))).collect(),
            default_max_tokens: cfg.default_max_tokens,
            cache_hits: cfg.cache_hits,
            local,
            redis,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a rule with a token or cost cap applies (only then are the
    /// prompt's tokens counted on the request path).
    pub fn counts_tokens(&self, principal: &Principal, model: &str) -> bool {
        self.rules.iter().any(|r| {
            r.caps
                .iter()
                .any(|c| matches!(c.kind, CapKind::Tokens(_) | CapKind::Cost))
                && r.applies(principal, model)
        })
    }

    /// The rules' counters this request charges, with the estimate reserved.
    fn charges(
        &self,
        principal: &Principal,
        model: &str,
        demand: &Demand,
        now_ms: i64,
    ) -> Vec<Charge> {
        let mut out = Vec::with_capacity(self.rules.len() * 2);
        // Sized for typical partitions: growing it showed in profiles.
        let mut part = String::with_capacity(96);
        for rule in &self.rules {
            if !rule.applies(principal, model) {
                continue;
            }
            rule.partitions(principal, model, &mut part, |part| {
                for (ci, cap) in rule.caps.iter().enumerate() {
                    let window = cap.window.id(now_ms);
                    let mut key = String::with_capacity(cap.prefix.len() + part.len());
                    key.push_str(&cap.prefix);
                    key.push_str(part);
                    out.push(Charge {
                        rule: rule.clone(),
                        cap: ci,
                        key,
                        window,
                        reserved: 0.0,
                        used_after: 0.0,
                        fallback: false,
                        shadow_hit: false,
                        counter: None,
                        amount: cap
                            .kind
                            .amount(demand.prompt, demand.completion, &demand.price),
                    });
                }
            });
        }
        out
    }

    /// Phase 5: reserves the request's estimate on every counter it charges.
    pub async fn admit(
        &self,
        principal: &Principal,
        model: &str,
        demand: Demand,
    ) -> Result<Admission, LimitError> {
        let now = crate::store::now_ms();
        let mut charges = self.charges(principal, model, &demand, now);
        let mut adm = Admission {
            local: self.local.clone(),
            redis: self.redis.clone(),
            charges: Vec::new(),
            demand,
            streamed_completion: 0,
        };
        if charges.is_empty() {
            return Ok(adm);
        }
        let amounts: Vec<f64> = charges.iter().map(|c| c.amount).collect();
        let all: Vec<usize> = (0..charges.len()).collect();
        let result = reserve(
            &self.local,
            self.redis.as_deref(),
            &mut charges,
            &all,
            &amounts,
            now,
        )
        .await;
        match result {
            Ok(()) => {
                charges
                    .iter()
                    .for_each(|c| record_decision(c, c.decision()));
                adm.charges = charges;
                Ok(adm)
            }
            Err(e) => {
                // Nothing stayed charged: `reserve` rolled back.
                e.record();
                Err(e)
            }
        }
    }
}

/// What a request is expected to use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand {
    pub prompt: i64,
    pub completion: i64,
    /// The dearest price among the request's possible targets.
    pub price: Price,
}

/// One counter a request charges.
pub struct Charge {
    rule: Arc<Rule>,
    cap: usize,
    /// `rule:cap:dimensions`.
    key: String,
    window: i64,
    /// What this request has added to the counter so far.
    reserved: f64,
    /// The counter after the latest reservation (for headers).
    used_after: f64,
    /// Redis was unreachable: charged on this node instead.
    fallback: bool,
    /// Shadow mode: this request would have been rejected.
    shadow_hit: bool,
    /// The amount of the latest reservation attempt.
    amount: f64,
    /// This node's counter, once looked up (local rules, or a Redis rule
    /// that fell back).
    counter: Option<local::Counter>,
}

impl Charge {
    /// This node's counter for the charge, looked up once.
    fn counter(&mut self, local: &LocalStore) -> &local::Counter {
        self.counter.get_or_insert_with(|| local.counter(&self.key))
    }

    /// Adds `delta` to this node's counter (through the kept handle).
    fn local_add(&self, local: &LocalStore, delta: f64) {
        match &self.counter {
            Some(c) => c.add(self.window, delta),
            None => local.add(&self.key, self.window, delta),
        }
    }

    fn cap(&self) -> &Cap {
        &self.rule.caps[self.cap]
    }
    fn enforce(&self) -> bool {
        self.rule.mode == LimitMode::Enforce
    }
    fn on_redis(&self) -> bool {
        self.rule.store == LimitStore::Redis && !self.fallback
    }
    fn decision(&self) -> &'static str {
        match (self.shadow_hit, self.fallback) {
            (true, _) => "shadow_rejected",
            (false, true) => "fallback_local",
            _ => "allowed",
        }
    }
}

/// Reserves `amounts[i]` on `charges[idx[i]]`: this node's counters first,
/// then Redis in one script call; all or nothing.
async fn reserve(
    local: &LocalStore,
    redis: Option<&RedisStore>,
    charges: &mut [Charge],
    idx: &[usize],
    amounts: &[f64],
    now: i64,
) -> Result<(), LimitError> {
    let mut done: Vec<usize> = Vec::with_capacity(idx.len());
    let rollback = |charges: &[Charge], done: &[usize]| {
        for &d in done {
            let pos = idx.iter().position(|&x| x == d).unwrap_or(0);
            charges[d].local_add(local, -amounts[pos]);
        }
    };
    let mut remote: Vec<usize> = Vec::new();
    for (pos, &i) in idx.iter().enumerate() {
        let c = &mut charges[i];
        if c.on_redis() {
            remote.push(pos);
            continue;
        }
        let (max, window, enforce) = (c.cap().max, c.window, c.enforce());
        let (ok, before) = c.counter(local).try_add(window, amounts[pos], max, enforce);
        if !ok {
            let err = LimitError::exceeded(c, before, amounts[pos], now);
            rollback(charges, &done);
            return Err(err);
        }
        c.used_after = before + amounts[pos];
        c.shadow_hit |= before + amounts[pos] > max;
        done.push(i);
    }
    if remote.is_empty() {
        commit(charges, idx, amounts);
        return Ok(());
    }
    let Some(store) = redis else {
        rollback(charges, &done);
        return Err(LimitError::Unavailable {
            rule: charges[idx[remote[0]]].rule.name.to_string(),
        });
    };
    let items: Vec<redis::Item> = remote
        .iter()
        .map(|&pos| {
            let c = &charges[idx[pos]];
            redis::Item {
                key: store.key(&c.key, c.window),
                amount: amounts[pos],
                max: c.cap().max,
                ttl_ms: match c.cap().window {
                    Window::None => -c.cap().window.ttl_ms(c.window, now),
                    w => w.ttl_ms(c.window, now),
                },
                enforce: c.enforce(),
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let answer = store.admit(items).await;
    admit_histogram().record(started.elapsed());
    match answer {
        Ok((0, used)) => {
            for (&pos, before) in remote.iter().zip(used) {
                let c = &mut charges[idx[pos]];
                c.used_after = before + amounts[pos];
                c.shadow_hit |= c.used_after > c.cap().max;
            }
            commit(charges, idx, amounts);
            Ok(())
        }
        Ok((failed, used)) => {
            let pos = remote.get(failed - 1).copied().unwrap_or(remote[0]);
            let before = used.get(failed - 1).copied().unwrap_or(0.0);
            let err = LimitError::exceeded(&charges[idx[pos]], before, amounts[pos], now);
            rollback(charges, &done);
            Err(err)
        }
        Err(e) => {
            metrics::counter!("tollgate_limit_store_errors_total", "op" => "admit").increment(1);
            for &pos in &remote {
                let i = idx[pos];
                if charges[i].rule.on_store_error == StoreFailure::Closed {
                    tracing::error!(rule = %charges[i].rule.name, error = %e,
                        "LIMIT STORE DOWN: rejecting (on_store_error: closed)");
                    rollback(charges, &done);
                    return Err(LimitError::Unavailable {
                        rule: charges[i].rule.name.to_string(),
                    });
                }
            }
            tracing::warn!(error = %e, rules = remote.len(),
                "LIMIT STORE DOWN: counting on this node only (on_store_error: open)");
            for &pos in &remote {
                let c = &mut charges[idx[pos]];
                c.fallback = true;
                let (max, window, enforce) = (c.cap().max, c.window, c.enforce());
                let (ok, before) = c.counter(local).try_add(window, amounts[pos], max, enforce);
                if !ok {
                    let err = LimitError::exceeded(c, before, amounts[pos], now);
                    rollback(charges, &done);
                    return Err(err);
                }
                c.used_after = before + amounts[pos];
                c.shadow_hit |= c.used_after > max;
                done.push(idx[pos]);
            }
            commit(charges, idx, amounts);
            Ok(())
        }
    }
}

fn commit(charges: &mut [Charge], idx: &[usize], amounts: &[f64]) {
    for (pos, &i) in idx.iter().enumerate() {
        charges[i].reserved += amounts[pos];
        if charges[i].shadow_hit && !charges[i].enforce() {
            tracing::info!(rule = %charges[i].rule.name, cap = charges[i].cap().label,
                counter = %charges[i].key, "shadow limit would have rejected this request");
        }
    }
}

fn record_decision(c: &Charge, decision: &'static str) {
    if decision == "allowed" {
        c.cap().allowed(&c.rule.name).increment(1);
        return;
    }
    metrics::counter!("tollgate_limit_decisions_total", "rule" => c.rule.name.to_string(),
        "cap" => c.cap().label, "decision" => decision)
    .increment(1);
}

/// A request's reservations, settled exactly once (`settle`).
pub struct Admission {
    local: Arc<LocalStore>,
    redis: Option<Arc<RedisStore>>,
    charges: Vec<Charge>,
    demand: Demand,
    /// Completion tokens seen so far in a stream.
    streamed_completion: i64,
}

impl Admission {
    /// No limit applies.
    pub fn is_empty(&self) -> bool {
        self.charges.is_empty()
    }

    /// Whether streamed tokens must be counted as they flow.
    pub fn meters_stream(&self) -> bool {
        self.charges
            .iter()
            .any(|c| matches!(c.cap().kind, CapKind::Tokens(_) | CapKind::Cost))
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
        // Reserve in steps, so a stream costs few store calls.
        let step = excess.max(32);
        self.demand.completion += step;
        let mut idx = Vec::new();
        let mut amounts = Vec::new();
        for (i, c) in self.charges.iter().enumerate() {
            let kind = c.cap().kind;
            let amount = kind.amount(0, step, price);
            if matches!(kind, CapKind::Tokens(_) | CapKind::Cost) && amount > 0.0 {
                idx.push(i);
                amounts.push(amount);
            }
        }
        if idx.is_empty() {
            return Ok(());
        }
        let now = crate::store::now_ms();
        // Caps that let streams finish are charged without a check.
        let cut: Vec<bool> = idx
            .iter()
            .map(|&i| self.charges[i].rule.stream_overrun == Overrun::Cut)
            .collect();
        let (hard, soft): (Vec<_>, Vec<_>) = (0..idx.len()).partition(|&k| cut[k]);
        let soft_idx: Vec<usize> = soft.iter().map(|&k| idx[k]).collect();
        for &k in &soft {
            let c = &mut self.charges[idx[k]];
            c.reserved += amounts[k];
            c.used_after += amounts[k];
        }
        let hard_idx: Vec<usize> = hard.iter().map(|&k| idx[k]).collect();
        let hard_amounts: Vec<f64> = hard.iter().map(|&k| amounts[k]).collect();
        self.force(
            &soft_idx,
            &soft.iter().map(|&k| amounts[k]).collect::<Vec<_>>(),
            now,
        );
        if hard_idx.is_empty() {
            return Ok(());
        }
        let r = reserve(
            &self.local,
            self.redis.as_deref(),
            &mut self.charges,
            &hard_idx,
            &hard_amounts,
            now,
        )
        .await;
        if let Err(e) = &r {
            tracing::info!(error = %e, "stream cut: a limit would be crossed");
            for &i in &hard_idx {
                record_decision(&self.charges[i], "stream_cut");
            }
        }
        r
    }

    /// Adds to counters without a check (already-spent tokens).
    fn force(&self, idx: &[usize], amounts: &[f64], now: i64) {
        let mut remote = Vec::new();
        for (&i, &a) in idx.iter().zip(amounts) {
            let c = &self.charges[i];
            match (&self.redis, c.on_redis()) {
                (Some(r), true) => remote.push((
                    r.key(&c.key, c.window),
                    a,
                    c.cap().window.ttl_ms(c.window, now),
                )),
                _ => c.local_add(&self.local, a),
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
    /// decisions as JSON for the ledger.
    pub fn settle(mut self, prompt: i64, completion: i64, cost: f64) -> String {
        // The clock is read only for Redis corrections (their TTL).
        let mut now = None;
        let mut remote = Vec::new();
        let mut list = String::with_capacity(2 + self.charges.len() * 128);
        list.push('[');
        for c in &mut self.charges {
            let actual = match c.cap().kind {
                CapKind::Requests => c.reserved,
                CapKind::Concurrent => 0.0,
                CapKind::Tokens(k) => rules::tokens_of(k, prompt, completion) as f64,
                CapKind::Cost => cost,
            };
            let delta = actual - c.reserved;
            if delta != 0.0 {
                match (&self.redis, c.on_redis()) {
                    (Some(r), true) => remote.push((
                        r.key(&c.key, c.window),
                        delta,
                        c.cap()
                            .window
                            .ttl_ms(c.window, *now.get_or_insert_with(crate::store::now_ms)),
                    )),
                    _ => c.local_add(&self.local, delta),
                }
            }
            c.reserved = actual;
            if list.len() > 1 {
                list.push(',');
            }
            let part = c.key.get(c.cap().prefix.len()..).unwrap_or_default();
            decisions::push(&mut list, c.cap(), part, c.window, c.decision(), actual);
        }
        list.push(']');
        self.send_remote(std::mem::take(&mut remote));
        self.charges.clear();
        list
    }

    /// `x-ratelimit-*` headers: the tightest enforced request and token caps.
    pub fn headers(&self) -> RateHeaders {
        let now = crate::store::now_ms();
        let mut h = RateHeaders::default();
        for c in self.charges.iter().filter(|c| c.enforce()) {
            h.offer(c.cap(), c.used_after, c.window, now);
        }
        h
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // Never settled (a request abandoned mid-phase): give it all back.
        if !self.charges.is_empty() {
            let charges = std::mem::take(&mut self.charges);
            let a = Admission {
                local: self.local.clone(),
                redis: self.redis.clone(),
                charges,
                demand: self.demand,
                streamed_completion: 0,
            };
            let _ = a.settle(0, 0, 0.0);
        }
    }
}

/// The wait for Redis at admission (the latency a `store: redis` rule adds
/// to a request), registered once: the hot path skips the name lookup.
fn admit_histogram() -> &'static metrics::Histogram {
    static H: std::sync::OnceLock<metrics::Histogram> = std::sync::OnceLock::new();
    H.get_or_init(|| metrics::histogram!("tollgate_limit_store_admit_seconds"))
}

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
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Exceeded(Box<Exceeded>),
    #[error("limit `{rule}` cannot be checked: its counter store is unreachable")]
    Unavailable { rule: String },
}

impl LimitError {
    fn exceeded(c: &Charge, used: f64, needed: f64, now: i64) -> Self {
        let cap = c.cap();
        let reset_ms = match cap.kind {
            CapKind::Concurrent => 1000,
            _ => (cap.window.end_ms(c.window) - now).max(0),
        };
        let mut headers = RateHeaders::default();
        headers.offer(cap, used, c.window, now);
        LimitError::Exceeded(Box::new(Exceeded {
            rule: c.rule.name.to_string(),
            cap: cap.label,
            max: cap.max,
            used: (used * 1e6).round() / 1e6,
            needed: (needed * 1e6).round() / 1e6,
            retry_after_s: (reset_ms as u64).div_ceil(1000).max(1),
            headers,
        }))
    }

    fn record(&self) {
        let (rule, cap, decision) = match self {
            LimitError::Exceeded(e) => (&e.rule, e.cap, "rejected"),
            LimitError::Unavailable { rule } => (rule, "", "unavailable"),
        };
        metrics::counter!("tollgate_limit_decisions_total", "rule" => rule.clone(),
            "cap" => cap, "decision" => decision)
        .increment(1);
    }

    /// The decision as ledger JSON (a rejected request charges nothing).
    pub fn ledger_json(&self) -> String {
        match self {
            LimitError::Exceeded(e) => {
                json!([{"rule": e.rule, "cap": e.cap, "decision": "rejected"}]).to_string()
            }
            LimitError::Unavailable { rule } => {
                json!([{"rule": rule, "decision": "unavailable"}]).to_string()
            }
        }
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

/// Charges restored from the usage ledger at start (budgets survive a
/// restart): each record's `limits` JSON lists what it charged where.
pub fn restore(local: &LocalStore, rules: &Limits, records: &[(i64, String)]) -> usize {
    let now = crate::store::now_ms();
    let mut restored = 0;
    for (_, json) in records {
        let Ok(serde_json::Value::Array(list)) = serde_json::from_str::<serde_json::Value>(json)
        else {
            continue;
        };
        for d in list {
            let (Some(rule), Some(cap), Some(window), Some(charged)) = (
                d["rule"].as_str(),
                d["cap"].as_str(),
                d["window"].as_i64(),
                d["charged"].as_f64(),
            ) else {
                continue;
            };
            // Counted on this node: a local rule (or a Redis rule's
            // fallback, which the rule lookup below leaves out). Older
            // records name the store and the full counter key.
            let counted_here = match d["store"].as_str() {
                Some(store) => store == "local",
                None => d["decision"].as_str() != Some("rejected"),
            };
            if !counted_here {
                continue;
            }
            let counter = match (d["partition"].as_str(), d["counter"].as_str()) {
                (Some(part), _) => std::borrow::Cow::Owned(format!("{rule}:{cap}:{part}")),
                (None, Some(key)) => std::borrow::Cow::Borrowed(key),
                (None, None) => continue,
            };
            let Some(c) = rules
                .rules
                .iter()
                .find(|r| &*r.name == rule && r.store == LimitStore::Local)
                .and_then(|r| r.caps.iter().find(|c| c.label == cap))
            else {
                continue;
            };
            if matches!(c.kind, CapKind::Cost) && c.window.id(now) == window {
                local.add(&counter, window, charged);
                restored += 1;
            }
        }
    }
    restored
}

impl Limits {
    /// The earliest start of a budget window in effect now (what `restore` needs).
    pub fn budget_since_ms(&self) -> Option<i64> {
        let now = crate::store::now_ms();
        self.rules
            .iter()
            .flat_map(|r| r.caps.iter())
            .filter(|c| matches!(c.kind, CapKind::Cost))
            .map(|c| c.window.start_ms(c.window.id(now)))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;
    use crate::config::PrincipalKind;

    #[tokio::test]
    async fn settle_writes_valid_json_and_restores() {
        let cfg: LimitsConfig = serde_yaml_ng::from_str(
            "rules:\n  - { name: \"b\\\"x\", per: [principal], cost_per_day: 1.0, requests_per_minute: 5 }\n",
        )
        .unwrap();
        let limits = Limits::build(&cfg, None).unwrap();
        let p = Principal {
            subject: "a\\b\u{1}".into(),
            kind: PrincipalKind::User,
            groups: Arc::from(Vec::new()),
            tenant: None,
            key_id: None,
            issuer: None,
            method: AuthMethod::Jwt,
        };
        let price = Price {
            input_per_mtok: 1e5,
            output_per_mtok: 1e5,
        };
        let demand = Demand {
            prompt: 1,
            completion: 2,
            price,
        };
        let adm = limits.admit(&p, "m", demand).await.unwrap();
        let json = adm.settle(1, 1, 0.2);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["rule"], "b\"x");
        assert_eq!(v[0]["partition"], "principal=a\\b\u{1}|");
        assert_eq!(v[0]["decision"], "allowed");
        assert_eq!(v[1]["charged"], 0.2);
        // A fresh node restores the day's spend from that record.
        let fresh = Limits::build(&cfg, None).unwrap();
        assert_eq!(restore(&fresh.local, &fresh, &[(0, json)]), 1);
        let err = fresh.admit(&p, "m", demand).await;
        assert!(err.is_ok(), "0.2 + 0.3 fits in 1.0");
        let demand = Demand {
            prompt: 10,
            completion: 0,
            price,
        };
        assert!(matches!(
            fresh.admit(&p, "m", demand).await,
            Err(LimitError::Exceeded(_))
        ));
        // A record written before `partition` (full counter key and store)
        // restores the same counter; one counted in Redis is left alone.
        let window = v[1]["window"].as_i64().unwrap();
        let old = serde_json::json!([
            {"rule": "b\"x", "cap": "cost_per_day", "counter": "b\"x:cost_per_day:principal=a\\b\u{1}|",
             "window": window, "store": "local", "decision": "allowed", "charged": 0.2},
            {"rule": "b\"x", "cap": "cost_per_day", "counter": "b\"x:cost_per_day:principal=a\\b\u{1}|",
             "window": window, "store": "redis", "decision": "allowed", "charged": 0.5},
        ])
        .to_string();
        let legacy = Limits::build(&cfg, None).unwrap();
        assert_eq!(restore(&legacy.local, &legacy, &[(0, old)]), 1);
        assert!(
            legacy.admit(&p, "m", demand).await.is_err(),
            "0.2 + 1.0 > 1.0"
        );
    }
}
