//! Routing: a requested name → an ordered plan of physical targets. Plain
//! models are a plan of one; virtual models order their targets by strategy
//! and health. Decisions read lock-free stats (`stats.rs`); this module owns
//! the order, not the calls (the pipeline's attempt loop makes those).

pub use tollgate_core::clock;
mod stats;

pub use stats::{Health, LastFailure, TargetStats};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tollgate_core::error::BuildError;

use http::HeaderMap;
use serde_json::{Map, Value};

use tollgate_config::{RetryConfig, StickyConfig, Strategy, VirtualModelConfig};

/// What a target points at: the runtime route of a model (the pipeline's
/// `ModelRoute`, a model bound to its provider). Routing only needs its name.
pub trait Route {
    fn name(&self) -> &str;
}

/// One physical target with its retry policy and stats.
pub struct Target<R> {
    pub route: Arc<R>,
    pub retry: Arc<RetryConfig>,
    pub stats: Arc<TargetStats>,
    pub priority: u32,
    pub weight: u32,
    /// Streams: the most a try may take to the first chunk (the target's
    /// own, else the virtual model's).
    pub first_chunk_timeout: Option<Duration>,
}

pub struct VirtualModel<R> {
    pub name: Arc<str>,
    pub strategy: Strategy,
    pub targets: Vec<Target<R>>,
    pub fallback_on: Arc<[u16]>,
    pub fallback_on_timeout: bool,
    pub deadline: Duration,
    sticky: Option<StickyConfig>,
    band: f64,
    /// The latency strategy's current pick, kept while it stays in the band.
    current: AtomicUsize,
}

impl<R: Route> VirtualModel<R> {
    /// `previous` hands over the stats of targets that survive a reload.
    pub fn build(
        cfg: &VirtualModelConfig,
        resolve: impl Fn(&str) -> Option<Arc<R>>,
        previous: Option<&VirtualModel<R>>,
    ) -> Result<Self, BuildError> {
        let mut targets = Vec::with_capacity(cfg.targets.len());
        for t in &cfg.targets {
            let route = resolve(&t.model)
                .ok_or_else(|| format!("virtual model {}: unknown target {}", cfg.name, t.model))?;
            let stats = previous
                .and_then(|p| p.targets.iter().find(|old| old.route.name() == t.model))
                .filter(|_| previous.is_some_and(|p| p.strategy == cfg.strategy))
                .map(|old| old.stats.clone())
                .unwrap_or_else(|| Arc::new(TargetStats::new(&cfg.health, &cfg.latency)));
            targets.push(Target {
                route,
                retry: Arc::new(t.retry.clone().unwrap_or_else(|| cfg.retry.clone())),
                stats,
                priority: t.priority,
                weight: t.weight,
                first_chunk_timeout: t.first_chunk_timeout.or(cfg.first_chunk_timeout),
            });
        }
        Ok(Self {
            name: cfg.name.as_str().into(),
            strategy: cfg.strategy,
            targets,
            fallback_on: cfg.fallback_on.as_slice().into(),
            fallback_on_timeout: cfg.fallback_on_timeout,
            deadline: cfg.deadline,
            sticky: cfg.sticky.clone(),
            band: cfg.latency.band,
            current: AtomicUsize::new(0),
        })
    }

