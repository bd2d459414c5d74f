//! Numbers a caller sends reach the upstream as the same values: the
//! gateway parses a body and writes it again, and serde_json's default
//! float parser is not correctly rounded (about one in ten 17-digit
//! decimals came back as a neighbouring f64), so the workspace turns on its
//! `float_roundtrip` feature.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// `n` doubles in [-1, 1) with 16 or 17 significant digits, like an
/// embedding's.
fn doubles(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// The edges of the f64 range and the classic rounding cases.
const EDGES: [f64; 6] = [
    0.300_000_000_000_000_04,
    2.225_073_858_507_201_4e-308,
    5e-324,
    1.797_693_134_862_315_7e308,
    0.1,
    -99.999_999_999_999_99,
];

/// The values of `got` that are not bit for bit those of `sent`.
fn changed(sent: &[f64], got: &Value) -> Vec<String> {
    let got = got.as_array().cloned().unwrap_or_default();
    assert_eq!(got.len(), sent.len(), "{got:?}");
    sent.iter()
        .zip(&got)
        .filter(|(s, g)| g.as_f64().map(f64::to_bits) != Some(s.to_bits()))
        .map(|(s, g)| format!("{s:e} -> {g}"))
        .collect()
}

#[tokio::test]
async fn floats_reach_the_upstream_unchanged() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;

    // An embeddings input of 1,536 floats and the edge values.
    let mut input = doubles(1536);
    input.extend(EDGES);
    let resp = post(
        &gw,
        "/v1/embeddings",
        Some(KEY),
        &json!({"model": "embed-up", "input": input, "dimensions": 1}),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let received = mock.received().await;
    let body = &received.last().unwrap()["body"];
    let bad = changed(&input, &body["input"]);
    assert!(bad.is_empty(), "{} changed: {bad:?}", bad.len());

    // A chat call: the sampling fields, logit_bias and a field the gateway
    // does not know, all passed through.
    let values = doubles(64);
    let chat = json!({
        "model": "chat-up",
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.300_000_000_000_000_04,
        "top_p": 0.1,
        "logit_bias": {"50256": EDGES[5], "100": values[0]},
        "x_extra": {"edges": EDGES, "values": values},
    });
    let resp = post(&gw, "/v1/chat/completions", Some(KEY), &chat).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let received = mock.received().await;
    let body = &received.last().unwrap()["body"];
    for field in ["temperature", "top_p"] {
        assert_eq!(body[field], chat[field], "{field}");
    }
    assert_eq!(
        changed(
            &[EDGES[5], values[0]],
            &json!([body["logit_bias"]["50256"], body["logit_bias"]["100"]])
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        changed(&EDGES, &body["x_extra"]["edges"]),
        Vec::<String>::new()
    );
    assert_eq!(
        changed(&values, &body["x_extra"]["values"]),
        Vec::<String>::new()
    );

    // An integer beyond u64 becomes the nearest f64; beyond f64's range,
    // the body is refused.
    let raw = |extra: &str| {
        format!(
            r#"{{"model":"chat-up","messages":[{{"role":"user","content":"x"}}],"x_big":{extra}}}"#
        )
    };
    let send = |body: String| {
        client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let resp = send(raw("18446744073709551616")).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let received = mock.received().await;
    assert_eq!(
        received.last().unwrap()["body"]["x_big"],
        json!(18_446_744_073_709_551_616.0)
    );
    let resp = send(raw("1e400")).await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
}
