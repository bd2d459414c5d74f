//! Bad input and upstream failure, each answered in OpenAI's error shape
//! with the right status; nothing panics the gateway.

use crate::common;

use common::*;
use serde_json::{json, Value};

async fn raw(gw: &Gateway, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!(resp.headers().contains_key("x-request-id"));
    (status, resp.json().await.unwrap())
}

fn assert_openai_error(v: &Value) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
}

#[tokio::test]
async fn malformed_requests_get_400_naming_the_problem() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let cases: &[(&str, &str)] = &[
        ("{not json", "not valid JSON"),
        ("", "empty"),
        ("[1,2]", "JSON object"),
        (
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
            "model",
        ),
        ("{\"model\":42,\"messages\":[]}", "`model` must be a string"),
        ("{\"model\":\"chat-local\"}", "`messages` is required"),
        (
            "{\"model\":\"chat-local\",\"messages\":\"hi\"}",
            "`messages` must be an array",
        ),
        (
            "{\"model\":\"chat-local\",\"messages\":[{\"content\":\"x\"}]}",
            "messages[0].role",
        ),
        (
            "{\"model\":\"chat-local\",\"messages\":[{\"role\":\"user\"}],\"stream\":1}",
            "`stream` must be a boolean",
        ),
        (
            "{\"model\":\"chat-local\",\"messages\":[{\"role\":\"user\"}],\"stream_options\":[]}",
            "stream_options",
        ),
        ("\u{0}\u{1}\u{2}", "not valid JSON"),
    ];
    for (body, expect) in cases {
        let (status, v) = raw(&gw, "/v1/chat/completions", body.to_string()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_openai_error(&v);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(expect), "{body}: {msg}");
    }
    let (status, v) = raw(&gw, "/v1/embeddings", r#"{"model":"embed-up"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "input");
    let (status, v) = raw(
        &gw,
        "/v1/embeddings",
        r#"{"model":"embed-up","input":"x","stream":true}"#,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = raw(
        &gw,
        "/v1/completions",
        r#"{"model":"chat-local","prompt":7}"#,
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // The gateway is still healthy after all of that.
    let ok = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-local", "x"),
    )
    .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let big = "x".repeat(70_000);
    let (status, v) = raw(
        &gw,
        "/v1/chat/completions",
        json!({"model": "chat-local", "messages": [{"role": "user", "content": big}]}).to_string(),
    )
    .await;
    assert_eq!(status, 413);
    assert_openai_error(&v);
    assert!(v["error"]["message"].as_str().unwrap().contains("65536"));

    // Chunked (no content-length) bodies are limited too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 8192])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (status, _) = raw(&gw, "/v1/chat/completions", body).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let resp = client()
        .get(gw.url("/v1/nope"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_openai_error(&resp.json().await.unwrap());
    let resp = client()
        .get(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_openai_error(&resp.json().await.unwrap());
}

async fn call(
    gw: &Gateway,
    model: &str,
    headers: &[(&str, &str)],
    stream: bool,
) -> reqwest::Response {
    let mut body = chat_body(model, "hello");
    body["stream"] = json!(stream);
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn upstream_failures_map_to_502_504_and_429() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;

    let resp = call(&gw, "chat-up", &[("x-mock-status", "503")], false).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-tollgate-resolved-model"], "up/mock-chat");
    let v: Value = resp.json().await.unwrap();
    assert_openai_error(&v);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("up") && msg.contains("503"), "{msg}");

    let resp = call(
        &gw,
        "chat-up",
        &[("x-mock-status", "429"), ("x-mock-retry-after", "7")],
        false,
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let resp = call(&gw, "chat-dead", &[], false).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("dead") && msg.contains("could not be reached"),
        "{msg}"
    );

    // First byte later than the provider's 300 ms first-byte timeout.
    let resp = call(&gw, "chat-slow", &[("x-mock-latency-ms", "1500")], false).await;
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first byte"),
        "{v}"
    );

    // Streams fail the same way before the first byte.
    let resp = call(&gw, "chat-up", &[("x-mock-status", "500")], true).await;
    assert_eq!(resp.status(), 502);
    assert_openai_error(&resp.json().await.unwrap());
}

#[tokio::test]
async fn upstream_credential_rejection_is_the_gateways_problem() {
    let mock = start_mock(Some("a-different-secret")).await;
    let gw = start_standard(&mock).await;
    let resp = call(&gw, "chat-up", &[], false).await;
    assert_eq!(
        resp.status(),
        502,
        "upstream 401 must not look like the caller's auth failure"
    );
    let text = resp.text().await.unwrap();
    assert!(text.contains("401"), "{text}");
    assert!(
        !text.contains(UPSTREAM_KEY),
        "upstream secret leaked: {text}"
    );
}

#[tokio::test]
async fn stream_cut_mid_way_ends_with_an_error_event() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    for model in ["chat-up", "chat-local"] {
        let resp = call(&gw, model, &[("x-mock-cut-after", "4")], true).await;
        assert_eq!(resp.status(), 200);
        let events = sse_data(&resp.text().await.unwrap());
        assert!(!events.contains(&"[DONE]".to_string()), "{events:?}");
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["code"], "stream_interrupted",
            "{model}: {last}"
        );
        // The chunks before the cut were delivered.
        assert_eq!(events.len(), 5, "{events:?}");
    }
}

#[tokio::test]
async fn total_timeout_mid_stream_ends_with_an_error_event() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    // 30 tokens at 20/s take 1.5 s; the provider's total timeout is 700 ms.
    let resp = call(
        &gw,
        "chat-slow",
        &[("x-mock-tokens-per-sec", "20"), ("x-mock-tokens", "30")],
        true,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{last}");
    assert!(events.len() > 3, "some chunks arrived first: {events:?}");
}

/// The test process's resident set (the gateway runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test]
async fn an_endless_upstream_body_is_cut_at_max_response_bytes() {
    use tokio::io::AsyncWriteExt;
    // A 200 answer whose JSON body never ends (no length, no close): the
    // gateway must stop reading at the limit. A request asking for
    // `declared` gets a `Content-Length` of 100 MB instead (sent slowly).
    let upstream = raw_upstream(|mut s, request| async move {
        let declared = String::from_utf8_lossy(&request).contains("declared");
        let head = if declared {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
        };
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let _ = s
            .write_all(br#"{"id":"x","choices":[{"message":{"content":""#)
            .await;
        let block = vec![b'a'; 64 * 1024];
        // At most 1 GiB, so a broken gateway still ends the test.
        for _ in 0..16 * 1024 {
            if s.write_all(&block).await.is_err() {
                return;
            }
            if declared {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    })
    .await;
    let gw =
        start_gateway_with(|db| raw_config(db, upstream, "", "    max_response_bytes: 1048576\n"))
            .await;
    for content in ["endless", "declared"] {
        let before = rss_bytes();
        let started = tokio::time::Instant::now();
        let resp = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &chat_body("chat-raw", content),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(resp.status(), 502, "{content}");
        let v: Value = resp.json().await.unwrap();
        assert_openai_error(&v);
        assert_eq!(v["error"]["code"], "upstream_too_large", "{content}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("raw") && msg.contains("exceeded the limit of 1048576 bytes"),
            "{msg}"
        );
        assert!(
            took < std::time::Duration::from_secs(3),
            "{content}: took {took:?}"
        );
        let grown = rss_bytes().saturating_sub(before);
        assert!(
            grown < 64 * 1024 * 1024,
            "{content}: RSS grew by {grown} bytes"
        );
    }
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains("kind=\"upstream_too_large\""),
        "not counted as an upstream error"
    );
}
