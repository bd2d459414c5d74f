//! The audit log: one JSON line per request (authenticated or not) — who,
//! what, which target, status, latency, tokens, cost, guardrail verdicts,
//! auth method, request headers (credentials redacted) — written by a
//! background task to stdout or a file. The request path only `try_send`s;
//! a full queue drops the record and counts it.
//!
//! Payloads are off by default. For models listed in
//! `audit.payload_models` the request and (non-streamed) response bodies
//! are added, after every string in them went through the guardrail
//! detectors (all built-ins) and each finding was replaced by a typed
//! placeholder. Redaction runs in the writer task, off the request path.

mod writer;

use bytes::Bytes;
use globset::{Glob, GlobSet, GlobSetBuilder};
use http::HeaderMap;
use tokio::sync::mpsc;

use crate::usage_record::UsageRecord;
use tollgate_config::AuditConfig;

pub use writer::{redact_payload, Audit};

/// Request and response bodies captured for payload logging (raw: redacted
/// by the writer).
#[derive(Debug, Clone, Default)]
pub struct Payload {
    pub request: Bytes,
    pub response: Option<Bytes>,
}

/// What the request path hands over.
#[derive(Debug)]
pub struct AuditEntry {
    /// The same record the ledger gets (shared, not copied).
    pub usage: std::sync::Arc<UsageRecord>,
    pub principal_kind: &'static str,
    /// The request's headers as received; credentials are redacted by the
    /// writer, off the request path.
    pub headers: AuditHeaders,
    /// The request's trace id (bytes: hex-encoded by the writer).
    pub trace_id: Option<[u8; 16]>,
    pub payload: Option<Payload>,
}

/// A request's headers, copied for the audit writer: names shared (they
/// are static or separately allocated), values copied into one buffer.
///
/// Why not a clone of the `HeaderMap`: its values are slices of hyper's
/// connection read buffer. Kept alive until the writer's next flush, they
/// stopped hyper from reusing that buffer, so every request on a
/// keep-alive connection allocated a fresh one, freed later on the writer's
/// thread (perf, bench/history/LEDGER.md).
#[derive(Debug, Default)]
pub struct AuditHeaders {
    /// Each name with the end of its value in `values`, in the map's order
    /// (a repeated name's values are consecutive).
    names: Vec<(http::HeaderName, usize)>,
    values: Vec<u8>,
}

impl AuditHeaders {
    pub fn copy(headers: &HeaderMap) -> Self {
        let mut names = Vec::with_capacity(headers.len());
        let mut values = Vec::with_capacity(headers.iter().map(|(_, v)| v.len()).sum());
        for (name, value) in headers {
            values.extend_from_slice(value.as_bytes());
            names.push((name.clone(), values.len()));
        }
        Self { names, values }
    }

    /// (name, value) pairs; a repeated name yields only its last value.
    pub fn last_values(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut start = 0;
        self.names
            .iter()
            .enumerate()
            .filter_map(move |(i, (name, end))| {
                let value = self.values.get(start..*end).unwrap_or_default();
                start = *end;
                let repeated = self.names.get(i + 1).is_some_and(|(next, _)| next == name);
                (!repeated).then_some((name.as_str(), value))
            })
    }
}

/// The sending side, kept in the app state.
#[derive(Clone, Default)]
pub struct AuditHandle {
    tx: Option<mpsc::Sender<AuditEntry>>,
    payload_models: Option<GlobSet>,
}

/// Header names whose values are never logged.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
];

impl AuditHandle {
    fn new(tx: mpsc::Sender<AuditEntry>, cfg: &AuditConfig) -> Self {
        let mut b = GlobSetBuilder::new();
        for g in &cfg.payload_models {
            if let Ok(g) = Glob::new(g) {
                b.add(g);
            }
        }
        Self {
            tx: Some(tx),
            payload_models: b.build().ok().filter(|s| !s.is_empty()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether bodies of calls to `model` are logged.
    pub fn wants_payload(&self, model: &str) -> bool {
        self.payload_models
            .as_ref()
            .is_some_and(|s| s.is_match(model))
    }

    pub fn record(&self, entry: AuditEntry) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(entry).is_err() {
            metrics::counter!("tollgate_audit_dropped_total").increment(1);
        }
    }
}

/// Whether a header's value is a credential, never logged.
pub fn is_secret(name: &str) -> bool {
    // One pass for both words: `str::contains` sets up a searcher per call,
    // which showed in the audit thread's profile (names are a few bytes).
    let b = name.as_bytes();
    SECRET_HEADERS.contains(&name)
        || (0..b.len()).any(|i| {
            let rest = &b[i..];
            rest.starts_with(b"token") || rest.starts_with(b"secret")
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_headers() {
        for n in [
            "authorization",
            "cookie",
            "x-api-key",
            "x-session-token",
            "token",
            "client-secret-id",
        ] {
            assert!(super::is_secret(n), "{n}");
        }
        for n in ["host", "x-team", "tok", "secre", "content-type", ""] {
            assert!(!super::is_secret(n), "{n}");
        }
    }
}
