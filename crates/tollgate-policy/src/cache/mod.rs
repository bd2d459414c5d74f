//! Response cache (pipeline phase 7): exact-match answers keyed on a
//! canonical form of the request, scoped per tenant (or principal, or
//! globally), opt-in per model or virtual model. In-process (moka, bounded
//! by bytes) or Redis shared between gateway processes. A cached answer is
//! stored in its non-streaming form and replayed as JSON or as an SSE
//! stream. Entries are filed under the model, the storer's tenant and the
//! caller's namespace so operators can purge them (`purge.rs`); concurrent
//! identical misses share one upstream call (`flight.rs`). See
//! docs/cache.md.

mod entry;
mod fill;
mod flight;
mod key;
mod memory;
mod purge;
mod redis;
mod replay;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tollgate_core::error::BuildError;

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::auth::Principal;
use tollgate_config::{CacheBackendKind, CacheConfig, CacheRule, Endpoint};
use tollgate_core::error::InvalidRequest;

pub use entry::{Entry, Meta};
pub use fill::StreamFill;
pub use flight::{Flight, Join, Waiter};
pub use key::{key as cache_key, scope_id, Key};
pub use purge::{valid_key_prefix, Labels, PurgeFilter};
pub use replay::to_sse;

/// Request and response header: `hit`, `miss`, `bypass` on responses;
/// `bypass` on a request skips the cache.
pub const HEADER: &str = "x-tollgate-cache";
/// Request header: this answer's time to live (`30s`, `10m`), at most `cache.max_ttl`.
pub const TTL_HEADER: &str = "x-tollgate-cache-ttl";
/// Request header: the caller's namespace; entries of different
/// namespaces never answer each other.
pub const NAMESPACE_HEADER: &str = "x-tollgate-cache-namespace";
/// Response header: the entry's key in hex (what `key_prefix` purges by).
pub const KEY_HEADER: &str = "x-tollgate-cache-key";
/// Longest namespace, in bytes.
pub const MAX_NAMESPACE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// What phase 7 decided, carried in `RequestCtx` to the store and the ledger.
#[derive(Default)]
pub struct CacheNote {
    /// `None`: the model does not cache.
    pub status: Option<CacheStatus>,
    /// On a miss: where and how long to store the answer.
    pub pending: Option<(Key, Duration)>,
    /// On a hit or miss: the entry's key (shown in `KEY_HEADER`).
    pub key: Option<Key>,
    /// On a miss: what the entry is filed under.
    pub labels: Option<Labels>,
    /// On a miss that leads a single flight: held until the answer is
    /// stored or the request ends.
    pub flight: Option<Flight>,
    /// On a hit: the original call's cost, and who served it.
    pub cost_saved: f64,
    pub origin: Option<(String, String)>,
    /// On a hit with `limits.cache_hits: usage`: the prompt tokens,
    /// completion tokens and cost the limits are charged.
    pub charged: Option<(i64, i64, f64)>,
    /// On a streamed miss: the answer being assembled.
    pub fill: Option<StreamFill>,
}

pub enum Decision {
    /// The model does not cache.
    Off,
    Bypass(&'static str),
    Lookup {
        key: Key,
        ttl: Duration,
        labels: Labels,
    },
}

enum Backend {
    Memory(memory::Memory),
    Redis(redis::Redis),
}

pub struct Cache {
    backend: Backend,
    cfg: CacheConfig,
    lookups: AtomicU64,
    hits: AtomicU64,
    flights: Arc<flight::Flights>,
}

impl Cache {
    /// Builds the backend (`cache:` applies at restart). Redis connects in
    /// the background, so this needs a Tokio runtime.
    pub fn new(cfg: &CacheConfig) -> Result<Self, BuildError> {
        let backend = match (cfg.backend, &cfg.redis_url) {
            (CacheBackendKind::Redis, Some(url)) => Backend::Redis(redis::Redis::new(
                url,
                cfg.redis_prefix.clone(),
                cfg.lookup_timeout,
            )?),
            (CacheBackendKind::Redis, None) => return Err("cache.redis_url is required".into()),
            (CacheBackendKind::Memory, _) => Backend::Memory(memory::Memory::new(cfg.max_bytes)),
        };
        Ok(Self {
            backend,
            cfg: cfg.clone(),
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            flights: Arc::default(),
        })
    }

