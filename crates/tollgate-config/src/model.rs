//! The configuration file's shape: plain serde types, `deny_unknown_fields`
//! everywhere so a typo is an error rather than a silently ignored setting.
//! This module owns the schema only; checks that span fields live in
//! `validate.rs` and the runtime form is built by `tollgate_pipeline::snapshot`.

use crate::redact::redacted_debug;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub ledger: LedgerConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Names that map to several `models` with a routing strategy.
    #[serde(default)]
    pub virtual_models: Vec<super::routing::VirtualModelConfig>,
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// How callers prove who they are besides API keys (OIDC/JWT issuers).
    #[serde(default)]
    pub auth: AuthConfig,
    /// Who may use what: deny by default (see docs/identity.md).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Content guardrails on input and output (see docs/guardrails.md).
    #[serde(default)]
    pub guardrails: super::guardrails::GuardrailsConfig,
    /// Response cache backend (see docs/cache.md); models opt in.
    #[serde(default)]
    pub cache: super::cache::CacheConfig,
    /// Prompt templates served as APIs (see docs/prompts.md).
    #[serde(default)]
    pub prompts: super::prompts::PromptsConfig,
    /// Rate limits, token quotas and budgets (see docs/limits.md).
    #[serde(default)]
    pub limits: super::limits::LimitsConfig,
    /// One structured record per request (see docs/observability.md).
    #[serde(default)]
    pub audit: super::observability::AuditConfig,
    /// Log level and format.
    #[serde(default)]
    pub logging: super::observability::LoggingConfig,
    /// OpenTelemetry traces over OTLP.
    #[serde(default)]
    pub tracing: super::observability::TracingConfig,
    /// The MCP gateway: upstream tool servers and virtual servers (see docs/mcp.md).
    #[serde(default)]
    pub mcp: super::mcp::McpConfig,
    /// Where the gateway's own outbound calls may go (see docs/egress.md);
    /// absent: anywhere, as before.
    #[serde(default)]
    pub egress: Option<super::egress::EgressConfig>,
    /// Keys that encrypt named secrets at rest (see docs/secrets.md).
    #[serde(default)]
    pub secrets: super::secrets::SecretsConfig,
    /// Identity-aware routes: data-plane path prefixes forwarded to HTTP
    /// upstreams such as ML serving endpoints (see docs/routes.md).
    #[serde(default)]
    pub routes: Vec<super::forward::RouteConfig>,
    /// Outbound connections: external APIs reached with a credential the
    /// gateway injects (see docs/connections.md).
    #[serde(default)]
    pub connections: Vec<super::forward::ConnectionConfig>,
    /// Databricks jobs callers may trigger, poll and cancel (see docs/jobs.md).
    #[serde(default)]
    pub jobs: Vec<super::jobs::JobConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Data-plane address, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: String,
    /// Admin listener (health, readiness, metrics), on its own port.
    pub admin_listen: String,
    /// Largest request body accepted, in bytes (default 10 MiB).
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// How long in-flight requests and streams may run after SIGTERM.
    #[serde(default = "default_grace", with = "duration")]
    pub shutdown_grace: Duration,
    /// Watch the config file and reload when it changes (SIGHUP always reloads).
    #[serde(default = "default_true")]
    pub watch_config: bool,
    /// Server-side timeouts on accepted connections (both listeners).
    #[serde(default)]
    pub timeouts: ServerTimeouts,
    /// Most data-plane requests in flight at once (a stream counts until it
    /// ends); past it a request gets 503 with `Retry-After` at once.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
}

/// How long a caller's connection may keep the gateway waiting.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerTimeouts {
    /// From a request's first byte (a new connection: from its accept) to
    /// the end of its headers; past it the connection is closed.
    #[serde(default = "default_header_read", with = "duration")]
    pub header_read: Duration,
    /// From the end of a request's headers to the end of its body (the whole
    /// body, not the gap between chunks); past it the request gets 408.
    #[serde(default = "default_body_read", with = "duration")]
    pub body_read: Duration,
    /// How long a kept-alive connection may wait, with no request in flight,
    /// for the next request to start; past it the connection is closed.
    #[serde(default = "default_idle", with = "duration")]
    pub idle: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            header_read: default_header_read(),
            body_read: default_body_read(),
            idle: default_idle(),
        }
    }
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://PATH` (created when missing) or `sqlite::memory:`.
    #[serde(default = "default_storage_url")]
    pub url: String,
    /// How often the gateway re-reads API keys managed with `tollgate keys`.
    #[serde(default = "default_key_refresh", with = "duration")]
    pub key_refresh: Duration,
}

