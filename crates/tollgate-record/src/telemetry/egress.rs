//! The OTLP exporter's transports under the egress allowlist: the
//! HTTP/protobuf exporter sends through a `tollgate_net::Client` (each
//! request's URL checked, names resolved by the checking resolver,
//! redirects checked per hop), and the gRPC exporter's channel opens its
//! connections with `Egress::connect` (the same checks). A collector the
//! allowlist does not list receives nothing: each export is refused,
//! counted in `tollgate_egress_denied_total` and logged at warn, and the
//! batch is dropped as for a collector that is down.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use tollgate_core::error::BuildError;
use tollgate_net::Egress;

/// Largest collector answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// The HTTP/protobuf exporter's client.
#[derive(Clone)]
pub(super) struct CheckedHttp(tollgate_net::Client);

impl fmt::Debug for CheckedHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CheckedHttp")
    }
}

impl CheckedHttp {
    pub(super) fn build(egress: &Egress) -> Result<Self, BuildError> {
        tollgate_net::client_builder(egress)
            .build()
            .map(CheckedHttp)
            .map_err(|e| BuildError::of(e).context("tracing exporter client"))
    }
}

#[async_trait::async_trait]
impl HttpClient for CheckedHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())?;
        let mut response = self
            .0
            .request(parts.method, url)?
            .headers(parts.headers)
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        let headers = std::mem::take(response.headers_mut());
        // A collector answers a few bytes (an empty export response, or a
        // partial-success count); more is refused, not buffered.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err("the collector's answer is larger than 64 KiB".into());
            }
            body.extend_from_slice(&chunk);
        }
        let mut answer = Response::builder()
            .status(response.status())
            .body(Bytes::from(body))?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

/// The gRPC exporter's channel to `endpoint`, connecting lazily (a
/// collector that is down does not stop the start) through `egress`. The
/// exporter's own timeout does not apply to a channel given to it, so the
/// channel carries `timeout` (each export, and each connection attempt).
pub(super) fn grpc_channel(
    endpoint: &str,
    egress: &Egress,
    timeout: Duration,
) -> Result<tonic::transport::Channel, BuildError> {
    let endpoint = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| BuildError::of(e).context("tracing.endpoint"))?
        .timeout(timeout)
        .connect_timeout(timeout);
    let egress = egress.clone();
    let connector = tower::service_fn(move |uri: http::Uri| {
        let egress = egress.clone();
        async move {
            let stream = egress.connect(&uri).await?;
            Ok::<_, tollgate_net::BoxError>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
