//! Rate limits, token quotas and budgets (see docs/limits.md): the schema and
//! its cross-field checks. The runtime form is `tollgate_policy::limits::Limits`.

use crate::redact::redacted_debug;
use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Completion tokens reserved when a request sets no `max_tokens`.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: i64,
    /// Shared counters for rules with `store: redis`.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    #[serde(default)]
    pub rules: Vec<LimitRule>,
    /// What a response-cache hit charges (it always counts as a request).
    #[serde(default)]
    pub cache_hits: CacheHits,
    /// Soft thresholds: report a counter once per window when it reaches a
    /// share of its cap.
    #[serde(default)]
    pub alerts: LimitAlerts,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitAlerts {
    /// Share of a cap (percent, 0 < p ≤ 100) that alerts; rules may override.
    #[serde(default = "default_alert_percent")]
    pub at_percent: f64,
    /// Optional URL each alert is POSTed to (JSON), off the request path.
    #[serde(default)]
    pub webhook: Option<String>,
    /// How long one webhook call may take.
    #[serde(default = "default_alert_timeout", with = "duration")]
    pub timeout: Duration,
}

redacted_debug!(LimitAlerts {
    plain at_percent,
    url webhook,
    plain timeout,
});

impl Default for LimitAlerts {
    fn default() -> Self {
        Self {
            at_percent: default_alert_percent(),
            webhook: None,
            timeout: default_alert_timeout(),
        }
    }
}

fn default_alert_percent() -> f64 {
    80.0
}
fn default_alert_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            default_max_tokens: default_max_tokens(),
            redis: None,
            rules: Vec::new(),
            cache_hits: CacheHits::default(),
            alerts: LimitAlerts::default(),
        }
    }
}