redacted_debug!(StorageConfig {
    url url,
    plain key_refresh,
});

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: default_storage_url(),
            key_refresh: default_key_refresh(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Records waiting to be written; when full, new records are dropped and counted.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Most records written in one transaction.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest a record waits before its batch is written.
    #[serde(default = "default_flush_interval", with = "duration")]
    pub flush_interval: Duration,
    /// Where records go while the store is unreachable (JSON lines, replayed
    /// in order when it returns). Default: `<sqlite file>.spool.jsonl`, or
    /// `tollgate-ledger.spool.jsonl` in the working directory.
    #[serde(default)]
    pub spool_path: Option<String>,
    /// Most records the spool holds; past it records are dropped and counted.
    #[serde(default = "default_spool_max_records")]
    pub spool_max_records: usize,
    /// Usage older than this is deleted (hourly); unset: kept forever.
    #[serde(default, with = "duration::option")]
    pub retention: Option<Duration>,
    /// Custom tags recorded with each request (`group_by=tag:NAME`).
    #[serde(default)]
    pub tags: super::observability::UsageTagsConfig,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_capacity: default_queue_capacity(),
            batch_size: default_batch_size(),
            flush_interval: default_flush_interval(),
            spool_path: None,
            spool_max_records: default_spool_max_records(),
            retention: None,
            tags: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Any OpenAI-compatible server: OpenAI, vLLM, Ollama, LM Studio, …
    Openai,
    /// In-process deterministic provider, for the quickstart and tests.
    Mock,
    /// Databricks Model Serving: `{base_url}/serving-endpoints/{model}/invocations`.
    Databricks,
    /// Azure OpenAI: `{base_url}/openai/deployments/{model}/…?api-version=…`.
    AzureOpenai,
    /// Google Gemini API (`generateContent`); `api_key` goes in `x-goog-api-key`.
    Gemini,
    /// Amazon Bedrock Converse, SigV4-signed (see `aws`).
    Bedrock,
    /// Anthropic Messages API (`x-api-key`, `anthropic-version`).
    Anthropic,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Base URL including the version prefix, e.g. `https://api.openai.com/v1`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Bearer key sent upstream; use `${ENV_VAR}`. Never logged (`Debug`
    /// prints `[redacted]`).
    #[serde(default)]
    pub api_key: Option<super::credentials::Secret>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Largest non-streamed response body read from this upstream, in bytes
    /// (default 32 MiB); past it the read stops and the attempt fails (502
    /// `upstream_too_large`). Streams are bounded per event instead.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// `auto` (HTTP/2 when TLS ALPN offers it, else HTTP/1.1), `http1`, or
    /// `http2` (prior knowledge, also over plain http: h2c).
    #[serde(default)]
    pub http_version: HttpVersion,
    /// Client request headers copied to the upstream request (exact names or
    /// `prefix-*`). Nothing else from the client reaches the upstream.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// Extra static headers sent upstream (values may use `${ENV_VAR}`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How the gateway authenticates upstream (docs/credentials.md); when
    /// absent, `api_key` (if any) is sent as a bearer token.
    #[serde(default)]
    pub auth: Option<super::credentials::UpstreamAuth>,
    /// `api-version` query parameter (azure_openai).
    #[serde(default)]
    pub api_version: Option<String>,
    /// `kind: bedrock`: region and static keys; anything unset comes from the
    /// usual AWS environment variables.
    #[serde(default)]
    pub aws: Option<AwsConfig>,
}

redacted_debug!(ProviderConfig {
    plain name,
    plain kind,
    url base_url,
    plain api_key,
    plain timeouts,
    plain max_response_bytes,
    plain http_version,
    plain forward_headers,
    values headers,
    plain auth,
    plain api_version,
    plain aws,
});

/// AWS SigV4 settings (values may use `${ENV_VAR}`; never logged).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Else `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// Else `AWS_ACCESS_KEY_ID`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Else `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub secret_access_key: Option<super::credentials::Secret>,
    /// Else `AWS_SESSION_TOKEN` (only when the keys also come from the environment).
    #[serde(default)]
    pub session_token: Option<super::credentials::Secret>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum HttpVersion {
    #[default]
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "default_connect", with = "duration")]
    pub connect: Duration,
    /// Until the response headers (for streams: the stream's start) arrive.
    #[serde(default = "default_first_byte", with = "duration")]
    pub first_byte: Duration,
    /// The whole exchange, body included.
    #[serde(default = "default_total", with = "duration")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect(),
            first_byte: default_first_byte(),
            total: default_total(),
        }
    }
}

