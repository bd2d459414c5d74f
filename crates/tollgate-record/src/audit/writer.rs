//! The audit writer: a dedicated thread that wakes every `flush_interval`,
//! drains the queue, turns entries into JSON lines (redacting payloads) and
//! appends them to the sink with one write and flush; drained on shutdown.
//!
//! Why a plain thread on a timer: a task woken per record, writing through
//! `tokio::fs` (a blocking-pool hand-off per write), cost the gateway 40% of
//! its throughput at saturation (bench/history/LEDGER.md); senders' `try_send` wakes
//! nobody here, and one buffered write per interval is all the I/O.

use std::io::Write;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::{AuditEntry, AuditHandle, AuditHeaders};
use tollgate_config::AuditConfig;
use tollgate_core::json_text;
use tollgate_guardrails::{Builtin, DetectorSet, DetectorSpec, Masker};

pub struct Audit {
    handle: AuditHandle,
    stop: std_mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Audit {
    pub async fn start(cfg: &AuditConfig) -> std::io::Result<Self> {
        let sink: Box<dyn Write + Send> = if cfg.sink == "stdout" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&cfg.sink)?,
            )
        };
        let detectors = DetectorSet::new(&DetectorSpec {
            builtins: Builtin::ALL.to_vec(),
            entropy_threshold: 3.8,
            ..Default::default()
        })
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let (stop, stop_rx) = std_mpsc::channel();
        let every = cfg.flush_interval.max(Duration::from_millis(1));
        let thread = std::thread::Builder::new()
            .name("tollgate-audit".into())
            .spawn(move || {
                crate::background::lower_this_thread();
                run(rx, stop_rx, sink, detectors, every)
            })?;
        Ok(Self {
            handle: AuditHandle::new(tx, cfg),
            stop,
            thread,
        })
    }

    pub fn handle(&self) -> AuditHandle {
        self.handle.clone()
    }

    /// Stops taking records, writes everything queued, then returns.
    pub async fn close(self) {
        let _ = self.stop.send(());
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => {}
            _ => tracing::error!("audit writer thread failed"),
        }
    }
}

fn run(
    mut rx: mpsc::Receiver<AuditEntry>,
    stop: std_mpsc::Receiver<()>,
    mut sink: Box<dyn Write + Send>,
    detectors: DetectorSet,
    every: Duration,
) {
    let mut text = String::new();
    loop {
        // Sleeps for the interval; a stop (or a dropped `Audit`) ends it.
        let stopping = !matches!(
            stop.recv_timeout(every),
            Err(std_mpsc::RecvTimeoutError::Timeout)
        );
        if stopping {
            // No new records; what is queued is still written.
            rx.close();
        }
        text.clear();
        let mut lines = 0u64;
        while let Ok(entry) = rx.try_recv() {
            if write_line(&mut text, entry, &detectors) {
                lines += 1;
            }
        }
        if !text.is_empty() {
            let n = text.len();
            if let Err(e) = sink.write_all(text.as_bytes()).and_then(|()| sink.flush()) {
                tracing::error!(error = %e, bytes = n, "audit sink write failed");
                metrics::counter!("tollgate_audit_dropped_total").increment(lines);
            } else {
                metrics::counter!("tollgate_audit_written_total").increment(lines);
            }
        }
        if stopping {
            return;
        }
    }
}

/// Appends one JSON line; false when it could not be serialised.
fn write_line(out: &mut String, entry: AuditEntry, detectors: &DetectorSet) -> bool {
    let bodies = match &entry.payload {
        Some(p) => {
            let mut masker = Masker::default();
            let req = redact_payload(detectors, &mut masker, &p.request);
            let resp = p
                .response
                .as_ref()
                .map(|r| redact_payload(detectors, &mut masker, r));
            match (
                serde_json::to_string(&req),
                resp.map(|r| serde_json::to_string(&r)),
            ) {
                (Ok(req), None) => Some((req, None)),
                (Ok(req), Some(Ok(resp))) => Some((req, Some(resp))),
                _ => {
                    metrics::counter!("tollgate_audit_dropped_total").increment(1);
                    return false;
                }
            }
        }
        None => None,
    };
    line(
        out,
        &entry,
        bodies.as_ref().map(|(q, r)| (q.as_str(), r.as_deref())),
    );
    out.push('\n');
    true
}