    /// Phase 7's decision for one request (no I/O).
    pub fn decide(
        &self,
        rule: Option<&CacheRule>,
        headers: &HeaderMap,
        principal: &Principal,
        endpoint: Endpoint,
        model: &str,
        body: &Map<String, Value>,
    ) -> Result<Decision, InvalidRequest> {
        let Some(rule) = rule.filter(|r| r.enabled) else {
            return Ok(Decision::Off);
        };
        if bypass_requested(headers) {
            return Ok(Decision::Bypass("header"));
        }
        let sampled = body
            .get("temperature")
            .and_then(Value::as_f64)
            .is_some_and(|t| t > 0.0);
        if sampled && !rule.any_temperature {
            return Ok(Decision::Bypass("temperature"));
        }
        let mut ttl = rule.ttl.unwrap_or(self.cfg.ttl);
        if let Some(v) = headers.get(TTL_HEADER) {
            let parsed = v
                .to_str()
                .ok()
                .and_then(|s| humantime::parse_duration(s.trim()).ok())
                .filter(|d| !d.is_zero());
            ttl = parsed.ok_or_else(|| {
                InvalidRequest::new(
                    format!("`{TTL_HEADER}` must be a duration like 30s or 10m"),
                    None,
                )
            })?;
            ttl = ttl.min(self.cfg.max_ttl);
        }
        let namespace = namespace(headers)?;
        let mut scope = scope_id(rule.scope.unwrap_or(self.cfg.scope), principal);
        if !namespace.is_empty() {
            scope.push_str("\0ns:");
            scope.push_str(namespace);
        }
        Ok(Decision::Lookup {
            key: cache_key(endpoint, model, &scope, body),
            ttl,
            labels: Labels {
                model: model.to_owned(),
                tenant: principal.tenant.as_deref().unwrap_or("").to_owned(),
                namespace: namespace.to_owned(),
            },
        })
    }

    /// A miss joins the single flight of its key: it leads (goes upstream)
    /// or follows (waits for the leader's answer).
    pub fn join(&self, key: Key) -> Join {
        self.flights.join(key)
    }

    /// Removes the entries `filter` matches; returns how many (the memory
    /// backend at once; Redis by `SCAN` and `UNLINK`).
    pub async fn purge(&self, filter: &PurgeFilter) -> Result<u64, PurgeError> {
        let n = match &self.backend {
            Backend::Memory(m) => m.purge(filter),
            Backend::Redis(r) => r.purge(filter).await?,
        };
        metrics::counter!("tollgate_cache_purged_total").increment(n);
        Ok(n)
    }

    /// Looks an answer up; counts the lookup for the hit ratio.
    pub async fn get(&self, key: &Key, labels: &Labels) -> Option<Arc<Entry>> {
        let found = match &self.backend {
            Backend::Memory(m) => m.get(key),
            Backend::Redis(r) => r.get(key, labels).await,
        };
        let lookups = self.lookups.fetch_add(1, Ordering::Relaxed) + 1;
        let hits = self
            .hits
            .fetch_add(u64::from(found.is_some()), Ordering::Relaxed)
            + u64::from(found.is_some());
        metrics::gauge!("tollgate_cache_hit_ratio").set(hits as f64 / lookups as f64);
        found
    }

    /// Stores an answer without waiting (Redis writes are spawned); the
    /// followers of its key get it too, stored or too large.
    pub fn put(&self, key: Key, labels: &Labels, entry: Entry, ttl: Duration) {
        let entry = Arc::new(entry);
        self.flights.deliver(&key, &entry);
        if entry.body.len() > self.cfg.max_entry_bytes {
            metrics::counter!("tollgate_cache_stores_total", "result" => "too_large").increment(1);
            return;
        }
        metrics::counter!("tollgate_cache_stores_total", "result" => "stored").increment(1);
        match &self.backend {
            Backend::Memory(m) => m.put(key, labels, entry, ttl),
            Backend::Redis(r) => r.put(&key, labels, &entry, ttl),
        }
    }

    /// Stores the answer of a miss, if phase 7 asked for it, and ends its
    /// single flight.
    pub fn store(&self, note: &mut CacheNote, meta: Meta, body: bytes::Bytes) {
        if let Some((key, ttl)) = note.pending.take() {
            let labels = note.labels.take().unwrap_or_default();
            self.put(key, &labels, Entry { meta, body }, ttl);
        }
        note.flight = None;
    }
}

/// A purge the Redis backend could not finish.
#[derive(Debug, thiserror::Error)]
#[error("cache purge: {0}")]
pub struct PurgeError(String);

/// The caller's namespace header: empty when absent; letters, digits and
/// `_.-:` up to `MAX_NAMESPACE` bytes, else 400.
fn namespace(headers: &HeaderMap) -> Result<&str, InvalidRequest> {
    let Some(v) = headers.get(NAMESPACE_HEADER) else {
        return Ok("");
    };
    v.to_str()
        .ok()
        .map(str::trim)
        .filter(|ns| {
            !ns.is_empty()
                && ns.len() <= MAX_NAMESPACE
                && ns
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'))
        })
        .ok_or_else(|| {
            InvalidRequest::new(
                format!(
                    "`{NAMESPACE_HEADER}` must be 1 to {MAX_NAMESPACE} letters, digits or `_.-:`"
                ),
                None,
            )
        })
}

/// `KEY_HEADER`'s value: the key in lowercase hex.
pub fn key_header(key: &Key) -> http::HeaderValue {
    http::HeaderValue::from_str(&hex::encode(key))
        .unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// Counts a miss that waited for an identical request's upstream call:
/// `answered` (it got that answer) or `alone` (the leader had none; the
/// follower called upstream itself).
pub fn count_coalesced(answered: bool) {
    metrics::counter!("tollgate_cache_coalesced_total",
        "result" => if answered { "answered" } else { "alone" })
    .increment(1);
}

/// `cache-control: no-cache` / `no-store`, or `x-tollgate-cache: bypass`.
fn bypass_requested(headers: &HeaderMap) -> bool {
    let cc = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
        });
    cc || headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("bypass"))
}