/// The API a model call arrives on (defined beside the ingress parse, which
/// checks each one's required field).
pub use tollgate_core::ingress::Endpoint;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name callers put in `model`.
    pub name: String,
    /// A provider's `name`.
    pub provider: String,
    /// The model id sent upstream (defaults to `name`).
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Endpoints this model serves (default: all).
    #[serde(default)]
    pub endpoints: Option<Vec<Endpoint>>,
    #[serde(default)]
    pub price: Option<Price>,
    /// Owning tenant: when set, only principals of this tenant may use the
    /// model, whatever their grants say. Unset: shared by every tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Response cache opt-in (see docs/cache.md).
    #[serde(default)]
    pub cache: Option<super::cache::CacheRule>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Cost per million prompt tokens.
    #[serde(default)]
    pub input_per_mtok: f64,
    /// Cost per million completion tokens.
    #[serde(default)]
    pub output_per_mtok: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    #[default]
    User,
    Service,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id, shown in the ledger and logs (never the key itself).
    pub id: String,
    /// `sha256:<hex>` of the key; `tollgate keys hash` computes it.
    pub hash: String,
    /// Principal the key authenticates as.
    pub principal: String,
    #[serde(default)]
    pub kind: PrincipalKind,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Model names or globs (`gpt-*`, `*`) this key may use. Empty: none
    /// (policy rules may still grant models to its principal, groups, tenant).
    #[serde(default)]
    pub models: Vec<String>,
    /// The tenant owning the key (external clients are issued keys per tenant).
    #[serde(default)]
    pub tenant: Option<String>,
    /// When the key stops working: RFC 3339 (`2026-01-31T00:00:00Z`) or Unix seconds.
    #[serde(default)]
    pub expires: Option<Expiry>,
}

/// A point in time, written as RFC 3339 or Unix seconds; kept in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub unix_ms: i64,
}

/// A time that is neither RFC 3339 nor Unix seconds, or before 1970.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTime {
    #[error(
        "invalid time {text:?} ({reason}); use RFC 3339 like 2026-01-31T00:00:00Z or Unix seconds"
    )]
    Invalid { text: String, reason: String },
    #[error("time {0:?} is before 1970")]
    BeforeEpoch(String),
}

impl Expiry {
    /// Parses RFC 3339 (`2026-01-31T00:00:00Z`) or Unix seconds.
    pub fn parse(text: &str) -> Result<Self, BadTime> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<i64>() {
            return Ok(Self {
                unix_ms: secs.saturating_mul(1000),
            });
        }
        let t = humantime::parse_rfc3339_weak(text).map_err(|e| BadTime::Invalid {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| BadTime::BeforeEpoch(text.to_owned()))?
            .as_millis();
        Ok(Self {
            unix_ms: i64::try_from(ms).unwrap_or(i64::MAX),
        })
    }
}

impl Serialize for Expiry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.unix_ms / 1000)
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(secs) => Ok(Self {
                unix_ms: secs.saturating_mul(1000),
            }),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// OIDC issuers whose JWT bearer tokens are accepted.
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Must equal the token's `iss` exactly.
    pub issuer: String,
    /// The token's `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    /// Fetch `{issuer}/.well-known/openid-configuration` for `jwks_uri`.
    #[serde(default = "default_true")]
    pub discovery: bool,
    /// JWKS URL; overrides discovery.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted signing algorithms (asymmetric only).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "duration")]
    pub leeway: Duration,
    /// How often the JWKS is re-fetched in the background.
    #[serde(default = "default_jwks_refresh", with = "duration")]
    pub refresh: Duration,
    /// A token with an unknown `kid` triggers at most one JWKS fetch per
    /// this interval (the only identity-provider call a request can wait on).
    #[serde(default = "default_unknown_kid_refresh", with = "duration")]
    pub unknown_kid_refresh: Duration,
    #[serde(default)]
    pub claims: ClaimsConfig,
}

