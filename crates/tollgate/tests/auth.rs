//! API-key authentication and the model allow-list, over real HTTP.
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
    let mut status = 0;
    for _ in 0..100 {
        status = post(&gw, "/v1/chat/completions", Some(&key), &body)
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
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
    for _ in 0..100 {
        status = post(&gw, "/v1/chat/completions", Some(&key), &body)
            .await
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(status, 401, "revoked key still accepted");
}
