//! The audit writer task: turns entries into JSON lines (redacting payloads)
//! and appends them to the sink, flushing per batch; drained on shutdown.

use serde_json::{Map, Value};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{AuditEntry, AuditHandle};
use crate::config::AuditConfig;
use crate::guardrails::{Builtin, DetectorSet, DetectorSpec, Masker};

const BATCH: usize = 256;

pub struct Audit {
    handle: AuditHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Audit {
    pub async fn start(cfg: &AuditConfig) -> std::io::Result<Self> {
        let sink: Box<dyn AsyncWrite + Send + Unpin> = if cfg.sink == "stdout" {
            Box::new(tokio::io::stdout())
        } else {
            Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&cfg.sink)
                    .await?,
            )
        };
        let detectors = DetectorSet::new(&DetectorSpec {
            builtins: Builtin::ALL.to_vec(),
            entropy_threshold: 3.8,
            ..Default::default()
        })
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run(rx, stop_rx, sink, detectors));
        Ok(Self {
            handle: AuditHandle::new(tx, cfg),
            stop,
            task,
        })
    }

    pub fn handle(&self) -> AuditHandle {
        self.handle.clone()
    }

    /// Stops taking records, writes everything queued, then returns.
    pub async fn close(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "audit writer task failed");
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<AuditEntry>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    mut sink: Box<dyn AsyncWrite + Send + Unpin>,
    detectors: DetectorSet,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut text = Vec::new();
    let mut stopping = false;
    loop {
        let n = tokio::select! {
            _ = &mut stop, if !stopping => {
                // No new records; what is queued is still written.
                stopping = true;
                rx.close();
                continue;
            }
            n = rx.recv_many(&mut batch, BATCH) => n,
        };
        if n == 0 {
            break;
        }
        text.clear();
        for entry in batch.drain(..) {
            let line = render(entry, &detectors);
            if serde_json::to_writer(&mut text, &line).is_ok() {
                text.push(b'\n');
            }
        }
        let n = text.len();
        if let Err(e) = async {
            sink.write_all(&text).await?;
            sink.flush().await
        }
        .await
        {
            tracing::error!(error = %e, bytes = n, "audit sink write failed");
            metrics::counter!("tollgate_audit_dropped_total").increment(1);
        } else {
            metrics::counter!("tollgate_audit_written_total").increment(1);
        }
    }
}

/// A JSON text column of the usage record, as JSON.
fn json_field(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Array(Vec::new()))
}

fn render(entry: AuditEntry, detectors: &DetectorSet) -> Value {
    let u = entry.usage;
    let mut o = Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    put("ts_ms", u.ts_ms.into());
    put("request_id", u.request_id.into());
    put("trace_id", entry.trace_id.map_or(Value::Null, Value::from));
    put("principal", u.principal.into());
    put("principal_kind", entry.principal_kind.into());
    put("groups", json_field(&u.groups));
    put("tenant", u.tenant.into());
    put("auth_method", u.auth_method.into());
    put("key_id", u.key_id.into());
    put("issuer", u.issuer.into());
    put("endpoint", u.endpoint.into());
    put("requested_model", u.requested_model.into());
    put("provider", u.provider.clone().into());
    let target = if u.provider.is_empty() {
        String::new()
    } else {
        format!("{}/{}", u.provider, u.upstream_model)
    };
    put("target", target.into());
    put("attempts", json_field(&u.attempts));
    put("stream", u.stream.into());
    put("status", u.status.into());
    put("error", u.error.into());
    put("latency_ms", u.latency_ms.into());
    put("ttft_ms", u.ttft_ms.map_or(Value::Null, Value::from));
    put("input_tokens", u.prompt_tokens.into());
    put("output_tokens", u.completion_tokens.into());
    put("tokens_estimated", u.tokens_estimated.into());
    put("cost", u.cost.into());
    put("guardrails", json_field(&u.guardrails));
    // Rate-limit, quota and budget decisions (docs/limits.md).
    put("limits", json_field(&u.limits));
    put("cache", u.cache.clone().into());
    put("cost_saved", u.cost_saved.into());
    if !u.template.is_empty() {
        put("template", u.template.clone().into());
        put(
            "template_version",
            u.template_version.map_or(Value::Null, Value::from),
        );
    }
    let headers: Map<String, Value> = entry
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    put("headers", Value::Object(headers));
    if let Some(p) = entry.payload {
        let mut masker = Masker::default();
        put(
            "request_body",
            redact_payload(detectors, &mut masker, &p.request),
        );
        if let Some(r) = p.response {
            put("response_body", redact_payload(detectors, &mut masker, &r));
        }
    }
    Value::Object(o)
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