redacted_debug!(OidcConfig {
    url issuer,
    plain audiences,
    plain discovery,
    url jwks_url,
    plain algorithms,
    plain leeway,
    plain refresh,
    plain unknown_kid_refresh,
    plain claims,
});

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaimsConfig {
    /// Claim path of the subject (default `sub`).
    #[serde(default = "default_subject_claim")]
    pub subject: String,
    /// Claim path of the groups/roles: `groups`, `realm_access.roles`, `scp`
    /// (a space-separated string becomes a list). Default `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups: Option<String>,
    /// Claim path of the tenant (e.g. `tid`); unset: tokens carry no tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Claim path deciding the principal kind (e.g. `gty`, `idtyp`, `azp`).
    #[serde(default)]
    pub kind_claim: Option<String>,
    /// Values of `kind_claim` meaning "service"; empty: the claim being
    /// present at all means "service".
    #[serde(default)]
    pub service_values: Vec<String>,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        Self {
            subject: default_subject_claim(),
            groups: default_groups_claim(),
            tenant: None,
            kind_claim: None,
            service_values: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

/// One grant. It applies to a principal matching ANY of its selectors; an
/// empty selector list matches nothing on that dimension.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub name: String,
    /// Principal subjects (API key `principal`, token subject).
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<PrincipalKind>,
    /// Model names or globs granted.
    #[serde(default)]
    pub models: Vec<String>,
    /// MCP tools granted, as `server/tool` names or globs (`warehouse/*`,
    /// `*`); `server` is the name the tool is served under (docs/mcp.md).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Routes granted, by name or glob (docs/routes.md).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Outbound connections granted, by name or glob (docs/connections.md).
    #[serde(default)]
    pub connections: Vec<String>,
    /// HTTP methods the rule's `routes` and `connections` grants allow
    /// (case-insensitive); empty: every method (docs/routes.md).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Grants the admin role (gates admin endpoints).
    #[serde(default)]
    pub admin: bool,
    /// Conditions on the token's claims, all of which must hold (tokens
    /// only: an API key has no claims).
    #[serde(default)]
    pub claims: Vec<ClaimCondition>,
    /// Databricks jobs granted, by name or glob (docs/jobs.md).
    #[serde(default)]
    pub jobs: Vec<String>,
}

/// One condition on a token claim (a dotted path, as in `auth.oidc[].claims`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaimCondition {
    pub claim: String,
    /// The claim is this string, boolean or number.
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    /// The claim is an array holding this string, or a string whose
    /// space-separated words include it (OAuth `scope` / `scp`).
    #[serde(default)]
    pub contains: Option<String>,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "PS256", "ES256", "EdDSA"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn default_leeway() -> Duration {
    Duration::from_secs(60)
}
fn default_jwks_refresh() -> Duration {
    Duration::from_secs(600)
}
fn default_unknown_kid_refresh() -> Duration {
    Duration::from_secs(10)
}
fn default_subject_claim() -> String {
    "sub".to_string()
}
fn default_groups_claim() -> Option<String> {
    Some("groups".to_string())
}
fn default_body_limit() -> usize {
    10 * 1024 * 1024
}
/// 32 MiB: far above any chat or embeddings answer, far below what hurts.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}
fn default_max_concurrent_requests() -> usize {
    10_000
}
fn default_header_read() -> Duration {
    Duration::from_secs(10)
}
fn default_body_read() -> Duration {
    Duration::from_secs(30)
}
fn default_idle() -> Duration {
    Duration::from_secs(60)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_true() -> bool {
    true
}
fn default_storage_url() -> String {
    "sqlite://tollgate.db".to_string()
}
fn default_key_refresh() -> Duration {
    Duration::from_secs(2)
}
fn default_queue_capacity() -> usize {
    65_536
}
fn default_batch_size() -> usize {
    512
}
fn default_spool_max_records() -> usize {
    200_000
}
fn default_flush_interval() -> Duration {
    Duration::from_millis(200)
}
fn default_connect() -> Duration {
    Duration::from_secs(5)
}
fn default_first_byte() -> Duration {
    Duration::from_secs(60)
}
fn default_total() -> Duration {
    Duration::from_secs(600)
}
