//! OpenTelemetry traces: one server span per request (`chat {model}` per
//! the GenAI semantic conventions) with child spans for authentication,
//! guardrails and each upstream attempt, exported over OTLP (gRPC or
//! HTTP/protobuf) by a batch processor on the tokio runtime — the request
//! path only records in memory. A caller's W3C `traceparent` is continued
//! (and its sampled flag followed); new traces are sampled at
//! `tracing.sample_ratio`. Each upstream attempt sends its own
//! `traceparent`, so the upstream's spans join the trace. The collector is
//! reached under the egress allowlist (`egress.rs`).

use std::sync::Arc;
use std::time::Duration;
use tollgate_core::error::BuildError;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use tollgate_config::{OtlpProtocol, TracingConfig};
use tollgate_net::Egress;

mod egress;

/// The W3C trace context header: read from callers, sent upstream (a
/// constant: parsing the name per attempt showed in profiles).
pub use tollgate_core::TRACEPARENT;

/// How long one export may take before its batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporter and tracer; `shutdown` flushes what is buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    ratio: f64,
}

/// The tracer handle kept in the app state. Behind an `Arc`: cloning an
/// `SdkTracer` copies its instrumentation scope, once per request.
#[derive(Clone)]
pub struct Tracing {
    tracer: Arc<SdkTracer>,
    /// `tracing.sample_ratio`, applied here to new traces (see `start_request`).
    ratio: f64,
}

/// One request's trace: the context holding its server span.
pub struct RequestTrace {
    cx: Context,
    tracer: Arc<SdkTracer>,
    /// The sampler's verdict on the server span. A trace left out gets no
    /// child spans at all: a non-recording child would be discarded anyway,
    /// and building one (builder, context, name, attributes) cost ~4 µs per
    /// request at 10 % sampling (bench/history/LEDGER.md).
    recording: bool,
}

/// A child span, ended when dropped; `None` inside a trace left out.
pub struct ChildSpan {
    cx: Option<Context>,
}

impl Telemetry {
    /// Starts the exporter; its calls to the collector go through `egress`
    /// like every other outbound call (`egress.rs`).
    pub fn start(cfg: &TracingConfig, egress: &Egress) -> Result<Self, BuildError> {
        let exporter = match cfg.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_channel(egress::grpc_channel(&cfg.endpoint, egress, EXPORT_TIMEOUT)?)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(egress::CheckedHttp::build(egress)?)
                .with_endpoint(&cfg.endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        }
        .map_err(|e| format!("tracing exporter: {e}"))?;
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            // New traces are sampled in `start_request` before any SDK
            // object exists; what reaches the SDK as a root is recorded, and
            // a caller's context keeps its own sampled flag.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("tollgate");
        Ok(Self {
            provider,
            tracer,
            ratio: cfg.sample_ratio,
        })
    }

    pub fn handle(&self) -> Tracing {
        Tracing {
            tracer: Arc::new(self.tracer.clone()),
            ratio: self.ratio,
        }
    }

    /// Exports what is buffered, then stops.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The SDK's shutdown blocks until the export finished; keep it off the runtime's workers.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "trace exporter shutdown");
        }
    }
}

struct HeaderExtract<'a>(&'a HeaderMap);

impl Extractor for HeaderExtract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

impl Tracing {
    /// The request's server span, continuing the caller's `traceparent`.
    pub fn start_request(&self, headers: &HeaderMap, operation: &'static str) -> RequestTrace {
        // Most callers send no trace context: skip the propagator's parsing.
        let parent = if headers.contains_key(TRACEPARENT) {
            TraceContextPropagator::new().extract(&HeaderExtract(headers))
        } else {
            Context::new()
        };
        // A new trace the ratio leaves out gets ids and nothing else: no
        // span builder, sampler run or tracer clone (~1.6 k instructions per
        // request at 10 % sampling, bench/history/LEDGER.md). It still propagates
        // (flag 00) and its trace id goes to the audit log.
        if !parent.span().span_context().is_valid() && !sampled(self.ratio) {
            return RequestTrace {
                cx: unsampled_root(),
                tracer: Arc::clone(&self.tracer),
                recording: false,
            };
        }
        let span = self
            .tracer
            .span_builder(operation)
            .with_kind(SpanKind::Server)
            .start_with_context(&*self.tracer, &parent);
        let cx = parent.with_span(span);
        let recording = cx.span().is_recording();
        // Attributes after the sampler's verdict: a trace left out drops them.
        if recording {
            cx.span()
                .set_attribute(KeyValue::new("gen_ai.operation.name", operation));
        }
        RequestTrace {
            recording,
            cx,
            tracer: Arc::clone(&self.tracer),
        }
    }
}

impl RequestTrace {
    pub fn child(&self, name: &'static str) -> ChildSpan {
        if !self.recording {
            return ChildSpan { cx: None };
        }
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .start_with_context(&*self.tracer, &self.cx);
        ChildSpan {
            cx: Some(self.cx.with_span(span)),
        }
    }

