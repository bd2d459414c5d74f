//! OpenTelemetry: traces reach a real OTLP receiver started here (gRPC with
//! the collector's generated tonic service, and HTTP/protobuf), carrying the
//! caller's trace id, the GenAI attributes and child spans; the upstream
//! receives a `traceparent` of the attempt's span. A collector that is down
//! holds no request back, and export resumes once it is back. The
//! collector is reached under the egress allowlist like any outbound call.

use crate::common;

use std::sync::{Arc, Mutex};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

#[derive(Clone, Default)]
pub(crate) struct Received {
    pub(crate) spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
}

impl Received {
    fn take(&self, req: ExportTraceServiceRequest) {
        for rs in req.resource_spans {
            if let Some(r) = &rs.resource {
                for kv in &r.attributes {
                    if kv.key == "service.name" {
                        if let Some(AnyValue::StringValue(s)) =
                            kv.value.as_ref().and_then(|v| v.value.clone())
                        {
                            self.services.lock().unwrap().push(s);
                        }
                    }
                }
            }
            for ss in rs.scope_spans {
                self.spans.lock().unwrap().extend(ss.spans);
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn grpc_receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Received::default();
    let svc = TraceServiceServer::new(got.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (format!("http://{addr}"), got)
}

pub(crate) async fn http_receiver() -> (String, Received) {
    http_receiver_at("127.0.0.1:0".parse().unwrap()).await
}

/// `http_receiver` on a given address (a collector coming back where the
/// gateway expects it).
async fn http_receiver_at(addr: std::net::SocketAddr) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Received::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: bytes::Bytes| {
            let state = state.clone();
            async move {
                state.take(ExportTraceServiceRequest::decode(body).unwrap());
                (
                    [(http::header::CONTENT_TYPE, "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/traces"), got)
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref().and_then(|v| v.value.clone()))
}

fn str_attr(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => s,
        other => panic!("{key}: {other:?}"),
    }
}

fn int_attr(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(AnyValue::IntValue(i)) => i,
        other => panic!("{key}: {other:?}"),
    }
}

async fn traces_arrive(protocol: &str, endpoint: String, got: Received) {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    // Ratio 0: only the caller's sampled trace is recorded.
    let mut gw = start_gateway_with(|db| {
        format!(
            "{}tracing:\n  enabled: true\n  endpoint: {endpoint}\n  protocol: {protocol}\n  sample_ratio: 0.0\n  service_name: gw-under-test\n",
            standard_config(&mock, dead, db)
        )
    })
    .await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&chat_body("chat-up", "trace me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    // Not sampled: no traceparent, ratio 0.
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-up", "x"),
    )
    .await;
    assert_eq!(r.status(), 200);
    gw.stop().await; // flushes the exporter

    let spans = got.spans.lock().unwrap().clone();
    assert!(!spans.is_empty(), "no spans arrived");
    assert!(got
        .services
        .lock()
        .unwrap()
        .iter()
        .all(|s| s == "gw-under-test"));
    let trace = hex::decode(TRACE_ID).unwrap();
    assert!(
        spans.iter().all(|s| s.trace_id == trace),
        "only the caller's trace is sampled"
    );
    let server = spans.iter().find(|s| s.name == "chat chat-up").unwrap();
    assert_eq!(server.parent_span_id, hex::decode(PARENT_ID).unwrap());
    assert_eq!(str_attr(server, "gen_ai.system"), "openai");
    assert_eq!(str_attr(server, "gen_ai.operation.name"), "chat");
    assert_eq!(str_attr(server, "gen_ai.request.model"), "chat-up");
    assert_eq!(str_attr(server, "gen_ai.response.model"), "mock-chat");
    assert_eq!(
        int_attr(server, "gen_ai.usage.input_tokens"),
        body["usage"]["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        int_attr(server, "gen_ai.usage.output_tokens"),
        body["usage"]["completion_tokens"].as_i64().unwrap()
    );
    assert_eq!(int_attr(server, "http.response.status_code"), 200);
    let auth = spans.iter().find(|s| s.name == "tollgate.auth").unwrap();
    assert_eq!(auth.parent_span_id, server.span_id);
    let attempt = spans.iter().find(|s| s.name == "chat mock-chat").unwrap();
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(str_attr(attempt, "tollgate.target"), "up/mock-chat");
    // The upstream got the attempt's context.
    let received = mock.received().await;
    let tp = received[0]["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        tp,
        format!("00-{TRACE_ID}-{}-01", hex::encode(&attempt.span_id))
    );
    // The unsampled request still propagates a context of its own (flag 00),
    // so the upstream does not start a trace.
    let tp = received[1]["headers"]["traceparent"].as_str().unwrap();
    assert!(
        !tp.contains(TRACE_ID) && tp.starts_with("00-") && tp.ends_with("-00"),
        "{tp}"
    );
    assert_eq!(tp.len(), 55, "{tp}");
}

#[tokio::test]
async fn traces_arrive_over_grpc_with_genai_attributes_and_the_callers_trace_id() {
    let (endpoint, got) = grpc_receiver().await;
    traces_arrive("grpc", endpoint, got).await;
}

#[tokio::test]
async fn traces_arrive_over_http_protobuf() {
    let (endpoint, got) = http_receiver().await;
    traces_arrive("http_protobuf", endpoint, got).await;
}

/// The OTLP collector is down: requests are answered as usual (export runs
/// off the request path, in batches every 5 s), the batch that cannot be
/// sent is dropped; once a collector listens again, the next batches
/// arrive without a restart.
#[tokio::test]
async fn a_collector_that_is_down_holds_no_request_and_export_resumes() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let collector = dead_addr().await;
    let endpoint = format!("http://{collector}/v1/traces");
    let mut gw = start_gateway_with(|db| {
        format!(
            "{}tracing:\n  enabled: true\n  endpoint: {endpoint}\n  protocol: http_protobuf\n  sample_ratio: 1.0\n",
            standard_config(&mock, dead, db)
        )
    })
    .await;
    let traced = |trace: &str| {
        client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("traceparent", format!("00-{trace}-{PARENT_ID}-01"))
            .json(&chat_body("chat-up", "trace me"))
            .send()
    };
    const DOWN: &str = "0af7651916cd43dd8448eb211c80319c";
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        assert_eq!(traced(DOWN).await.unwrap().status(), 200);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
    // Past the first scheduled export (every 5 s on Tokio's clock: the
    // in-process exporter runs on this test's runtime), which finds nobody
    // listening. Its refused connect takes a few turns of the runtime; were
    // the collector up before it, that batch would only arrive, which no
    // assertion below depends on.
    skip_clock(std::time::Duration::from_millis(5_500)).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, got) = http_receiver_at(collector).await;
    assert_eq!(traced(TRACE_ID).await.unwrap().status(), 200);
    gw.stop().await; // flushes the exporter
    let trace = hex::decode(TRACE_ID).unwrap();
    let spans = got.spans.lock().unwrap().clone();
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == trace && s.name == "chat chat-up"),
        "no span arrived after the collector came back ({} spans)",
        spans.len()
    );
}

