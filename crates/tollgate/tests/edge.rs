//! The data-plane edge under hostile or unlucky traffic: small SSE chunks
//! are not held back by Nagle's algorithm.
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
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