    /// The sticky key of a request, when the virtual model is sticky.
    pub fn sticky_key<'a>(
        &self,
        headers: &'a HeaderMap,
        body: &'a Map<String, Value>,
    ) -> Option<&'a str> {
        let sticky = self.sticky.as_ref()?;
        if let Some(h) = &sticky.header {
            return headers.get(h.as_str()).and_then(|v| v.to_str().ok());
        }
        let key = sticky.metadata.as_deref()?;
        if key == "user" {
            return body.get("user").and_then(Value::as_str);
        }
        body.get("metadata")?.get(key)?.as_str()
    }

    /// Target indices in the order to try them. `roll` is a uniform random
    /// number (the weighted draw when there is no sticky key).
    pub fn plan(&self, now_ms: u64, sticky: Option<&str>, roll: u64) -> Vec<usize> {
        let states: Vec<Health> = self
            .targets
            .iter()
            .map(|t| t.stats.health(now_ms))
            .collect();
        let mut healthy: Vec<bool> = states
            .iter()
            .map(|h| matches!(h, Health::Healthy | Health::HalfOpen))
            .collect();
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        match self.strategy {
            Strategy::Priority => order.sort_by_key(|&i| self.targets[i].priority),
            Strategy::Weighted => {
                let first = self.weighted_pick(&healthy, sticky, roll);
                order.sort_by_key(|&i| (i != first, std::cmp::Reverse(self.targets[i].weight)));
            }
            Strategy::Latency => {
                let scores: Vec<f64> = self
                    .targets
                    .iter()
                    .map(|t| t.stats.latency_score(now_ms))
                    .collect();
                let first = self.latency_pick(&healthy, &scores);
                order.sort_by(|&a, &b| {
                    (a != first)
                        .cmp(&(b != first))
                        .then(scores[a].total_cmp(&scores[b]))
                });
            }
        }
        // A half-open target keeps its place only as one request's first
        // try (the probe); for every other request it is still unhealthy.
        let first = order.iter().copied().find(|&i| healthy[i]);
        for (i, state) in states.iter().enumerate() {
            if *state == Health::HalfOpen
                && (Some(i) != first || !self.targets[i].stats.claim_probe(now_ms))
            {
                healthy[i] = false;
            }
        }
        // Unhealthy targets go last, keeping the strategy's order otherwise.
        order.sort_by_key(|&i| !healthy[i]);
        order
    }

    fn weighted_pick(&self, healthy: &[bool], sticky: Option<&str>, roll: u64) -> usize {
        let pool: Vec<usize> = {
            let h: Vec<usize> = (0..self.targets.len())
                .filter(|&i| healthy[i] && self.targets[i].weight > 0)
                .collect();
            if h.is_empty() {
                (0..self.targets.len())
                    .filter(|&i| self.targets[i].weight > 0)
                    .collect()
            } else {
                h
            }
        };
        // A sticky key hashes over all weighted targets (not just healthy
        // ones) so a conversation keeps its target while it is up.
        let (pool, point) = match sticky {
            Some(key) => {
                let all: Vec<usize> = (0..self.targets.len())
                    .filter(|&i| self.targets[i].weight > 0)
                    .collect();
                let total: u64 = all.iter().map(|&i| u64::from(self.targets[i].weight)).sum();
                let pick = draw(&self.targets, &all, fnv1a(key) % total.max(1));
                if healthy[pick] {
                    return pick;
                }
                (pool, fnv1a(key))
            }
            None => (pool, roll),
        };
        let total: u64 = pool
            .iter()
            .map(|&i| u64::from(self.targets[i].weight))
            .sum();
        draw(&self.targets, &pool, point % total.max(1))
    }

    fn latency_pick(&self, healthy: &[bool], scores: &[f64]) -> usize {
        let candidates: Vec<usize> = {
            let h: Vec<usize> = (0..scores.len()).filter(|&i| healthy[i]).collect();
            if h.is_empty() {
                (0..scores.len()).collect()
            } else {
                h
            }
        };
        let best = candidates
            .iter()
            .copied()
            .min_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap_or(0);
        let current = self.current.load(Ordering::Relaxed);
        // Stay put while the current pick is within the band of the fastest.
        let keep = candidates.contains(&current) && scores[current] <= scores[best] * self.band;
        let pick = if keep { current } else { best };
        if pick != current {
            self.current.store(pick, Ordering::Relaxed);
        }
        pick
    }
}

fn draw<R>(targets: &[Target<R>], pool: &[usize], mut point: u64) -> usize {
    for &i in pool {
        let w = u64::from(targets[i].weight);
        if point < w {
            return i;
        }
        point -= w;
    }
    pool.first().copied().unwrap_or(0)
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