/// The denials of the egress allowlist for `reason`, from the process's
/// recorder (read after the gateway stopped: its last export runs then).
fn egress_denied(reason: &str) -> u64 {
    let text = tollgate::metrics::handle().unwrap().render();
    let metric = format!("tollgate_egress_denied_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&metric))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// An `egress:` section that lists the upstream's port but not the
/// collector's: the exporter sends nothing (each export refused, counted
/// as a `port` denial) and requests are answered as usual; once the
/// collector's port is listed too, its spans arrive.
async fn traces_follow_the_egress_allowlist(protocol: &str, grpc: bool) {
    for listed in [false, true] {
        let (endpoint, got) = match grpc {
            true => grpc_receiver().await,
            false => http_receiver().await,
        };
        let collector: std::net::SocketAddr = endpoint
            .trim_start_matches("http://")
            .trim_end_matches("/v1/traces")
            .parse()
            .unwrap();
        let mock = start_mock(Some(UPSTREAM_KEY)).await;
        let dead = dead_addr().await;
        let ports = match listed {
            true => format!("[{}, {}]", mock.addr.port(), collector.port()),
            false => format!("[{}]", mock.addr.port()),
        };
        let before = egress_denied("port");
        let mut gw = start_gateway_with(|db| {
            format!(
                "{}tracing:\n  enabled: true\n  endpoint: {endpoint}\n  protocol: {protocol}\n  sample_ratio: 1.0\n\
                 egress:\n  allow:\n    - {{ host: 127.0.0.1, ports: {ports} }}\n",
                standard_config(&mock, dead, db)
            )
        })
        .await;
        let r = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &chat_body("chat-up", "trace me"),
        )
        .await;
        assert_eq!(r.status(), 200);
        gw.stop().await; // flushes the exporter
        let spans = got.spans.lock().unwrap().len();
        if listed {
            assert!(spans > 0, "{protocol}: no span reached a listed collector");
        } else {
            assert_eq!(spans, 0, "{protocol}: spans reached an unlisted collector");
            assert!(
                egress_denied("port") > before,
                "{protocol}: the refused export was not counted"
            );
        }
    }
}

#[tokio::test]
async fn grpc_export_follows_the_egress_allowlist() {
    traces_follow_the_egress_allowlist("grpc", true).await;
}

#[tokio::test]
async fn http_export_follows_the_egress_allowlist() {
    traces_follow_the_egress_allowlist("http_protobuf", false).await;
}
