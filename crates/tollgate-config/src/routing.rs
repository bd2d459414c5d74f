//! Virtual models: one name callers use, several physical targets (entries
//! of `models[]`, possibly on different providers) and a strategy. Schema
//! only; the runtime lives in `tollgate_policy::routing`.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// All traffic to the healthiest target with the lowest priority number.
    #[default]
    Priority,
    /// Split by weight; optionally sticky by a header or metadata key.
    Weighted,
    /// The target with the lowest recent time per output token.
    Latency,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VirtualModelConfig {
    pub name: String,
    #[serde(default)]
    pub strategy: Strategy,
    pub targets: Vec<TargetConfig>,
    /// Retries on one target before moving on (each target may override).
    #[serde(default)]
    pub retry: RetryConfig,
    /// Upstream statuses that move on to the next target.
    #[serde(default = "default_fallback_on")]
    pub fallback_on: Vec<u16>,
    /// Timeouts and unreachable upstreams move on to the next target.
    #[serde(default = "default_true")]
    pub fallback_on_timeout: bool,
    /// One deadline for the whole request, every attempt included.
    #[serde(default = "default_deadline", with = "duration")]
    pub deadline: Duration,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub latency: LatencyConfig,
    /// Weighted only: keep a conversation on one target.
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
    /// Response cache opt-in (see docs/cache.md).
    #[serde(default)]
    pub cache: Option<super::cache::CacheRule>,
    /// Streams: longest a try may take to the stream's first chunk before
    /// it counts as a timeout (and falls back); each target may override.
    #[serde(default, with = "duration::option")]
    pub first_chunk_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A name from `models[]`.
    pub model: String,
    /// Priority strategy: lower goes first (0 is highest).
    #[serde(default)]
    pub priority: u32,
    /// Weighted strategy: share of traffic, relative to the other targets.
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// Replaces the virtual model's `first_chunk_timeout` for this target.
    #[serde(default, with = "duration::option")]
    pub first_chunk_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first try (so `2` means up to three tries).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Pause between tries; ±20% jitter is added.
    #[serde(default = "default_retry_delay", with = "duration")]
    pub delay: Duration,
    /// Upstream statuses worth retrying on the same target.
    #[serde(default = "default_retry_on")]
    pub on: Vec<u16>,
    /// An upstream `Retry-After` is honoured up to this; longer → next target.
    #[serde(default = "default_max_retry_after", with = "duration")]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            retries: default_retries(),
            delay: default_retry_delay(),
            on: default_retry_on(),
            max_retry_after: default_max_retry_after(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Failures (5xx, 429, 401, 403, timeouts) within `window` that make a
    /// target unhealthy (at most 64).
    #[serde(default = "default_failures")]
    pub failures: usize,
    #[serde(default = "default_health_window", with = "duration")]
    pub window: Duration,
    /// Optional SLA: a mean time per output token above this (ms) over
    /// `sla_window` makes the target unhealthy.
    #[serde(default)]
    pub sla_ms_per_token: Option<f64>,
    #[serde(default = "default_sla_window", with = "duration")]
    pub sla_window: Duration,
    /// How long an unhealthy target is left alone before one trial request
    /// is let through (half-open); absent: `window`.
    #[serde(default, with = "duration::option")]
    pub cooldown: Option<Duration>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            failures: default_failures(),
            window: default_health_window(),
            sla_ms_per_token: None,
            sla_window: default_sla_window(),
            cooldown: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    #[serde(default = "default_latency_window", with = "duration")]
    pub window: Duration,
    /// Samples kept per target (at most 100).
    #[serde(default = "default_max_samples")]
    pub max_samples: usize,
    /// Below this many samples a target counts as fastest, to gather data.
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// Targets within this factor of the fastest count as equally fast.
    #[serde(default = "default_band")]
    pub band: f64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        Self {
            window: default_latency_window(),
            max_samples: default_max_samples(),
            min_samples: default_min_samples(),
            band: default_band(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StickyConfig {
    /// Request header whose value pins the target, e.g. `x-session-id`.
    #[serde(default)]
    pub header: Option<String>,
    /// Key in the request's `metadata` object (or `user` when set to `user`).
    #[serde(default)]
    pub metadata: Option<String>,
}

fn default_true() -> bool {
    true
}
fn default_weight() -> u32 {
    1
}
fn default_fallback_on() -> Vec<u16> {
    vec![401, 403, 404, 429, 500, 502, 503]
}
fn default_deadline() -> Duration {
    Duration::from_secs(600)
}
fn default_retries() -> u32 {
    2
}
fn default_retry_delay() -> Duration {
    Duration::from_millis(100)
}
fn default_retry_on() -> Vec<u16> {
    vec![429, 500, 502, 503]
}
fn default_max_retry_after() -> Duration {
    Duration::from_secs(10)
}
fn default_failures() -> usize {
    2
}
fn default_health_window() -> Duration {
    Duration::from_secs(120)
}
fn default_sla_window() -> Duration {
    Duration::from_secs(180)
}
fn default_latency_window() -> Duration {
    Duration::from_secs(20 * 60)
}
fn default_max_samples() -> usize {
    100
}
fn default_min_samples() -> usize {
    3
}
fn default_band() -> f64 {
    1.2
}

/// Checks for `virtual_models`, given the physical model names.
pub fn validate(vms: &[VirtualModelConfig], models: &HashSet<&str>, p: &mut Vec<String>) {
    let mut names = HashSet::new();
    for (i, vm) in vms.iter().enumerate() {
        let at = format!("virtual_models[{i}]");
        if !names.insert(vm.name.as_str()) || models.contains(vm.name.as_str()) {
            p.push(format!(
                "{at}.name: {:?} is already a model or virtual model",
                vm.name
            ));
        }
        if vm.targets.is_empty() {
            p.push(format!("{at}.targets: list at least one target"));
        }
        for (j, t) in vm.targets.iter().enumerate() {
            if !models.contains(t.model.as_str()) {
                p.push(format!(
                    "{at}.targets[{j}].model: no model named {:?}",
                    t.model
                ));
            }
        }
        if vm.strategy == Strategy::Weighted && vm.targets.iter().all(|t| t.weight == 0) {
            p.push(format!(
                "{at}.targets: weighted needs at least one weight above 0"
            ));
        }
        if vm
            .sticky
            .as_ref()
            .is_some_and(|s| s.header.is_some() == s.metadata.is_some())
        {
            p.push(format!(
                "{at}.sticky: set exactly one of header or metadata"
            ));
        }
        if vm.sticky.is_some() && vm.strategy != Strategy::Weighted {
            p.push(format!("{at}.sticky: only the weighted strategy is sticky"));
        }
        if !(1..=64).contains(&vm.health.failures) {
            p.push(format!("{at}.health.failures: must be between 1 and 64"));
        }
        if !(1..=100).contains(&vm.latency.max_samples) {
            p.push(format!(
                "{at}.latency.max_samples: must be between 1 and 100"
            ));
        }
        if vm.latency.band < 1.0 {
            p.push(format!("{at}.latency.band: must be at least 1.0"));
        }
        if vm.deadline.is_zero() {
            p.push(format!("{at}.deadline: must be greater than 0"));
        }
        if vm.health.cooldown.is_some_and(|d| d.is_zero()) {
            p.push(format!("{at}.health.cooldown: must be greater than 0"));
        }
        let first_chunk = std::iter::once((String::new(), vm.first_chunk_timeout)).chain(
            vm.targets
                .iter()
                .enumerate()
                .map(|(j, t)| (format!(".targets[{j}]"), t.first_chunk_timeout)),
        );
        for (path, timeout) in first_chunk {
            if timeout.is_some_and(|d| d.is_zero()) {
                p.push(format!(
                    "{at}{path}.first_chunk_timeout: must be greater than 0"
                ));
            }
        }
        for code in vm.fallback_on.iter().chain(&vm.retry.on) {
            if !(100..600).contains(code) {
                p.push(format!("{at}: {code} is not an HTTP status"));
            }
        }
    }
}
