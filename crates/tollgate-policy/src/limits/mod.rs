//! Rate limits, token quotas and budgets, exact on one node and across many.
//!
//! Reserve, then settle: admission reserves the request's estimate (prompt
//! tokens counted with the tokenizer plus `max_tokens`, or
//! `default_max_tokens`; cost from the price table) on every counter the
//! request charges, atomically per store; after the response the
//! reservation is corrected to the actual usage. Streams extend their
//! reservation as tokens flow (`Admission::extend`). Counters live on this
//! node (`local`) or in Redis (`redis`); see docs/limits.md for the bound.

mod admission;
mod admit_batch;
mod charge;
mod decisions;
mod error;
mod headers;
mod local;
mod redis;
mod reserve;
mod rules;
mod templates;
mod window;

pub use admission::Admission;
pub use error::{Exceeded, LimitError};
pub use headers::RateHeaders;
pub use local::LocalStore;
pub use redis::RedisStore;
pub use rules::{Cap, CapKind, Rule};
pub use templates::Counters;
pub use window::Window;

use std::sync::Arc;
use tollgate_core::error::BuildError;

use crate::auth::Principal;
use tollgate_config::{CacheHits, LimitStore, LimitsConfig, Price};

use charge::Charge;
use templates::Templates;

/// The runtime form of `limits:`; counters outlive config reloads.
pub struct Limits {
    rules: Vec<Arc<Rule>>,
    pub default_max_tokens: i64,
    pub cache_hits: CacheHits,
    pub local: Arc<LocalStore>,
    pub redis: Option<Arc<RedisStore>>,
    /// Each (caller, model)'s counters, worked out on its first request.
    templates: Templates,
    /// What `counters` answers when there is no rule (no lookup).
    none: Counters,
}

impl Limits {
    pub fn build(cfg: &LimitsConfig, previous: Option<&Limits>) -> Result<Self, BuildError> {
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
            templates: Templates::default(),
            none: Counters(Arc::from(Vec::new())),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The counters a request of `principal` for `model` charges.
    pub fn counters(&self, principal: &Principal, model: &str) -> Counters {
        if self.rules.is_empty() {
            return self.none.clone();
        }
        self.templates
            .get(&self.rules, &self.local, principal, model)
    }

    /// `admit_counters` on the counters of `principal` and `model`.
    pub async fn admit(
        &self,
        principal: &Principal,
        model: &str,
        demand: Demand,
    ) -> Result<Admission, LimitError> {
        self.admit_counters(self.counters(principal, model), demand)
            .await
    }

    /// Phase 5: reserves the request's estimate on every counter it charges.
    pub async fn admit_counters(
        &self,
        counters: Counters,
        demand: Demand,
    ) -> Result<Admission, LimitError> {
        let now = tollgate_core::clock::wall_ms();
        let tpl = counters.0;
        let mut charges: Vec<Charge> = tpl
            .iter()
            .map(|t| Charge::new(t.cap().window.id(now)))
            .collect();
        let sel: reserve::Sel = tpl
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let amount = t
                    .cap()
                    .kind
                    .amount(demand.prompt, demand.completion, &demand.price);
                (i, amount)
            })
            .collect();
        if !charges.is_empty() {
            let result = reserve::reserve(
                &self.local,
                self.redis.as_deref(),
                &tpl,
                &mut charges,
                &sel,
                now,
            )
            .await;
            if let Err(e) = result {
                // Nothing stayed charged: `reserve` rolled back.
                e.record();
                return Err(e);
            }
            for (t, c) in tpl.iter().zip(&charges) {
                reserve::record_decision(t, c.decision().as_str());
            }
        }
        Ok(Admission {
            local: self.local.clone(),
            redis: self.redis.clone(),
            tpl,
            charges,
            demand,
            streamed_completion: 0,
            admitted_ms: now,
        })
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

/// The wait for Redis at admission (the latency a `store: redis` rule adds
/// to a request), registered once: the hot path skips the name lookup.
fn admit_histogram() -> &'static metrics::Histogram {
    static H: std::sync::OnceLock<metrics::Histogram> = std::sync::OnceLock::new();
    H.get_or_init(|| metrics::histogram!("tollgate_limit_store_admit_seconds"))
}

/// Charges restored from the usage ledger at start (budgets survive a
/// restart): each record's `limits` JSON lists what it charged where.
pub fn restore(local: &LocalStore, rules: &Limits, records: &[(i64, String)]) -> usize {
    let now = tollgate_core::clock::wall_ms();
    let mut restored = 0;
    for (_, json) in records {
        let Ok(serde_json::Value::Array(list)) = serde_json::from_str::<serde_json::Value>(json)
        else {
            continue;
        };
        for d in &list {
            // Counted on this node: a local rule (or a Redis rule's
            // fallback, which the rule lookup below leaves out).
            let Some(d) = decisions::read(d).filter(|d| d.counted_here) else {
                continue;
            };
            let Some(c) = rules
                .rules
                .iter()
                .find(|r| *r.name == *d.rule && r.store == LimitStore::Local)
                .and_then(|r| r.caps.iter().find(|c| c.label == d.cap))
            else {
                continue;
            };
            if matches!(c.kind, CapKind::Cost) && c.window.id(now) == d.window {
                local.add(&d.counter, d.window, d.charged);
                restored += 1;
            }
        }
    }
    restored
}

impl Limits {
    /// The earliest start of a budget window in effect now (what `restore` needs).
    pub fn budget_since_ms(&self) -> Option<i64> {
        let now = tollgate_core::clock::wall_ms();
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
    use tollgate_config::PrincipalKind;

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
        // An allowed request count: rule, cap, decision, charged.
        assert_eq!(
            v[0],
            serde_json::json!(["b\"x", "requests_per_minute", "allowed", 1])
        );
        // A budget adds its partition and window (what restore reads).
        assert_eq!(v[1][1], "cost_per_day");
        assert_eq!(v[1][2], "allowed");
        assert_eq!(v[1][3], 0.2);
        assert_eq!(v[1][4], "principal=a\\b\u{1}|");
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
        let Err(rejected) = fresh.admit(&p, "m", demand).await else {
            panic!("1.0 more does not fit");
        };
        // The rejection's ledger line names its counter and charges nothing;
        // restore skips it.
        let r: serde_json::Value = serde_json::from_str(&rejected.ledger_json()).unwrap();
        assert_eq!(r[0][1], "cost_per_day");
        assert_eq!(r[0][2], "rejected");
        assert_eq!(r[0][3], 0);
        assert_eq!(r[0][4], "principal=a\\b\u{1}|");
        assert_eq!(
            restore(&fresh.local, &fresh, &[(0, rejected.ledger_json())]),
            0
        );
        let window = v[1][5].as_i64().unwrap();
        // The object form written before 2026-12-05 restores the same counter.
        let objects = serde_json::json!([
            {"rule": "b\"x", "cap": "cost_per_day", "partition": "principal=a\\b\u{1}|",
             "window": window, "decision": "allowed", "charged": 0.7},
        ])
        .to_string();
        let older = Limits::build(&cfg, None).unwrap();
        assert_eq!(restore(&older.local, &older, &[(0, objects)]), 1);
        assert!(
            older.admit(&p, "m", demand).await.is_err(),
            "0.7 + 1.0 > 1.0"
        );
        // A record written before `partition` (full counter key and store)
        // restores the same counter; one counted in Redis is left alone.
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
