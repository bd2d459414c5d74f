//! The pipeline's typed answers as HTTP responses: a `Reply`'s status,
//! headers and body (whole, an event stream, a relayed upstream body), or
//! a `Failed` call's error rendered in the caller's shape (`error.rs`). A
//! stream's failure after it began (`StreamError`) becomes its last event,
//! framed as the caller's API frames errors: `data: {"error":…}` for
//! OpenAI, `data: {"error_code",…}` for Databricks, `event: error` for
//! Anthropic Messages and, numbered, for the Responses API.

use std::convert::Infallible;

use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use tollgate_pipeline::reply::{Body, Failed, Reply, StreamError};
use tollgate_translate::{anthropic, responses};

use super::error::{ApiShape, Render};
use crate::pipeline::Ingress;

/// The caller's API as far as rendering goes: its error body, and how a
/// stream's last error event is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    OpenAi,
    Anthropic,
    Databricks,
    Responses,
}

impl From<Ingress> for Shape {
    fn from(ingress: Ingress) -> Self {
        match ingress {
            Ingress::Responses => Shape::Responses,
            other => match other.shape() {
                ApiShape::OpenAi => Shape::OpenAi,
                ApiShape::Anthropic => Shape::Anthropic,
                ApiShape::Databricks => Shape::Databricks,
            },
        }
    }
}

impl Shape {
    /// The error body's shape (the Responses API uses OpenAI's).
    fn api(self) -> ApiShape {
        match self {
            Shape::OpenAi | Shape::Responses => ApiShape::OpenAi,
            Shape::Anthropic => ApiShape::Anthropic,
            Shape::Databricks => ApiShape::Databricks,
        }
    }
}

/// A call's answer, or its failure in the caller's shape.
pub(super) fn answer(shape: Shape, answer: Result<Reply, Failed>) -> Response {
    match answer {
        Ok(reply) => response(shape, reply),
        Err(Failed { error, headers }) => {
            let mut resp = error.into_response_shaped(shape.api());
            let h = resp.headers_mut();
            for (name, value) in &headers {
                h.insert(name, value.clone());
            }
            resp
        }
    }
}

fn response(shape: Shape, reply: Reply) -> Response {
    let body = match reply.body {
        Body::Full(bytes) => axum::body::Body::from(bytes),
        Body::Events(events) => axum::body::Body::from_stream(events.map(move |item| {
            Ok::<_, Infallible>(match item {
                Ok(bytes) => bytes,
                Err(failed) => stream_error(shape, failed),
            })
        })),
        Body::Relay(relay) => axum::body::Body::from_stream(relay),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = reply.status;
    *resp.headers_mut() = reply.headers;
    resp
}

/// The events approved before a stream's failure, then its error event.
fn stream_error(shape: Shape, failed: StreamError) -> Bytes {
    let StreamError {
        before,
        error,
        sequence,
    } = failed;
    let mut out = Vec::from(&before[..]);
    match shape {
        Shape::Anthropic => anthropic::error_event(&mut out, error.status(), error.message()),
        Shape::Responses => responses::error_event(
            &mut out,
            sequence.unwrap_or(0),
            error.code(),
            error.message(),
            error.param(),
        ),
        Shape::OpenAi | Shape::Databricks => {
            out.extend_from_slice(format!("data: {}\n\n", error.body(shape.api())).as_bytes())
        }
    }
    Bytes::from(out)
}

/// A model call in any ingress shape through the pipeline, answered in
/// that shape.
pub(super) async fn shaped(
    app: std::sync::Arc<crate::server::AppState>,
    ingress: Ingress,
    headers: http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let answer =
        crate::pipeline::handle_shaped(app, ingress, headers, crate::pipeline::request_body(body))
            .await;
    self::answer(Shape::from(ingress), answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::{ErrorKind, GatewayError};

    fn err() -> GatewayError {
        GatewayError::new(
            ErrorKind::Server,
            502,
            "upstream_stream_interrupted",
            "the upstream \"stream\" was cut — é",
        )
        .with_code("stream_interrupted")
        .with_param("messages")
    }

    fn failed(before: &'static [u8], sequence: Option<u64>) -> StreamError {
        StreamError {
            before: Bytes::from_static(before),
            error: err(),
            sequence,
        }
    }

    /// The edge writes the bytes the pipeline wrote before rendering moved
    /// here: the shape's error body as a `data:` event, re-framed by the
    /// shape's stream translator for Anthropic and the Responses API.
    #[test]
    fn a_streams_error_event_keeps_its_bytes() {
        for (shape, api) in [
            (Shape::OpenAi, ApiShape::OpenAi),
            (Shape::Databricks, ApiShape::Databricks),
        ] {
            let out = stream_error(shape, failed(b"data: {\"a\":1}\n\n", None));
            let want = format!("data: {{\"a\":1}}\n\ndata: {}\n\n", err().body(api));
            assert_eq!(out, want.as_bytes());
        }

        let mut old = Vec::new();
        let data = err().body(ApiShape::Anthropic).to_string();
        anthropic::FromOpenAi::new().on_data(&data, &mut old);
        assert!(old.starts_with(b"event: error\ndata: "));
        assert_eq!(stream_error(Shape::Anthropic, failed(b"", None)), old);

        let mut t = responses::ResponsesStream::new(serde_json::Map::new());
        let chunk = r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        t.on_data(chunk, &mut Vec::new());
        let seq = t.next_sequence();
        assert!(seq > 0);
        let mut old = Vec::new();
        t.on_data(&err().body(ApiShape::OpenAi).to_string(), &mut old);
        assert!(old.starts_with(b"event: error\ndata: "));
        assert_eq!(stream_error(Shape::Responses, failed(b"", Some(seq))), old);
    }
}
