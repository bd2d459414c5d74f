//! The audit writer: a dedicated thread that wakes every `flush_interval`,
//! drains the queue, turns entries into JSON lines (redacting payloads) and
//! appends them to the sink with one write and flush; drained on shutdown.
//!
//! Why a plain thread on a timer: a task woken per record, writing through
//! `tokio::fs` (a blocking-pool hand-off per write), cost the gateway 40% of
//! its throughput at saturation (bench/LEDGER.md); senders' `try_send` wakes
//! nobody here, and one buffered write per interval is all the I/O.

use std::io::Write;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{AuditEntry, AuditHandle};
use crate::config::AuditConfig;
use crate::guardrails::{Builtin, DetectorSet, DetectorSpec, Masker};

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
            .spawn(move || run(rx, stop_rx, sink, detectors, every))?;
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
    let mut text = Vec::new();
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
            if let Err(e) = sink.write_all(&text).and_then(|()| sink.flush()) {
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
fn write_line(out: &mut Vec<u8>, entry: AuditEntry, detectors: &DetectorSet) -> bool {
    let (request_body, response_body) = match &entry.payload {
        Some(p) => {
            let mut masker = Masker::default();
            let req = redact_payload(detectors, &mut masker, &p.request);
            let resp = p
                .response
                .as_ref()
                .map(|r| redact_payload(detectors, &mut masker, r));
            (Some(req), resp)
        }
        None => (None, None),
    };
    let line = Line::of(&entry, request_body, response_body);
    let mark = out.len();
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
        true
    } else {
        out.truncate(mark);
        metrics::counter!("tollgate_audit_dropped_total").increment(1);
        false
    }
}

/// One audit line, serialised straight from the entry (no intermediate
/// `Value` map). Field names are the documented audit schema
/// (docs/observability.md).
#[derive(Serialize)]
struct Line<'a> {
    ts_ms: i64,
    request_id: &'a str,
    trace_id: Option<&'a str>,
    principal: &'a str,
    principal_kind: &'a str,
    groups: Json<'a>,
    tenant: &'a str,
    auth_method: &'a str,
    key_id: &'a str,
    issuer: &'a str,
    endpoint: &'a str,
    requested_model: &'a str,
    provider: &'a str,
    target: Target<'a>,
    attempts: Json<'a>,
    stream: bool,
    status: u16,
    error: &'a str,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    input_tokens: i64,
    output_tokens: i64,
    tokens_estimated: bool,
    cost: f64,
    guardrails: Json<'a>,
    /// Rate-limit, quota and budget decisions (docs/limits.md).
    limits: Json<'a>,
    cache: &'a str,
    cost_saved: f64,
    #[serde(skip_serializing_if = "str::is_empty")]
    template: &'a str,
    /// Present (possibly null) exactly when `template` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    template_version: Option<Option<i64>>,
    headers: Headers<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<Value>,
}

impl<'a> Line<'a> {
    fn of(e: &'a AuditEntry, request_body: Option<Value>, response_body: Option<Value>) -> Self {
        let u = &e.usage;
        Self {
            ts_ms: u.ts_ms,
            request_id: &u.request_id,
            trace_id: e.trace_id.as_deref(),
            principal: &u.principal,
            principal_kind: e.principal_kind,
            groups: Json(&u.groups),
            tenant: &u.tenant,
            auth_method: &u.auth_method,
            key_id: &u.key_id,
            issuer: &u.issuer,
            endpoint: &u.endpoint,
            requested_model: &u.requested_model,
            provider: &u.provider,
            target: Target(&u.provider, &u.upstream_model),
            attempts: Json(&u.attempts),
            stream: u.stream,
            status: u.status,
            error: &u.error,
            latency_ms: u.latency_ms,
            ttft_ms: u.ttft_ms,
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            tokens_estimated: u.tokens_estimated,
            cost: u.cost,
            guardrails: Json(&u.guardrails),
            limits: Json(&u.limits),
            cache: &u.cache,
            cost_saved: u.cost_saved,
            template: &u.template,
            template_version: (!u.template.is_empty()).then_some(u.template_version),
            headers: Headers(&e.headers),
            request_body,
            response_body,
        }
    }
}

/// A JSON text column of the usage record, embedded as JSON (an empty
/// array if it is not valid JSON).
struct Json<'a>(&'a str);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(self.0) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.collect_seq(std::iter::empty::<()>()),
        }
    }
}

/// `provider/upstream_model`, or empty when no target was chosen.
struct Target<'a>(&'a str, &'a str);

impl Serialize for Target<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_str("")
        } else {
            s.collect_str(&format_args!("{}/{}", self.0, self.1))
        }
    }
}

/// The logged request headers as an object; a repeated name keeps its last
/// value.
struct Headers<'a>(&'a [(String, String)]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if !self.0[i + 1..].iter().any(|(later, _)| later == k) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
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
