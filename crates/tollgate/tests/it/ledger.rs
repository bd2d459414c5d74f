//! The usage ledger: one exact record per request, streamed or not, written
//! off the request path; a failing store never fails a request.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tollgate::store::Store;

#[tokio::test]
async fn records_stream_and_non_stream_exactly() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_standard(&mock).await;
    let plain = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-up", "one two three"),
    )
    .await;
    let plain_id = plain.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(plain.status(), 200);
    let plain_answer = plain.bytes().await.unwrap();

    let mut body = chat_body("chat-up", "one two three");
    body["stream"] = json!(true);
    let streamed = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY_LIMITED),
        &chat_body("chat-local", "four five"),
    )
    .await;
    streamed.bytes().await.unwrap();
    let s = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    let stream_id = s.headers()["x-request-id"].to_str().unwrap().to_owned();
    s.text().await.unwrap();

    let failed = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-status", "503")
        .json(&chat_body("chat-up", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    // Unauthenticated requests are counted in metrics, not written to the ledger.
    assert_eq!(
        post(&gw, "/v1/chat/completions", None, &body)
            .await
            .status(),
        401
    );

    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    assert_eq!(recs.len(), 4, "{recs:#?}");

    let p = recs.iter().find(|r| r.request_id == plain_id).unwrap();
    assert_eq!((p.principal.as_str(), p.key_id.as_str()), ("alice", "full"));
    assert_eq!(
        (
            p.requested_model.as_str(),
            p.provider.as_str(),
            p.upstream_model.as_str()
        ),
        ("chat-up", "up", "mock-chat")
    );
    assert_eq!(
        (p.prompt_tokens, p.completion_tokens, p.tokens_estimated),
        (3, 16, false)
    );
    assert!(
        (p.cost - (3.0 * 10.0 + 16.0 * 20.0) / 1e6).abs() < 1e-12,
        "{}",
        p.cost
    );
    assert_eq!(
        (p.status, p.stream, p.endpoint.as_str()),
        (200, false, "chat")
    );
    assert!(p.latency_ms > 0.0 && p.ttft_ms.is_some());
    let sent = serde_json::to_vec(&chat_body("chat-up", "one two three")).unwrap();
    assert_eq!(
        (p.request_bytes, p.response_bytes),
        (sent.len() as i64, plain_answer.len() as i64)
    );

    let st = recs.iter().find(|r| r.request_id == stream_id).unwrap();
    assert!(st.stream);
    assert_eq!(
        (
            st.prompt_tokens,
            st.completion_tokens,
            st.tokens_estimated,
            st.status
        ),
        (3, 16, false, 200)
    );
    assert!(st.ttft_ms.unwrap() <= st.latency_ms);
    assert!(st.request_bytes > 0);
    assert_eq!(st.response_bytes, 0, "a streamed answer records no size");

    let bob = recs.iter().find(|r| r.principal == "bob").unwrap();
    assert_eq!(
        (bob.key_id.as_str(), bob.provider.as_str()),
        ("limited", "local")
    );
    assert_eq!((bob.prompt_tokens, bob.completion_tokens), (2, 16));

    let f = recs.iter().find(|r| r.status == 502).unwrap();
    assert_eq!(f.error, "upstream_status");
    assert_eq!((f.prompt_tokens, f.completion_tokens), (0, 0));
}

#[tokio::test]
async fn tokens_are_estimated_when_the_upstream_reports_none() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_standard(&mock).await;
    for stream in [false, true] {
        let mut body = chat_body("chat-up", "count these tokens please");
        body["stream"] = json!(stream);
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("x-mock-no-usage", "1")
            .header("x-mock-tokens", "8")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    assert_eq!(recs.len(), 2);
    for r in recs {
        assert!(r.tokens_estimated, "{r:?}");
        // 8 short English words, each one cl100k token; prompt 4 words + framing.
        assert_eq!(r.completion_tokens, 8, "{r:?}");
        assert!(r.prompt_tokens >= 4, "{r:?}");
    }
}

#[tokio::test]
async fn caller_going_away_mid_stream_is_recorded() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_standard(&mock).await;
    let mut resp = paced_stream(&gw, "long story", 50, 500).await;
    let mut got = 0;
    while got < 3 {
        if resp.chunk().await.unwrap().is_some() {
            got += 1;
        }
    }
    drop(resp);
    // Recorded when the gateway sees the caller gone, not at its shutdown.
    wait_records(&Store::open(&gw.db_url).await.unwrap(), 1).await;
    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].status, recs[0].error.as_str()),
        (499, "client_closed")
    );
    assert!(
        recs[0].tokens_estimated && recs[0].completion_tokens >= 2,
        "{:?}",
        recs[0]
    );
}

/// A caller that gives up before a (non-streamed) answer is recorded once,
/// as 499, by the request's end guard: the handler's future is dropped
/// while it waits on the upstream.
#[tokio::test]
async fn caller_going_away_before_the_answer_is_recorded() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_standard(&mock).await;
    let sent = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-latency-ms", "3000")
        .timeout(Duration::from_millis(300))
        .json(&chat_body("chat-up", "hello"))
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up first");
    wait_records(&Store::open(&gw.db_url).await.unwrap(), 1).await;
    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        (recs[0].status, recs[0].error.as_str()),
        (499, "client_closed")
    );
}

#[tokio::test]
async fn a_failing_store_never_fails_requests_and_loses_nothing() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_standard(&mock).await;
    // Take the ledger table away underneath the running gateway.
    sql(&gw.db_url, "ALTER TABLE usage RENAME TO usage_away").await;
    for _ in 0..5 {
        let r = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &chat_body("chat-local", "x"),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let spool = gw.dir.path().join("t.db.spool.jsonl");
    let spooled = poll_until(
        async || {
            std::fs::read_to_string(&spool)
                .map(|s| s.lines().count())
                .unwrap_or(0)
        },
        |n| *n == 5,
    )
    .await;
    assert_eq!(spooled, 5, "failed writes go to the spool");
    // (The recorder is process-global: other tests' gateways share it.) The
    // counter moves just after the spool write returns, so wait for it too.
    let counted = metric_appears(&gw, "tollgate_ledger_spooled_total").await;
    assert!(counted, "the spooled counter is exported");
    // The store comes back: the spool is replayed, in order, once.
    sql(&gw.db_url, "ALTER TABLE usage_away RENAME TO usage").await;
    let store = Store::open(&gw.db_url).await.unwrap();
    let n = poll_until(
        async || store.usage_since(0).await.unwrap().len(),
        |n| *n == 5,
    )
    .await;
    assert_eq!(n, 5);
    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    assert_eq!(recs.len(), 5);
    assert_eq!(std::fs::read_to_string(&spool).unwrap(), "");
}

async fn sql(url: &str, stmt: &str) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query(stmt).execute(&mut c).await.unwrap();
}