    /// A span for one upstream try, with the `traceparent` to send. A
    /// trace left out still propagates (with the server span as parent and
    /// the unsampled flag), so the upstream does not start a trace of its own.
    pub fn attempt(&self, target: &str, model: &str) -> (ChildSpan, Option<HeaderValue>) {
        if !self.recording {
            let header = traceparent(self.cx.span().span_context());
            return (ChildSpan { cx: None }, header);
        }
        let span = self
            .tracer
            .span_builder(format!("chat {model}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("gen_ai.request.model", model.to_string()),
                KeyValue::new("tollgate.target", target.to_string()),
            ])
            .start_with_context(&*self.tracer, &self.cx);
        let cx = self.cx.with_span(span);
        let header = traceparent(cx.span().span_context());
        (ChildSpan { cx: Some(cx) }, header)
    }

    /// False when the sampler left this trace out: attributes set on it
    /// are discarded, so callers skip building them.
    pub fn recording(&self) -> bool {
        self.recording
    }

    /// The trace id, as the audit log records it (in 32 hex digits).
    pub fn trace_id(&self) -> [u8; 16] {
        self.cx.span().span_context().trace_id().to_bytes()
    }

    pub fn set(&self, attrs: Vec<KeyValue>) {
        self.cx.span().set_attributes(attrs);
    }

    pub fn rename(&self, name: String) {
        self.cx.span().update_name(name);
    }

    /// Ends the server span with the request's outcome.
    pub fn end(self, status: u16, error: &str) {
        let span = self.cx.span();
        if !self.recording {
            span.end();
            return;
        }
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if !error.is_empty() {
            span.set_attribute(KeyValue::new("error.type", error.to_string()));
        }
        if status >= 500 {
            span.set_status(Status::error(error.to_string()));
        }
        span.end();
    }
}

/// The head-sampling draw for a new trace: true with probability `ratio`.
fn sampled(ratio: f64) -> bool {
    ratio >= 1.0 || (ratio > 0.0 && rand::random::<f64>() < ratio)
}

/// The context of a new, unsampled trace: random non-zero ids, flag 00.
fn unsampled_root() -> Context {
    let trace_id = TraceId::from(rand::random::<u128>().max(1));
    let span_id = SpanId::from(rand::random::<u64>().max(1));
    Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::default(),
        false,
        TraceState::default(),
    ))
}

/// The W3C `traceparent` (version 00) of `sc`, written into a stack buffer:
/// the propagator's injector allocates a header list per call.
fn traceparent(sc: &SpanContext) -> Option<HeaderValue> {
    if !sc.is_valid() {
        return None;
    }
    // 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let filled = hex::encode_to_slice(sc.trace_id().to_bytes(), &mut out[3..35])
        .and_then(|()| hex::encode_to_slice(sc.span_id().to_bytes(), &mut out[36..52]))
        .and_then(|()| hex::encode_to_slice([sc.trace_flags().to_u8()], &mut out[53..55]));
    filled.ok()?;
    HeaderValue::from_bytes(&out).ok()
}

impl ChildSpan {
    pub fn set(&self, attrs: Vec<KeyValue>) {
        if let Some(cx) = &self.cx {
            cx.span().set_attributes(attrs);
        }
    }

    /// Ends with an error status (a failed try, a blocked request).
    pub fn fail(self, error: &str, status: Option<u16>) {
        let Some(cx) = &self.cx else { return };
        let span = cx.span();
        if let Some(s) = status {
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(s)));
        }
        span.set_attribute(KeyValue::new("error.type", error.to_string()));
        span.set_status(Status::error(error.to_string()));
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
    }
}

pub use opentelemetry::KeyValue as Attr;

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn traceparent_is_w3c_version_00() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::NOT_SAMPLED,
            true,
            TraceState::default(),
        );
        let h = super::traceparent(&sc).unwrap();
        assert_eq!(
            h.to_str().unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        let sampled = SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        assert!(super::traceparent(&sampled)
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("-01"));
        assert!(super::traceparent(&SpanContext::empty_context()).is_none());
    }

    #[test]
    fn head_sampling_follows_the_ratio() {
        assert!((0..1000).all(|_| !super::sampled(0.0)));
        assert!((0..1000).all(|_| super::sampled(1.0)));
        let n = (0..20_000).filter(|_| super::sampled(0.1)).count();
        assert!((1_600..2_400).contains(&n), "{n} of 20000 at 0.1");
    }

    #[test]
    fn unsampled_roots_have_valid_distinct_ids() {
        use opentelemetry::trace::TraceContextExt;
        let a = super::unsampled_root();
        let b = super::unsampled_root();
        let (sa, sb) = (
            a.span().span_context().clone(),
            b.span().span_context().clone(),
        );
        assert!(sa.is_valid() && !sa.is_sampled() && !a.span().is_recording());
        assert_ne!(sa.trace_id(), sb.trace_id());
        assert!(super::traceparent(&sa)
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("-00"));
    }
}