/// How token and cost caps see a response-cache hit.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CacheHits {
    /// Request and in-flight caps count it; token and cost caps are charged
    /// nothing (no upstream token was spent).
    #[default]
    Requests,
    /// Token and cost caps are also charged the cached answer's tokens and
    /// the cost of the call that produced it, as if it had been served again.
    Usage,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db` (use `${ENV}` for a password).
    pub url: String,
    /// Longest wait for Redis on the request path before it counts as down.
    #[serde(default = "default_redis_timeout", with = "duration")]
    pub timeout: Duration,
    /// Key prefix, so several gateways' fleets can share one Redis.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

redacted_debug!(RedisConfig {
    url url,
    plain timeout,
    plain prefix,
});

/// Which requests a rule applies to; every non-empty list must match
/// (a list matches when the request's value is in it; `*` matches all).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitMatch {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Requested model or virtual model names.
    #[serde(default)]
    pub models: Vec<String>,
    /// MCP tool calls, by `server/tool` as served (docs/mcp.md). A rule
    /// that lists `tools` counts tool calls only; one that does not, none.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Route calls, by route name (docs/routes.md). A rule that lists
    /// `routes` counts route calls only.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Connection calls, by connection name (docs/connections.md). A rule
    /// that lists `connections` counts connection calls only.
    #[serde(default)]
    pub connections: Vec<String>,
}

/// What a rule's counters are partitioned by.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Key,
    Principal,
    /// One counter per group of the principal (those the match allows).
    Group,
    Tenant,
    Model,
    /// The MCP tool called (`server/tool`); `-` for model calls.
    Tool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Input,
    Output,
    #[default]
    Total,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    #[default]
    Enforce,
    /// Count and log what would be rejected; reject nothing.
    Shadow,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitStore {
    #[default]
    Local,
    Redis,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    /// Fall back to this node's counters and log loudly.
    #[default]
    Open,
    /// Reject requests (503) while Redis is unreachable.
    Closed,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overrun {
    /// End the stream with an error event when a token or cost cap would be crossed.
    #[default]
    Cut,
    /// Let the stream finish; the counter goes past its cap.
    Finish,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitRule {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matches: LimitMatch,
    /// Counter partitioning; empty: one counter shared by every matching request.
    #[serde(default)]
    pub per: Vec<Dimension>,
    #[serde(default)]
    pub requests_per_second: Option<u64>,
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    #[serde(default)]
    pub requests_per_hour: Option<u64>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    #[serde(default)]
    pub tokens_per_hour: Option<u64>,
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    #[serde(default)]
    pub tokens_per_month: Option<u64>,
    /// Which tokens the `tokens_per_*` caps count.
    #[serde(default)]
    pub token_kind: TokenKind,
    /// Requests in flight at once.
    #[serde(default)]
    pub concurrent: Option<u64>,
    /// Cost caps in the price table's currency (calendar windows, UTC).
    #[serde(default)]
    pub cost_per_day: Option<f64>,
    #[serde(default)]
    pub cost_per_week: Option<f64>,
    #[serde(default)]
    pub cost_per_month: Option<f64>,
    #[serde(default)]
    pub mode: LimitMode,
    #[serde(default)]
    pub store: LimitStore,
    #[serde(default)]
    pub on_store_error: StoreFailure,
    #[serde(default)]
    pub stream_overrun: Overrun,
    /// Replaces `limits.alerts.at_percent` for this rule's caps.
    #[serde(default)]
    pub alert_at_percent: Option<f64>,
}

impl LimitRule {
    pub fn has_cap(&self) -> bool {
        self.requests_per_second.is_some()
            || self.requests_per_minute.is_some()
            || self.requests_per_hour.is_some()
            || self.tokens_per_minute.is_some()
            || self.tokens_per_hour.is_some()
            || self.tokens_per_day.is_some()
            || self.tokens_per_month.is_some()
            || self.concurrent.is_some()
            || self.cost_per_day.is_some()
            || self.cost_per_week.is_some()
            || self.cost_per_month.is_some()
    }
}

pub(super) fn validate_limits(cfg: &LimitsConfig, p: &mut Vec<String>) {
    if cfg.default_max_tokens <= 0 {
        p.push("limits.default_max_tokens: must be greater than 0".into());
    }
    if let Some(r) = &cfg.redis {
        if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://")) {
            p.push(format!(
                "limits.redis.url: {:?} is not a redis:// URL",
                crate::shown_url(&r.url)
            ));
        }
        if r.timeout.is_zero() {
            p.push("limits.redis.timeout: must be greater than 0".into());
        }
    }
    let percent_ok = |v: f64| v.is_finite() && v > 0.0 && v <= 100.0;
    if !percent_ok(cfg.alerts.at_percent) {
        p.push("limits.alerts.at_percent: must be above 0 and at most 100".into());
    }
    if let Some(url) = &cfg.alerts.webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            p.push("limits.alerts.webhook: must be an http:// or https:// URL".into());
        }
    }
    if cfg.alerts.timeout.is_zero() {
        p.push("limits.alerts.timeout: must be greater than 0".into());
    }
    let mut names = HashSet::new();
    for (i, rule) in cfg.rules.iter().enumerate() {
        if rule.alert_at_percent.is_some_and(|v| !percent_ok(v)) {
            p.push(format!(
                "limits.rules[{i}].alert_at_percent: must be above 0 and at most 100"
            ));
        }
        let at = format!("limits.rules[{i}]");
        if rule.name.is_empty() || rule.name.contains(['\u{1f}', ':']) {
            p.push(format!("{at}.name: must be non-empty, without ':'"));
        }
        if !names.insert(rule.name.as_str()) {
            p.push(format!("{at}.name: duplicate rule {:?}", rule.name));
        }
        if !rule.has_cap() {
            p.push(format!(
                "{at}: sets no cap (requests_per_second/minute/hour, tokens_per_minute/hour/day/month, concurrent, cost_per_day/week/month)"
            ));
        }
        for (field, v) in [
            ("cost_per_day", rule.cost_per_day),
            ("cost_per_week", rule.cost_per_week),
            ("cost_per_month", rule.cost_per_month),
        ] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                p.push(format!("{at}.{field}: must be a number ≥ 0"));
            }
        }
        if rule.store == LimitStore::Redis && cfg.redis.is_none() {
            p.push(format!(
                "{at}.store: redis needs limits.redis.url to be set"
            ));
        }
    }
}

fn default_max_tokens() -> i64 {
    4096
}
fn default_redis_timeout() -> Duration {
    Duration::from_millis(100)
}
fn default_prefix() -> String {
    "tollgate".to_string()
}

#[cfg(test)]
mod tests {
    use crate::{parse_str, ConfigError};

    const BASE: &str = "server: { listen: \"127.0.0.1:0\", admin_listen: \"127.0.0.1:0\" }\n";

    fn problems(limits: &str) -> Vec<String> {
        match parse_str(&format!("{BASE}limits:\n{limits}")) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn rejects_bad_rules_with_paths() {
        let p = problems(
            "  rules:\n    - { name: a }\n    - { name: a, requests_per_minute: 1, store: redis }\n    - { name: c, cost_per_day: -1 }\n",
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("limits.rules[0]: sets no cap")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("limits.rules[1].name: duplicate")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("limits.rules[1].store: redis needs")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.contains("limits.rules[2].cost_per_day")),
            "{p:?}"
        );
        let p = problems("  redis: { url: \"http://x\" }\n  rules: []\n");
        assert!(p.iter().any(|m| m.contains("limits.redis.url")), "{p:?}");
        // Typos are errors, not silently ignored settings.
        assert!(parse_str(&format!(
            "{BASE}limits:\n  rules:\n    - {{ name: x, request_per_minute: 1 }}\n"
        ))
        .is_err());
    }

    #[test]
    fn accepts_a_full_rule() {
        let cfg = parse_str(&format!(
            "{BASE}limits:\n  redis: {{ url: \"redis://127.0.0.1:6379/\" }}\n  rules:\n    - name: r\n      match: {{ groups: [eng], models: [\"*\"] }}\n      per: [group, model]\n      tokens_per_minute: 10\n      token_kind: output\n      concurrent: 2\n      cost_per_month: 5\n      mode: shadow\n      store: redis\n      on_store_error: closed\n      stream_overrun: finish\n"
        ))
        .unwrap();
        assert_eq!(cfg.limits.rules[0].per.len(), 2);
        assert_eq!(cfg.limits.default_max_tokens, 4096);
    }
}
