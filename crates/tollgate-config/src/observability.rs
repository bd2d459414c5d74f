//! Settings for what the gateway tells operators: the audit log, logs and
//! OpenTelemetry traces. Read at start (a reload does not change them).

use crate::redact::redacted_debug;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default)]
    pub enabled: bool,
    /// `stdout`, or a file path (appended to).
    #[serde(default = "default_sink")]
    pub sink: String,
    /// Models (names or globs) whose request and response bodies are logged,
    /// with PII found by the guardrail detectors redacted. Default: none.
    #[serde(default)]
    pub payload_models: Vec<String>,
    /// Records waiting to be written; when full, new records are dropped and counted.
    #[serde(default = "default_audit_queue")]
    pub queue_capacity: usize,
    /// How often the writer drains the queue and writes (one write and flush
    /// per interval). A crash loses at most this much of the log.
    #[serde(default = "default_audit_flush", with = "duration")]
    pub flush_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            sink: default_sink(),
            payload_models: Vec::new(),
            queue_capacity: default_audit_queue(),
            flush_interval: default_audit_flush(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line on stdout, with the request id.
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// A tracing filter (`info`, `tollgate=debug,warn`); the `TOLLGATE_LOG`
    /// or `RUST_LOG` environment variable wins. Default `info`.
    #[serde(default)]
    pub level: Option<String>,
    /// `text` (stderr) or `json` (stdout); `--log-format` wins.
    #[serde(default)]
    pub format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/gRPC (default port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318, path `/v1/traces`).
    HttpProtobuf,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Collector endpoint, e.g. `http://127.0.0.1:4317` (gRPC) or
    /// `http://127.0.0.1:4318/v1/traces` (HTTP).
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Share of new traces sampled (0.0–1.0); a caller's sampled
    /// `traceparent` is always followed.
    #[serde(default = "default_ratio")]
    pub sample_ratio: f64,
    /// `service.name` resource attribute.
    #[serde(default = "default_service")]
    pub service_name: String,
}

redacted_debug!(TracingConfig {
    plain enabled,
    url endpoint,
    plain protocol,
    plain sample_ratio,
    plain service_name,
});

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: String::new(),
            protocol: OtlpProtocol::Grpc,
            sample_ratio: default_ratio(),
            service_name: default_service(),
        }
    }
}

fn default_sink() -> String {
    "stdout".to_string()
}
fn default_audit_flush() -> Duration {
    Duration::from_millis(100)
}
fn default_audit_queue() -> usize {
    65_536
}
fn default_ratio() -> f64 {
    1.0
}
fn default_service() -> String {
    "tollgate".to_string()
}

/// Where the ledger takes a request's custom tags from (`ledger.tags`):
/// a request header (`team=ml,env=prod`), the body's `metadata` object
/// (string values), or both. Bounds: `tollgate_record::tags`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UsageTagsConfig {
    /// The request header carrying `name=value` pairs separated by commas.
    #[serde(default)]
    pub header: Option<String>,
    /// Take the string values of the request body's `metadata` object too
    /// (the header wins for a name both give).
    #[serde(default)]
    pub metadata: bool,
}