/// Descriptions of the cache's metrics (called by `tollgate::metrics`).
pub fn describe_metrics() {
    metrics::describe_counter!(
        "tollgate_cache_requests_total",
        "Response cache outcomes (hit, miss, bypass) by model"
    );
    metrics::describe_gauge!(
        "tollgate_cache_hit_ratio",
        "Response cache hits / lookups since start"
    );
    metrics::describe_gauge!(
        "tollgate_cache_saved_cost_total",
        "Cost of the upstream calls that cache hits replaced (only increases)"
    );
    metrics::describe_counter!("tollgate_cache_stores_total", "Answers stored, by result");
    metrics::describe_counter!(
        "tollgate_cache_errors_total",
        "Redis cache failures by operation"
    );
    metrics::describe_counter!(
        "tollgate_cache_coalesced_total",
        "Cache misses that waited for an identical request's upstream call, by result"
    );
    metrics::describe_counter!(
        "tollgate_cache_purged_total",
        "Entries removed by DELETE /admin/v1/cache"
    );
}

/// Counts one request's cache outcome (and the cost a hit saved).
pub fn count(model: &str, status: CacheStatus, reason: &'static str, saved: f64) {
    metrics::counter!("tollgate_cache_requests_total", "model" => model.to_string(),
        "result" => status.as_str(), "reason" => reason)
    .increment(1);
    if saved > 0.0 {
        metrics::gauge!("tollgate_cache_saved_cost_total", "model" => model.to_string())
            .increment(saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;
    use tollgate_config::PrincipalKind;

    fn principal() -> Principal {
        Principal {
            subject: "alice".into(),
            kind: PrincipalKind::User,
            groups: Arc::from(Vec::new()),
            tenant: Some("acme".into()),
            key_id: None,
            issuer: None,
            method: AuthMethod::ApiKey,
            claims: None,
        }
    }

    fn rule(any_temperature: bool) -> CacheRule {
        CacheRule {
            enabled: true,
            ttl: None,
            scope: None,
            any_temperature,
        }
    }

    fn body(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    fn decide(c: &Cache, r: Option<&CacheRule>, h: &[(&str, &str)], b: &str) -> Decision {
        let mut headers = HeaderMap::new();
        for (k, v) in h {
            headers.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        c.decide(r, &headers, &principal(), Endpoint::Chat, "m", &body(b))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_override_is_capped_and_entries_expire_on_the_paused_clock() {
        let cache = Cache::new(&CacheConfig {
            max_ttl: Duration::from_secs(600),
            ..CacheConfig::default()
        })
        .unwrap();
        let Decision::Lookup { key, ttl, .. } = decide(
            &cache,
            Some(&rule(false)),
            &[(TTL_HEADER, "1h")],
            r#"{"messages":[]}"#,
        ) else {
            unreachable!("cacheable")
        };
        assert_eq!(ttl, Duration::from_secs(600));
        let entry = Entry {
            meta: Meta {
                provider: "p".into(),
                upstream_model: "m".into(),
                prompt_tokens: 1,
                completion_tokens: 1,
                cost: 0.1,
            },
            body: bytes::Bytes::from_static(b"{}"),
        };
        cache.put(key, &Labels::default(), entry, ttl);
        tokio::time::advance(Duration::from_secs(599)).await;
        assert!(cache.get(&key, &Labels::default()).await.is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(cache.get(&key, &Labels::default()).await.is_none());
    }

    #[test]
    fn bypass_temperature_and_opt_in() {
        let cache = Cache::new(&CacheConfig::default()).unwrap();
        let b = r#"{"messages":[]}"#;
        let on = rule(false);
        assert!(matches!(decide(&cache, None, &[], b), Decision::Off));
        let off = CacheRule {
            enabled: false,
            ..rule(false)
        };
        assert!(matches!(decide(&cache, Some(&off), &[], b), Decision::Off));
        for h in [
            ("cache-control", "max-age=0, no-cache"),
            ("cache-control", "no-store"),
            (HEADER, "Bypass"),
        ] {
            let d = decide(&cache, Some(&on), &[h], b);
            assert!(matches!(d, Decision::Bypass("header")), "{h:?}");
        }
        let hot = r#"{"messages":[],"temperature":0.5}"#;
        assert!(matches!(
            decide(&cache, Some(&on), &[], hot),
            Decision::Bypass("temperature")
        ));
        assert!(matches!(
            decide(&cache, Some(&rule(true)), &[], hot),
            Decision::Lookup { .. }
        ));
        let mut headers = HeaderMap::new();
        headers.insert(TTL_HEADER, "0s".parse().unwrap());
        let bad = cache.decide(
            Some(&on),
            &headers,
            &principal(),
            Endpoint::Chat,
            "m",
            &body(b),
        );
        assert!(bad.is_err());
    }
}
