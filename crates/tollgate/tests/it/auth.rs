//! API-key authentication and the model allow-list, over real HTTP.

use crate::common;

use common::*;
use serde_json::Value;
use tollgate::config::PrincipalKind;

#[tokio::test]
async fn keys_ok_missing_unknown_malformed() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let body = chat_body("chat-local", "hi");

    let ok = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(ok.status(), 200);

    let via_x_api_key = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(via_x_api_key.status(), 200);

    let missing = post(&gw, "/v1/chat/completions", None, &body).await;
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("x-request-id"));
    let err: Value = missing.json().await.unwrap();
    assert_eq!(err["error"]["type"], "authentication_error");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing API key"));

    let unknown = post(&gw, "/v1/chat/completions", Some("tg-not-a-key"), &body).await;
    assert_eq!(unknown.status(), 401);
    let err: Value = unknown.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_api_key");
    assert!(
        !err.to_string().contains("tg-not-a-key"),
        "key echoed: {err}"
    );

    let basic = client()
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
}

#[tokio::test]
async fn model_allow_list_is_deny_by_default() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;

    let forbidden = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("secret-model", "x"),
    )
    .await;
    assert_eq!(forbidden.status(), 403);
    let err: Value = forbidden.json().await.unwrap();
    assert_eq!(err["error"]["type"], "permission_error");
    assert_eq!(err["error"]["param"], "model");

    assert_eq!(chat_status(&gw, KEY_LIMITED, "chat-local").await, 200);
    assert_eq!(chat_status(&gw, KEY_LIMITED, "chat-up").await, 403);

    let unknown = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("no-such-model", "x"),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    let err: Value = unknown.json().await.unwrap();
    assert_eq!(err["error"]["code"], "model_not_found");

    // /v1/models lists exactly what each key may use.
    let ids = |v: Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let full: Value = client()
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(full),
        [
            "chat-local",
            "chat-up",
            "embed-up",
            "chat-h2",
            "chat-dead",
            "chat-slow"
        ]
    );
    let limited: Value = client()
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY_LIMITED)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(limited), ["chat-local"]);
    let anon = client().get(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
}

/// A refused call on a configured model keeps the model's name in the
/// metrics (only names the gateway does not serve collapse to "unknown").
#[tokio::test]
async fn a_denied_configured_model_keeps_its_metric_label() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    // A name no other test uses, so the process-wide recorder's line is ours.
    let model = "secret-model";
    assert_eq!(chat_status(&gw, KEY_LIMITED, model).await, 403);
    assert_eq!(chat_status(&gw, KEY, "no-such-model-anywhere").await, 404);
    let text = metrics_text(&gw).await;
    let denied = text.lines().any(|l| {
        l.starts_with("tollgate_requests_total{")
            && l.contains(&format!("model=\"{model}\""))
            && l.contains("status=\"403\"")
    });
    assert!(denied, "no 403 line for {model}:\n{text}");
    assert!(
        !text.contains("model=\"no-such-model-anywhere\""),
        "an unknown name must not become a label"
    );
}

#[tokio::test]
async fn store_keys_work_until_revoked() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let store = tollgate::store::Store::open(&gw.db_url).await.unwrap();
    let key = tollgate::auth::generate_key();
    store
        .create_key(
            "carol-key",
            &hash(&key),
            "carol",
            PrincipalKind::User,
            &["ops".into()],
            &["chat-local".into()],
        )
        .await
        .unwrap();
    // Stored keys are hashes only.
    let listed = store.list_keys().await.unwrap();
    assert!(listed.iter().all(|k| !k.hash.contains(&key[3..])));

    let body = chat_body("chat-local", "hello");
    let status_now = async || {
        post(&gw, "/v1/chat/completions", Some(&key), &body)
            .await
            .status()
            .as_u16()
    };
    let status = poll_until(status_now, |s| *s == 200).await;
    assert_eq!(status, 200, "created key never became usable");
    assert_eq!(
        post(
            &gw,
            "/v1/chat/completions",
            Some(&key),
            &chat_body("chat-up", "x")
        )
        .await
        .status(),
        403
    );

    assert!(store.revoke_key("carol-key").await.unwrap());
    assert!(!store.revoke_key("carol-key").await.unwrap());
    let status = poll_until(status_now, |s| *s == 401).await;
    assert_eq!(status, 401, "revoked key still accepted");
}
