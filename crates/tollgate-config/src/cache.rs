//! Response-cache settings: the process-wide backend (`cache:`) and the
//! per-model / per-virtual-model opt-in (`models[].cache`,
//! `virtual_models[].cache`). See docs/cache.md.

use crate::redact::redacted_debug;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CacheBackendKind {
    /// In-process, bounded by `max_bytes` (moka).
    #[default]
    Memory,
    /// Redis, shared by every gateway process pointing at it.
    Redis,
}

/// Whose answers a cached entry may be served to.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CacheScope {
    /// Principals of the same tenant (principals without a tenant share
    /// the "no tenant" scope).
    #[default]
    Tenant,
    /// The same principal only.
    Principal,
    /// Everyone calling the same model with the same request.
    Global,
}

impl CacheScope {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheScope::Tenant => "tenant",
            CacheScope::Principal => "principal",
            CacheScope::Global => "global",
        }
    }
}

/// `cache:` — the backend; applies at restart (like `storage`).
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub backend: CacheBackendKind,
    /// `redis://host:port[/db]`; required for the redis backend.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this gateway writes.
    #[serde(default = "default_prefix")]
    pub redis_prefix: String,
    /// Longest a request waits on a Redis lookup; slower counts as a miss.
    #[serde(default = "default_lookup_timeout", with = "duration")]
    pub lookup_timeout: Duration,
    /// Memory backend: total size of the cached answers, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Answers larger than this (bytes) are not cached.
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: usize,
    /// Default time to live of an entry (a model's `cache.ttl` overrides).
    #[serde(default = "default_ttl", with = "duration")]
    pub ttl: Duration,
    /// Upper bound of a per-request `x-tollgate-cache-ttl`.
    #[serde(default = "default_max_ttl", with = "duration")]
    pub max_ttl: Duration,
    /// Default scope (a model's `cache.scope` overrides).
    #[serde(default)]
    pub scope: CacheScope,
}

redacted_debug!(CacheConfig {
    plain backend,
    url redis_url,
    plain redis_prefix,
    plain lookup_timeout,
    plain max_bytes,
    plain max_entry_bytes,
    plain ttl,
    plain max_ttl,
    plain scope,
});

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            backend: CacheBackendKind::Memory,
            redis_url: None,
            redis_prefix: default_prefix(),
            lookup_timeout: default_lookup_timeout(),
            max_bytes: default_max_bytes(),
            max_entry_bytes: default_max_entry_bytes(),
            ttl: default_ttl(),
            max_ttl: default_max_ttl(),
            scope: CacheScope::Tenant,
        }
    }
}

/// `models[].cache` / `virtual_models[].cache`: the opt-in.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Time to live; unset: `cache.ttl`.
    #[serde(default, with = "opt_duration")]
    pub ttl: Option<Duration>,
    /// Unset: `cache.scope`.
    #[serde(default)]
    pub scope: Option<CacheScope>,
    /// Also cache requests with `temperature > 0` (sampled answers).
    #[serde(default)]
    pub any_temperature: bool,
}

/// Whether redis's own URL parser accepts `url`. The `redis` feature is on
/// in every build of the gateway; the fuzz build (`fuzz/`) leaves it out,
/// the redis client being too large to build instrumented in CI's time,
/// and accepts any URL here.
fn redis_url_ok(url: &str) -> bool {
    #[cfg(feature = "redis")]
    {
        redis::Client::open(url).is_ok()
    }
    #[cfg(not(feature = "redis"))]
    {
        !url.is_empty()
    }
}

pub(super) fn validate(cfg: &CacheConfig, p: &mut Vec<String>) {
    match (cfg.backend, &cfg.redis_url) {
        (CacheBackendKind::Redis, None) => {
            p.push("cache.redis_url: required for backend redis".into())
        }
        (_, Some(url)) if !redis_url_ok(url) => p.push(format!(
            "cache.redis_url: {:?} is not a redis:// URL",
            crate::shown_url(url)
        )),
        _ => {}
    }
    if cfg.max_bytes == 0 || cfg.max_entry_bytes == 0 {
        p.push("cache.max_bytes, cache.max_entry_bytes: must be greater than 0".into());
    }
    if cfg.ttl.is_zero() || cfg.max_ttl.is_zero() {
        p.push("cache.ttl, cache.max_ttl: must be greater than 0".into());
    }
}

fn default_true() -> bool {
    true
}
fn default_prefix() -> String {
    "tollgate:cache:".into()
}
fn default_lookup_timeout() -> Duration {
    Duration::from_millis(50)
}
fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_entry_bytes() -> usize {
    1024 * 1024
}
fn default_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_max_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// `Option<Duration>` written as a human string (`30s`).
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}
