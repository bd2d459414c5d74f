//! The fields the gateway itself reads are type- and range-checked at
//! ingress (issue 24): a bad value is a 400 naming the field, in the
//! caller's shape, never forwarded and never silently defaulted.

use crate::common;

use common::*;
use serde_json::Value;

const BAD_TOKENS: &[&str] = &["-1", "\"50\"", "1.5", "18446744073709551616", "0", "true"];

async fn send_raw(gw: &Gateway, path: &str, body: String) -> (u16, Value) {
    let resp = client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn bad_values_of_fields_the_gateway_reads_are_400_naming_the_param() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let mut cases: Vec<(String, &str)> = Vec::new();
    for bad in BAD_TOKENS {
        for field in ["max_tokens", "max_completion_tokens"] {
            cases.push((
                format!(r#"{{"model":"chat-up",{msgs},"{field}":{bad}}}"#),
                field,
            ));
        }
    }
    for bad in ["0", "-2", "\"2\"", "1.5", "1e3"] {
        cases.push((format!(r#"{{"model":"chat-up",{msgs},"n":{bad}}}"#), "n"));
    }
    for bad in ["\"hot\"", "-0.5", "3", "[]"] {
        cases.push((
            format!(r#"{{"model":"chat-up",{msgs},"temperature":{bad}}}"#),
            "temperature",
        ));
    }
    cases.push((
        format!(r#"{{"model":"chat-up",{msgs},"stream":"true"}}"#),
        "stream",
    ));
    cases.push((
        format!(
            r#"{{"model":"chat-up",{msgs},"stream":true,"stream_options":{{"include_usage":1}}}}"#
        ),
        "stream_options.include_usage",
    ));
    cases.push((format!(r#"{{"model":7,{msgs}}}"#), "model"));
    cases.push((
        r#"{"model":"chat-up","messages":{}}"#.to_string(),
        "messages",
    ));
    cases.push((
        r#"{"model":"chat-up","messages":[{"content":"x"}]}"#.to_string(),
        "messages",
    ));
    for (body, param) in &cases {
        let (status, v) = send_raw(&gw, "/v1/chat/completions", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}: {v}");
        assert_eq!(v["error"]["param"], *param, "{body}: {v}");
        assert!(v["error"].get("code").is_some(), "{body}: {v}");
    }
    // None of them reached the upstream.
    assert!(mock.received().await.is_empty());

    // Valid values pass.
    let body = format!(
        r#"{{"model":"chat-up",{msgs},"max_tokens":16,"max_completion_tokens":16,"n":1,"temperature":0.7,"stream":false}}"#
    );
    let (status, v) = send_raw(&gw, "/v1/chat/completions", body).await;
    assert_eq!(status, 200, "{v}");

    // The Anthropic Messages ingress answers in its own shape.
    for bad in BAD_TOKENS {
        let body = format!(r#"{{"model":"chat-up","max_tokens":{bad},{msgs}}}"#);
        let (status, v) = send_raw(&gw, "/v1/messages", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["type"], "error", "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_tokens"),
            "{body}: {v}"
        );
    }
}

#[tokio::test]
async fn a_huge_max_tokens_does_not_slip_past_a_token_cap() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let gw = start_gateway_with(|db| {
        format!(
            "{}\nlimits:\n  rules:\n    - name: tpm\n      per: [key]\n      tokens_per_minute: 100000\n",
            standard_config(&mock, dead, db)
        )
    })
    .await;
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let (status, v) = send_raw(
        &gw,
        "/v1/chat/completions",
        format!(r#"{{"model":"chat-up",{msgs},"max_tokens":1000000000000}}"#),
    )
    .await;
    assert_eq!(status, 429, "{v}");
    let (status, v) = send_raw(
        &gw,
        "/v1/chat/completions",
        format!(r#"{{"model":"chat-up",{msgs},"max_tokens":18446744073709551616}}"#),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "max_tokens", "{v}");
    let (status, v) = send_raw(
        &gw,
        "/v1/chat/completions",
        format!(r#"{{"model":"chat-up",{msgs},"max_tokens":16}}"#),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}
