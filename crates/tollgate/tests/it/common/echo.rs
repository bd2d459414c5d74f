//! A small HTTP upstream for forwarded calls (routes, connections): it
//! records every request it receives (method, path and query, headers,
//! body) and answers JSON that echoes the request's `Authorization` and
//! `x-api-key` back, in a header and in the body. `…/stream` answers a
//! chunked body that carries the same echo split across chunks.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Clone, Default)]
pub(crate) struct Echo {
    pub addr: Option<SocketAddr>,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Echo {
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr.unwrap())
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn echoed(headers: &http::HeaderMap) -> String {
    ["authorization", "x-api-key"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) async fn start_echo() -> Echo {
    let mut echo = Echo::default();
    let seen = echo.received.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let seen = seen.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap()
                .to_vec();
            let creds = echoed(&parts.headers);
            let uri = parts.uri.to_string();
            seen.lock().unwrap().push(Received {
                method: parts.method.to_string(),
                uri: uri.clone(),
                headers: parts.headers.clone(),
                body: body.clone(),
            });
            if parts.uri.path().ends_with("/stream") {
                // The credential split across chunks, sent apart.
                let (a, b) = creds.split_at(creds.len() / 2);
                let chunks = vec![
                    "begin ".to_string(),
                    a.to_string(),
                    b.to_string(),
                    " end".to_string(),
                ];
                let stream =
                    futures_util::stream::unfold(chunks.into_iter(), |mut it| async move {
                        let next = it.next()?;
                        tokio::time::sleep(Duration::from_millis(15)).await;
                        Some((Ok::<_, std::io::Error>(next), it))
                    });
                return Response::builder()
                    .header("content-type", "text/plain")
                    .body(Body::from_stream(stream))
                    .unwrap();
            }
            let answer = serde_json::json!({
                "uri": uri,
                "echo": creds,
                "predictions": [0.1, 0.9],
                "note": "contact ops@example.com",
            });
            Response::builder()
                .header("content-type", "application/json")
                .header("x-echo-auth", creds)
                .body(Body::from(answer.to_string()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    echo.addr = Some(listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    echo
}