/// One audit line, written field by field (`json_text`: the serde_json
/// serialiser was the audit thread's largest cost). Field names and order
/// are the documented audit schema (docs/observability.md); the tests check
/// the line against it.
fn line(out: &mut String, e: &AuditEntry, bodies: Option<(&str, Option<&str>)>) {
    let u = &e.usage;
    let s = |out: &mut String, key: &str, v: &str| {
        out.push_str(key);
        json_text::push_str(out, v);
    };
    out.push_str("{\"ts_ms\":");
    json_text::push_int(out, u.ts_ms);
    s(out, ",\"request_id\":", &u.request_id);
    out.push_str(",\"trace_id\":");
    match &e.trace_id {
        Some(id) => {
            let mut hex = [0u8; 32];
            match hex::encode_to_slice(id, &mut hex) {
                Ok(()) => {
                    out.push('"');
                    // Hex digits are ASCII.
                    out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
                    out.push('"');
                }
                Err(_) => out.push_str("null"),
            }
        }
        None => out.push_str("null"),
    }
    s(out, ",\"principal\":", &u.principal);
    s(out, ",\"principal_kind\":", e.principal_kind);
    out.push_str(",\"groups\":");
    push_json(out, &u.groups);
    s(out, ",\"tenant\":", &u.tenant);
    s(out, ",\"auth_method\":", &u.auth_method);
    s(out, ",\"key_id\":", &u.key_id);
    s(out, ",\"issuer\":", &u.issuer);
    s(out, ",\"endpoint\":", &u.endpoint);
    s(out, ",\"requested_model\":", &u.requested_model);
    s(out, ",\"provider\":", &u.provider);
    // `provider/upstream_model`, or empty when no target was chosen.
    out.push_str(",\"target\":\"");
    if !u.provider.is_empty() {
        json_text::push_escaped(out, &u.provider);
        out.push('/');
        json_text::push_escaped(out, &u.upstream_model);
    }
    out.push_str("\",\"attempts\":");
    push_json(out, &u.attempts);
    out.push_str(if u.stream {
        ",\"stream\":true,\"status\":"
    } else {
        ",\"stream\":false,\"status\":"
    });
    json_text::push_int(out, u.status);
    s(out, ",\"error\":", &u.error);
    out.push_str(",\"latency_ms\":");
    json_text::push_millis(out, u.latency_ms);
    out.push_str(",\"ttft_ms\":");
    match u.ttft_ms {
        Some(v) => json_text::push_millis(out, v),
        None => out.push_str("null"),
    }
    out.push_str(",\"input_tokens\":");
    json_text::push_int(out, u.prompt_tokens);
    out.push_str(",\"output_tokens\":");
    json_text::push_int(out, u.completion_tokens);
    out.push_str(if u.tokens_estimated {
        ",\"tokens_estimated\":true,\"cost\":"
    } else {
        ",\"tokens_estimated\":false,\"cost\":"
    });
    json_text::push_number(out, u.cost);
    out.push_str(",\"guardrails\":");
    push_json(out, &u.guardrails);
    // Rate-limit, quota and budget decisions (docs/limits.md).
    out.push_str(",\"limits\":");
    push_json(out, &u.limits);
    s(out, ",\"cache\":", &u.cache);
    out.push_str(",\"cost_saved\":");
    json_text::push_number(out, u.cost_saved);
    out.push_str(",\"request_bytes\":");
    json_text::push_int(out, u.request_bytes);
    out.push_str(",\"response_bytes\":");
    json_text::push_int(out, u.response_bytes);
    // `template_version` is present (possibly null) exactly when `template` is.
    if !u.template.is_empty() {
        s(out, ",\"template\":", &u.template);
        out.push_str(",\"template_version\":");
        match u.template_version {
            Some(v) => json_text::push_int(out, v),
            None => out.push_str("null"),
        }
    }
    if matches!(u.endpoint.as_str(), "route" | "connection") {
        out.push_str(",\"rows\":");
        json_text::push_int(out, u.rows);
    }
    out.push_str(",\"headers\":{");
    push_headers(out, &e.headers);
    out.push('}');
    if let Some((request, response)) = bodies {
        out.push_str(",\"request_body\":");
        out.push_str(request);
        if let Some(r) = response {
            out.push_str(",\"response_body\":");
            out.push_str(r);
        }
    }
    out.push('}');
}

/// A JSON text column of the usage record, embedded as is (an empty array
/// if it is not a JSON array).
///
/// The columns are written by this gateway's own serialisers (serde_json,
/// `json_text`), so the line only checks their shape: parsing them again
/// (`IgnoredAny`) was 1.3 k instructions per line, a tenth of the audit
/// thread (bench/history/LEDGER.md). The tests parse every line.
fn push_json(out: &mut String, text: &str) {
    let t = text.as_bytes();
    if t.len() >= 2 && t[0] == b'[' && t[t.len() - 1] == b']' {
        out.push_str(text);
    } else {
        out.push_str("[]");
    }
}

