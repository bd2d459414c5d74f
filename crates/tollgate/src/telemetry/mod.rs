//! OpenTelemetry traces: one server span per request (`chat {model}` per
//! the GenAI semantic conventions) with child spans for authentication,
//! guardrails and each upstream attempt, exported over OTLP (gRPC or
//! HTTP/protobuf) by a batch processor on the tokio runtime — the request
//! path only records in memory. A caller's W3C `traceparent` is continued
//! (and its sampled flag followed); new traces are sampled at
//! `tracing.sample_ratio`. Each upstream attempt sends its own
//! `traceparent`, so the upstream's spans join the trace.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::{OtlpProtocol, TracingConfig};

/// The exporter and tracer; `shutdown` flushes what is buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// The tracer handle kept in the app state.
#[derive(Clone)]
pub struct Tracing {
    tracer: SdkTracer,
}

/// One request's trace: the context holding its server span.
pub struct RequestTrace {
    cx: Context,
    tracer: SdkTracer,
}

/// A child span, ended when dropped.
pub struct ChildSpan {
    cx: Context,
}

impl Telemetry {
    pub fn start(cfg: &TracingConfig) -> Result<Self, String> {
        let exporter = match cfg.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&cfg.endpoint)
                .with_timeout(Duration::from_secs(5))
                .build(),
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(reqwest::Client::new())
                .with_endpoint(&cfg.endpoint)
                .with_timeout(Duration::from_secs(5))
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
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("tollgate");
        Ok(Self { provider, tracer })
    }

    pub fn handle(&self) -> Tracing {
        Tracing {
            tracer: self.tracer.clone(),
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
        let parent = TraceContextPropagator::new().extract(&HeaderExtract(headers));
        let span = self
            .tracer
            .span_builder(operation)
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("gen_ai.operation.name", operation)])
            .start_with_context(&self.tracer, &parent);
        RequestTrace {
            cx: parent.with_span(span),
            tracer: self.tracer.clone(),
        }
    }
}

impl RequestTrace {
    pub fn child(&self, name: &'static str) -> ChildSpan {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .start_with_context(&self.tracer, &self.cx);
        ChildSpan {
            cx: self.cx.with_span(span),
        }
    }

    /// A span for one upstream try, with the `traceparent` to send.
    pub fn attempt(&self, target: &str, model: &str) -> (ChildSpan, Option<HeaderValue>) {
        let span = self
            .tracer
            .span_builder(format!("chat {model}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("gen_ai.request.model", model.to_string()),
                KeyValue::new("tollgate.target", target.to_string()),
            ])
            .start_with_context(&self.tracer, &self.cx);
        let child = ChildSpan {
            cx: self.cx.with_span(span),
        };
        // The W3C `traceparent` (version 00), written directly: the
        // propagator's injector allocates a header list per call.
        let sc = child.cx.span().span_context().clone();
        let header = sc.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            )
        });
        (child, header.and_then(|v| HeaderValue::from_str(&v).ok()))
    }

    /// The trace id (32 hex digits), as the audit log records it.
    /// False when the sampler left this trace out: attributes set on it
    /// are discarded, so callers skip building them.
    pub fn recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
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

impl ChildSpan {
    pub fn set(&self, attrs: Vec<KeyValue>) {
        self.cx.span().set_attributes(attrs);
    }

    /// Ends with an error status (a failed try, a blocked request).
    pub fn fail(self, error: &str, status: Option<u16>) {
        let span = self.cx.span();
        if let Some(s) = status {
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(s)));
        }
        span.set_attribute(KeyValue::new("error.type", error.to_string()));
        span.set_status(Status::error(error.to_string()));
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

pub use opentelemetry::KeyValue as Attr;
