//! One request's usage, as stored.

use serde::{Deserialize, Serialize};

/// Serialized as one JSON line in the spool, so every field added later
/// needs `#[serde(default)]` to read spools written before it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct UsageRecord {
    /// Unix time in milliseconds when the request arrived.
    pub ts_ms: i64,
    pub request_id: String,
    pub principal: String,
    /// The API key's id; empty for tokens.
    pub key_id: String,
    /// The principal's tenant; empty when it has none.
    pub tenant: String,
    /// `api_key` or `jwt`.
    pub auth_method: String,
    /// The token's issuer; empty for API keys.
    pub issuer: String,
    pub endpoint: String,
    pub requested_model: String,
    pub provider: String,
    pub upstream_model: String,
    pub stream: bool,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// True when the upstream gave no usage and the tokens were counted here.
    pub tokens_estimated: bool,
    pub cost: f64,
    /// The request's outcome as an HTTP status: what the caller saw, except
    /// for a stream that failed after its first byte (the caller saw 200 and
    /// then an error event; this holds the failure's status, e.g. 502/504).
    /// 499: the caller went away first.
    pub status: u16,
    /// Low-cardinality error label, empty on success.
    pub error: String,
    pub latency_ms: f64,
    /// Time to first token (streams) or to the full response.
    pub ttft_ms: Option<f64>,
    /// Every upstream try, JSON: `[{"target","status","error"}]`.
    pub attempts: String,
    /// Guardrail verdicts, JSON: `[{"policy","direction","category","action","count"}]`
    /// (never the matched values).
    pub guardrails: String,
    /// Response cache outcome: `hit`, `miss`, `bypass`, or empty when the
    /// model does not cache. A hit has zero tokens and zero cost.
    pub cache: String,
    /// On a hit: the cost of the upstream call the cached answer came from.
    pub cost_saved: f64,
    /// The prompt template called, and its version; empty / `None` otherwise.
    pub template: String,
    pub template_version: Option<i64>,
    /// Limit decisions: typed on the request path, stored as JSON
    /// `[["rule","cap","decision",charged(,"partition",window)]]`
    /// (`limits.rs`, docs/limits.md).
    pub limits: crate::limits_column::LimitsColumn,
    /// Unique per record (UUIDv7, set when queued): replays insert it once.
    pub record_id: String,
    /// The principal's groups, JSON array (`group_by=group` counts a
    /// request under each of them).
    pub groups: String,
    /// A forwarded call (route, connection): the rows its payload held.
    pub rows: i64,
    /// Size of the request body received (an MCP message: the JSON-RPC
    /// message, so a tool call's arguments and their envelope).
    pub request_bytes: i64,
    /// Size of the answer body sent: an MCP message's JSON-RPC answer, a
    /// model call's whole answer; 0 for a streamed model answer.
    pub response_bytes: i64,
    /// Custom tags (`ledger.tags`, `crate::tags`): a small JSON object of
    /// strings, names sorted; empty text when the request has none.
    pub tags: String,
}