/// The request headers as an object, credentials' values redacted; a
/// repeated name keeps its last value.
fn push_headers(out: &mut String, headers: &AuditHeaders) {
    let mut first = true;
    for (name, value) in headers.last_values() {
        if !first {
            out.push(',');
        }
        first = false;
        json_text::push_str(out, name);
        out.push(':');
        if super::is_secret(name) {
            out.push_str("\"[REDACTED]\"");
        } else {
            match std::str::from_utf8(value) {
                Ok(v) => json_text::push_str(out, v),
                Err(_) => json_text::push_str(out, &String::from_utf8_lossy(value)),
            }
        }
    }
}

/// A body with every detected value replaced by a placeholder: JSON bodies
/// string by string, anything else as one text.
pub fn redact_payload(detectors: &DetectorSet, masker: &mut Masker, body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            masker.mask_json(detectors, &mut v);
            v
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let found = detectors.scan(&text);
            Value::String(masker.mask(&text, &found))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::{HeaderMap, HeaderValue};
    use serde_json::json;

    use super::*;
    use crate::audit::Payload;
    use crate::usage_record::UsageRecord;

    fn entry() -> AuditEntry {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer sk-1"));
        headers.append("x-team", HeaderValue::from_static("a"));
        headers.append("x-team", HeaderValue::from_static("b \"q\""));
        headers.insert("x-session-token", HeaderValue::from_static("t0k"));
        AuditEntry {
            usage: Arc::new(UsageRecord {
                ts_ms: 17,
                request_id: "r\"1".into(),
                principal: "ünï\n".into(),
                groups: r#"["eng","ops"]"#.into(),
                endpoint: "chat".into(),
                requested_model: "m".into(),
                provider: "up".into(),
                upstream_model: "u/1".into(),
                status: 200,
                latency_ms: 1.5,
                ttft_ms: Some(0.25),
                prompt_tokens: 3,
                completion_tokens: 4,
                cost: 0.000125,
                attempts: r#"[{"target":"up/u"}]"#.into(),
                guardrails: "not json".into(),
                limits: "[]".into(),
                template: "t".into(),
                template_version: None,
                ..Default::default()
            }),
            principal_kind: "user",
            headers: AuditHeaders::copy(&headers),
            trace_id: Some([0xab; 16]),
            payload: None,
        }
    }

    /// The hand-written line is valid JSON with the documented fields.
    #[test]
    fn line_is_the_documented_json() {
        let detectors = DetectorSet::new(&DetectorSpec::default()).unwrap();
        let mut out = String::new();
        assert!(write_line(&mut out, entry(), &detectors));
        assert!(out.ends_with('\n'));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({
                "ts_ms": 17, "request_id": "r\"1", "trace_id": "abababababababababababababababab",
                "principal": "ünï\n", "principal_kind": "user", "groups": ["eng", "ops"],
                "tenant": "", "auth_method": "", "key_id": "", "issuer": "",
                "endpoint": "chat", "requested_model": "m", "provider": "up",
                "target": "up/u/1", "attempts": [{"target": "up/u"}], "stream": false,
                "status": 200, "error": "", "latency_ms": 1.5, "ttft_ms": 0.25,
                "input_tokens": 3, "output_tokens": 4, "tokens_estimated": false,
                "cost": 0.000125, "guardrails": [], "limits": [], "cache": "",
                "cost_saved": 0, "request_bytes": 0, "response_bytes": 0,
                "template": "t", "template_version": null,
                "headers": {"authorization": "[REDACTED]", "x-team": "b \"q\"",
                            "x-session-token": "[REDACTED]"},
            })
        );
    }

    #[test]
    fn no_template_no_version_and_bodies_redacted() {
        let detectors = DetectorSet::new(&DetectorSpec {
            builtins: Builtin::ALL.to_vec(),
            ..Default::default()
        })
        .unwrap();
        let mut e = entry();
        let u = Arc::make_mut(&mut e.usage);
        u.template.clear();
        u.provider.clear();
        e.trace_id = None;
        e.payload = Some(Payload {
            request: bytes::Bytes::from_static(br#"{"q":"mail me at jane.doe@example.com"}"#),
            response: Some(bytes::Bytes::from_static(b"plain text")),
        });
        let mut out = String::new();
        assert!(write_line(&mut out, e, &detectors));
        assert!(!out.contains("jane.doe@example.com"), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(v.get("template").is_none() && v.get("template_version").is_none());
        assert_eq!(v["target"], "");
        assert_eq!(v["trace_id"], Value::Null);
        assert!(v["request_body"]["q"].as_str().unwrap().contains('['));
        assert_eq!(v["response_body"], "plain text");
    }
}
