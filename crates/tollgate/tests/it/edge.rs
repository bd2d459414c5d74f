//! The data-plane edge under hostile or unlucky traffic: small SSE chunks
//! are not held back by Nagle's algorithm; slow or stalled callers and idle
//! connections are cut off (`server.timeouts`); past
//! `server.max_concurrent_requests` the data plane sheds load at once.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One OpenAI chat chunk as an SSE event.
fn chunk_event(i: usize) -> String {
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 0,
        "model": "m", "choices": [{"index": 0, "delta": {"content": format!("w{i} ")},
        "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

#[tokio::test]
async fn small_sse_chunks_are_not_delayed_by_nagle() {
    const CHUNKS: usize = 25;
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let upstream = raw_upstream(move |mut s, _| {
        let sent_tx = sent_tx.clone();
        async move {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        connection: close\r\n\r\n";
            s.write_all(head.as_bytes()).await.unwrap();
            for i in 0..CHUNKS {
                s.write_all(chunk_event(i).as_bytes()).await.unwrap();
                let _ = sent_tx.send(Instant::now());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            s.write_all(b"data: [DONE]\n\n").await.unwrap();
        }
    })
    .await;
    let gw = start_gateway_with(|db| raw_config(db, upstream, "", "")).await;
    // A kept-alive connection in request/response rhythm: the caller's
    // kernel is in "ping-pong" mode and delays its ACKs, which is when
    // Nagle's algorithm holds back the next small write.
    let client = client();
    for _ in 0..3 {
        let models = client
            .get(gw.url("/v1/models"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(models.status(), 200);
        models.bytes().await.unwrap();
    }
    let mut body = chat_body("chat-raw", "x");
    body["stream"] = json!(true);
    let mut resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Arrival time of each complete event, in order.
    let mut arrived = Vec::new();
    let mut pending = String::new();
    while let Some(bytes) = resp.chunk().await.unwrap() {
        let at = Instant::now();
        pending.push_str(std::str::from_utf8(&bytes).unwrap());
        while let Some(i) = pending.find("\n\n") {
            let event: String = pending.drain(..i + 2).collect();
            if event.contains("chat.completion.chunk") {
                arrived.push(at);
            }
        }
    }
    let mut sent = Vec::new();
    while let Ok(t) = sent_rx.try_recv() {
        sent.push(t);
    }
    assert_eq!((sent.len(), arrived.len()), (CHUNKS, CHUNKS));
    let delays: Vec<Duration> = sent
        .iter()
        .zip(&arrived)
        .map(|(s, a)| a.saturating_duration_since(*s))
        .collect();
    // Without TCP_NODELAY the second chunk waits for the caller's delayed
    // ACK of the first (~20 ms here, up to 40 ms); every later chunk then
    // arrives on time. So: the second chunk within 10 ms, and 24 of the 25
    // within 10 ms too (one outlier forgiven for a busy CI core).
    let bound = Duration::from_millis(10);
    assert!(delays[1] < bound, "second chunk held back: {delays:?}");
    let mut sorted = delays.clone();
    sorted.sort();
    assert!(sorted[CHUNKS - 2] < bound, "chunks held back: {delays:?}");
}

/// A gateway with short server-side timeouts; `chat-raw` is never called.
async fn timeout_gateway() -> Gateway {
    let dead = dead_addr().await;
    start_gateway_with(|db| {
        raw_config(
            db,
            dead,
            "  timeouts: { header_read: 300ms, body_read: 400ms, idle: 800ms }\n",
            "",
        )
    })
    .await
}

/// Reads until the peer closes (EOF or reset); `None` if it is still open
/// after `cap`.
async fn read_until_closed(
    s: &mut tokio::net::tcp::OwnedReadHalf,
    cap: Duration,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(cap, read_all).await.ok()?;
    Some(out)
}

fn models_request() -> String {
    format!("GET /v1/models HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {KEY}\r\n\r\n")
}

/// Sends a header line every 100 ms until the write fails.
fn dribble_headers(mut w: tokio::net::tcp::OwnedWriteHalf, start: &'static str) {
    tokio::spawn(async move {
        if w.write_all(start.as_bytes()).await.is_err() {
            return;
        }
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if w.write_all(format!("x-slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
}

#[tokio::test]
async fn slow_headers_are_cut_at_header_read() {
    let gw = timeout_gateway().await;
    // A new connection dribbling its first request's headers, a line every
    // 100 ms: the connection moves, but its headers never end.
    let (mut r, w) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    let started = Instant::now();
    dribble_headers(w, "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\n");
    let got = read_until_closed(&mut r, Duration::from_secs(3)).await;
    let took = started.elapsed();
    assert!(got.is_some(), "slowloris connection still open after 3 s");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1200),
        "closed after {took:?}, header_read is 300ms"
    );

    // The same on a kept-alive connection, after a first request: the
    // header clock starts at the second request's first byte (idle is 800ms,
    // so a close at ~300 ms is the header clock).
    let (mut r, mut w) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    w.write_all(models_request().as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut r).await.0, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    dribble_headers(w, "GET /v1/models HTTP/1.1\r\n");
    let got = read_until_closed(&mut r, Duration::from_secs(3)).await;
    let took = started.elapsed();
    assert!(got.is_some(), "slowloris connection still open after 3 s");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(700),
        "closed after {took:?}, header_read is 300ms"
    );
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains(
            r#"tollgate_connection_timeouts_total{listener="data",reason="header_read"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stalled_body_gets_408_in_the_callers_shape() {
    let gw = timeout_gateway().await;
    let cases = [
        // Content-Length promises 100 bytes, 10 arrive.
        (
            "/v1/chat/completions",
            "content-length: 100\r\n\r\n{\"model\":",
        ),
        // Chunked: one chunk, then nothing.
        (
            "/v1/chat/completions",
            "transfer-encoding: chunked\r\n\r\n9\r\n{\"model\":\r\n",
        ),
        // Anthropic Messages: the error comes in Anthropic's shape.
        ("/v1/messages", "content-length: 100\r\n\r\n{\"model\":"),
    ];
    for (path, rest) in cases {
        let (mut r, mut w) = TcpStream::connect(gw.addr).await.unwrap().into_split();
        let started = Instant::now();
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {KEY}\r\n\
             x-api-key: {KEY}\r\ncontent-type: application/json\r\n{rest}"
        );
        w.write_all(req.as_bytes()).await.unwrap();
        let (status, body) = tokio::time::timeout(Duration::from_secs(3), read_response(&mut r))
            .await
            .expect("no answer to a stalled body within 3 s");
        let took = started.elapsed();
        assert_eq!(status, 408, "{path} {rest:?} after {took:?}: {body}");
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_millis(1500),
            "{path}: answered after {took:?}, body_read is 400ms"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if path == "/v1/messages" {
            assert_eq!(v["type"], "error", "{v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains("400ms"),
                "{v}"
            );
        } else {
            assert_eq!(v["error"]["code"], "request_timeout", "{v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("body_read"),
                "{v}"
            );
        }
        // The half-read request cannot be followed by another: closed.
        assert!(
            read_until_closed(&mut r, Duration::from_secs(2))
                .await
                .is_some(),
            "{path}: connection left open"
        );
    }
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let gw = timeout_gateway().await;
    let (mut r, mut w) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    // Two requests on one connection: it is kept alive between them.
    for _ in 0..2 {
        w.write_all(models_request().as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut r).await.0, 200);
    }
    let started = Instant::now();
    let got = read_until_closed(&mut r, Duration::from_secs(3)).await;
    let took = started.elapsed();
    assert_eq!(got.as_deref(), Some(&b""[..]), "still open after 3 s");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(1600),
        "closed after {took:?}, idle is 800ms"
    );
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains(r#"tollgate_connection_timeouts_total{listener="data",reason="idle"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn callers_may_speak_h2c_with_prior_knowledge() {
    let gw = timeout_gateway().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
}

/// A data-plane call that is not held open: (status, headers, body).
async fn quick(
    gw: &Gateway,
    path: &str,
    body: serde_json::Value,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let resp = client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

async fn admin_ok(gw: &Gateway) {
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = client().get(gw.admin_url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn past_max_concurrent_requests_the_data_plane_sheds_with_503() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let gw = start_gateway_with(|db| {
        standard_config(&mock, dead, db).replace(
            "  shutdown_grace: 5s\n",
            "  shutdown_grace: 5s\n  max_concurrent_requests: 2\n",
        )
    })
    .await;
    let chat = chat_body("chat-local", "x");
    assert_eq!(
        quick(&gw, "/v1/chat/completions", chat.clone()).await.0,
        200
    );

    // Two slow streams (10 tokens at 10/s) hold both permits while they run.
    let mut first = paced_stream(&gw, "one", 10, 10).await;
    let mut second = paced_stream(&gw, "two", 10, 10).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );

    // A third request is answered at once: 503, Retry-After, OpenAI's shape.
    let started = Instant::now();
    let (status, headers, v) = quick(&gw, "/v1/chat/completions", chat.clone()).await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(status, 503, "{v}");
    assert_eq!(headers["retry-after"], "1");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 concurrent"),
        "{v}"
    );
    // Other routes, each in its caller's shape.
    let (status, _, v) = quick(
        &gw,
        "/v1/messages",
        json!({"model": "chat-local", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(
        (status, &v["type"], &v["error"]["type"]),
        (503, &json!("error"), &json!("overloaded_error")),
        "{v}"
    );
    let (status, _, v) = quick(
        &gw,
        "/serving-endpoints/chat-local/invocations",
        json!({"messages": []}),
    )
    .await;
    assert_eq!(
        (status, &v["error_code"]),
        (503, &json!("TEMPORARILY_UNAVAILABLE")),
        "{v}"
    );
    // The admin listener is never shed.
    admin_ok(&gw).await;

    // When the streams end, their permits come back.
    while first.chunk().await.unwrap().is_some() {}
    while second.chunk().await.unwrap().is_some() {}
    assert_eq!(
        quick(&gw, "/v1/chat/completions", chat.clone()).await.0,
        200
    );

    // A caller that walks away mid-stream gives its permit back too.
    let mut held = paced_stream(&gw, "held", 10, 10).await;
    let dropped = paced_stream(&gw, "dropped", 10, 10).await;
    assert_eq!(
        quick(&gw, "/v1/chat/completions", chat.clone()).await.0,
        503
    );
    drop(dropped);
    let status = poll_until(
        async || quick(&gw, "/v1/chat/completions", chat.clone()).await.0,
        |s| *s == 200,
    )
    .await;
    assert_eq!(status, 200, "the dropped stream's permit was not released");
    admin_ok(&gw).await;
    while held.chunk().await.unwrap().is_some() {}

    let metrics = metrics_text(&gw).await;
    let shed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_requests_shed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(shed >= 4.0, "{metrics}");
}
