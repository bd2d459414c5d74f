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
mod alerts;
mod charge;
mod error;
mod headers;
mod inspect;
mod local;
mod redis;
mod redis_args;
mod reserve;
mod rules;
mod templates;
mod window;

pub use admission::Admission;
pub use error::{Exceeded, LimitError};
pub use headers::RateHeaders;
pub use inspect::{CounterFilter, CounterView, InspectError};
pub use local::LocalStore;
pub use redis::RedisStore;
pub use rules::{Cap, CapKind, Rule, CONNECTION_TARGET, ROUTE_TARGET, TOOL_TARGET};
pub use templates::Counters;
pub use window::Window;

use std::sync::Arc;
use tollgate_core::error::BuildError;

use crate::auth::Principal;
use tollgate_config::{CacheHits, LimitStore, LimitsConfig, Price};
use tollgate_core::limit_decision::CounterSpend;

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
    /// Soft-threshold alerts (which counters already alerted survive reloads).
    alerts: Arc<alerts::Alerts>,
}

impl Limits {
    pub fn build(cfg: &LimitsConfig, previous: Option<&Limits>) -> Result<Self, BuildError> {
        Self::build_with_egress(cfg, previous, None)
    }

    /// `build`, with the egress policy the alert webhook is called under
    /// (without one, alerts are counted and logged but not posted).
    pub fn build_with_egress(
        cfg: &LimitsConfig,
        previous: Option<&Limits>,
        egress: Option<&tollgate_net::Egress>,
    ) -> Result<Self, BuildError> {
        let alerts = Arc::new(alerts::Alerts::build(
            &cfg.alerts,
            egress,
            previous.map(|p| &*p.alerts),
        )?);
        let rules = cfg
            .rules
            .iter()
            .map(|r| {
                let mut rule = Rule::build(r);
                let percent = r.alert_at_percent.unwrap_or(cfg.alerts.at_percent);
                for c in &mut rule.caps {
                    if !matches!(c.window, Window::None | Window::Second) {
                        c.alert_at = Some(c.max * percent / 100.0);
                    }
                }
                rule.alerts = Some(alerts.clone());
                Arc::new(rule)
            })
            .collect();
        let local = previous.map_or_else(Default::default, |p| p.local.clone());
        let redis = match &cfg.redis {
            None => None,
            Some(r) => match previous.and_then(|p| p.redis.as_ref()) {
                Some(old) if old.config == *r => Some(old.clone()),
                _ => Some(Arc::new(RedisStore::new(r)?)),
            },
        };
        Ok(Self {
            rules,
            default_max_tokens: cfg.default_max_tokens,
            cache_hits: cfg.cache_hits,
            local,
            redis,
            templates: Templates::default(),
            none: Counters(Arc::from(Vec::new())),
            alerts,
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

/// Budget spend restored from the usage ledger at start (budgets survive
/// a restart): each budget counter's spend in its current window, as the
/// ledger summed it. Only `store: local` rules are restored here (a Redis
/// rule's fallback spend and Redis budgets are left alone).
pub fn restore(local: &LocalStore, rules: &Limits, spends: &[CounterSpend]) -> usize {
    let now = tollgate_core::clock::wall_ms();
    let mut restored = 0;
    for s in spends {
        let Some(c) = rules
            .rules
            .iter()
            .find(|r| *r.name == *s.rule && r.store == LimitStore::Local)
            .and_then(|r| r.caps.iter().find(|c| c.label == s.cap))
        else {
            continue;
        };
        if c.restored() && c.window.id(now) == s.window {
            local.add(&format!("{}{}", c.prefix, s.partition), s.window, s.spent);
            restored += 1;
        }
    }
    restored
}

impl Limits {
    /// Each budget cap's label and its window in effect now (what
    /// `restore` needs), once per label.
    pub fn budget_windows(&self) -> Vec<(&'static str, i64)> {
        let now = tollgate_core::clock::wall_ms();
        let mut out: Vec<(&'static str, i64)> = Vec::new();
        for c in self.rules.iter().flat_map(|r| r.caps.iter()) {
            if c.restored() && !out.iter().any(|(l, _)| *l == c.label) {
                out.push((c.label, c.window.id(now)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;
    use tollgate_config::PrincipalKind;

    #[tokio::test]
    async fn settle_hands_typed_decisions_and_restores() {
        use tollgate_core::limit_decision::Decision;
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
            claims: None,
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
        let list = adm.settle(1, 1, 0.2);
        // A request count, then the budget, each naming its counter.
        let names: Vec<_> = list
            .iter()
            .map(|d| {
                (
                    &*d.counter.rule,
                    d.counter.cap,
                    &*d.counter.partition,
                    d.counter.budget,
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("b\"x", "requests_per_minute", "principal=a\\b\u{1}|", false),
                ("b\"x", "cost_per_day", "principal=a\\b\u{1}|", true),
            ]
        );
        assert_eq!(
            (list[0].decision, list[0].charged),
            (Decision::Allowed, 1.0)
        );
        assert_eq!(
            (list[1].decision, list[1].charged),
            (Decision::Allowed, 0.2)
        );
        let spend = |d: &tollgate_core::limit_decision::LimitDecision, spent: f64| CounterSpend {
            rule: d.counter.rule.to_string(),
            cap: d.counter.cap.to_string(),
            partition: d.counter.partition.to_string(),
            window: d.window,
            spent,
        };
        // A fresh node restores the day's spend.
        let fresh = Limits::build(&cfg, None).unwrap();
        assert_eq!(restore(&fresh.local, &fresh, &[spend(&list[1], 0.2)]), 1);
        assert!(
            fresh.admit(&p, "m", demand).await.is_ok(),
            "0.2 + 0.3 fits in 1.0"
        );
        let demand = Demand {
            prompt: 10,
            completion: 0,
            price,
        };
        let Err(rejected) = fresh.admit(&p, "m", demand).await else {
            panic!("1.0 more does not fit");
        };
        // The rejection names its counter and charges nothing.
        let r = rejected.ledger_decisions();
        assert_eq!(
            (r[0].counter.cap, r[0].decision, r[0].charged),
            ("cost_per_day", Decision::Rejected, 0.0)
        );
        // Another window, a request count or an unknown rule restore nothing.
        let mut old = spend(&list[1], 0.9);
        old.window -= 1;
        let count = spend(&list[0], 3.0);
        let mut unknown = spend(&list[1], 0.9);
        unknown.rule = "gone".into();
        let other = Limits::build(&cfg, None).unwrap();
        assert_eq!(restore(&other.local, &other, &[old, count, unknown]), 0);
        let other_restored = Limits::build(&cfg, None).unwrap();
        assert_eq!(
            restore(
                &other_restored.local,
                &other_restored,
                &[spend(&list[1], 0.7)]
            ),
            1
        );
        assert!(
            other_restored.admit(&p, "m", demand).await.is_err(),
            "0.7 + 1.0 > 1.0"
        );
    }
}
