//! Every upstream credential mode over real HTTP against the mock upstream,
//! which checks what it receives: static bearer (file re-read on reload),
//! api-key header, OAuth client credentials (cache, background refresh
//! before expiry, single flight under 50 concurrent requests, failure → 502
//! with a clear message and no secret), RFC 8693 token exchange (workload
//! file and the caller's JWT, cached per subject token) and passthrough.

use crate::common;

use std::time::Duration;

use common::jwt::{jwks_server, sign, ISSUER};
use common::*;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tollgate::mock::server::MockOptions;

const CLIENT_ID: &str = "sp-client-7f3e";
const CLIENT_SECRET: &str = "dose-SECRET-client-4242";

/// A gateway config with `providers` and one model `m` on provider `p`.
fn config(db: &str, provider: &str, extra: &str) -> String {
    format!(
        r#"{head}providers:
{provider}
models:
  - name: m
    provider: p
    upstream_model: my-endpoint
keys:
  - id: k
    hash: {hash}
    principal: alice
    models: ["*"]
{extra}
"#,
        hash = hash(KEY),
        head = config_head(db),
    )
}

/// The service principal's `auth:` block (the secret the mock accepts).
fn sp_auth() -> String {
    format!("{{type: client_credentials, client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}")
}

/// `cfg` with one more model `name` on `provider`.
fn add_model(cfg: String, name: &str, provider: &str, upstream: &str) -> String {
    cfg.replace(
        "keys:",
        &format!(
            "  - name: {name}\n    provider: {provider}\n    upstream_model: {upstream}\nkeys:"
        ),
    )
}

fn oauth_mock() -> MockOptions {
    MockOptions {
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        ..Default::default()
    }
}

async fn oauth_stats(mock: &Mock) -> Value {
    reqwest::get(format!("http://{}/_mock/oauth", mock.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn oauth_knobs(mock: &Mock, knobs: Value) {
    let r = client()
        .post(format!("http://{}/_mock/oauth", mock.addr))
        .json(&knobs)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

async fn chat(gw: &Gateway, key: &str) -> (u16, Value) {
    let r = post(gw, "/v1/chat/completions", Some(key), &chat_body("m", "hi")).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `Authorization` header of every request the upstream received on `path`.
async fn upstream_auth(mock: &Mock, path: &str) -> Vec<String> {
    mock.received()
        .await
        .iter()
        .filter(|r| r["path"] == path)
        .map(|r| {
            r["headers"]["authorization"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

const INVOCATIONS: &str = "/serving-endpoints/my-endpoint/invocations";

fn databricks(mock: &Mock, auth: &str) -> String {
    format!(
        "  - name: p\n    kind: databricks\n    base_url: http://{}\n    auth: {auth}\n",
        mock.addr
    )
}

#[tokio::test]
async fn static_bearer_file_is_reread_on_reload() {
    let mock = start_mock(None).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "dapi-first\n").unwrap();
    let auth = format!("{{type: bearer, token_file: {}}}", file.display());
    let gw = start_gateway_with(|db| config(db, &databricks(&mock, &auth), "")).await;
    assert_eq!(chat(&gw, KEY).await.0, 200);
    std::fs::write(&file, "dapi-second\n").unwrap();
    // Unchanged config: the provider (and its pool) is kept, the file re-read.
    gw.running().reload().unwrap();
    assert_eq!(chat(&gw, KEY).await.0, 200);
    assert_eq!(
        upstream_auth(&mock, INVOCATIONS).await,
        ["Bearer dapi-first", "Bearer dapi-second"]
    );
}

#[tokio::test]
async fn static_bearer_is_checked_by_the_upstream() {
    let mock = start_mock(Some("dapi-right")).await;
    let gw = start_gateway_with(|db| {
        let good = databricks(&mock, "{type: bearer, token: dapi-right}");
        let bad =
            databricks(&mock, "{type: bearer, token: dapi-wrong}").replace("name: p", "name: q");
        add_model(
            config(db, &format!("{good}{bad}"), ""),
            "wrong",
            "q",
            "my-endpoint",
        )
    })
    .await;
    assert_eq!(chat(&gw, KEY).await.0, 200);
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("wrong", "x"),
    )
    .await;
    // The upstream's 401 is the gateway's credential problem: 502.
    assert_eq!(r.status(), 502);
    assert!(!r.text().await.unwrap().contains("dapi-wrong"));
}

#[tokio::test]
async fn client_credentials_token_is_cached_and_scoped() {
    let mock = start_mock_with(oauth_mock()).await;
    let auth = sp_auth();
    let gw = start_gateway_with(|db| config(db, &databricks(&mock, &auth), "")).await;
    for _ in 0..5 {
        assert_eq!(chat(&gw, KEY).await.0, 200);
    }
    let stats = oauth_stats(&mock).await;
    assert_eq!(stats["client_credentials"], 1, "{stats}");
    assert_eq!(stats["last_scope"], "all-apis");
    let seen = upstream_auth(&mock, INVOCATIONS).await;
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter()
            .all(|a| a == "Bearer mock-at-1-sp-sp-client-7f3e"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn token_is_refreshed_in_the_background_before_it_expires() {
    let mock = start_mock_with(MockOptions {
        token_ttl: Duration::from_secs(4),
        ..oauth_mock()
    })
    .await;
    // refresh_before is capped at half the lifetime: a refresh every ~2 s.
    let auth = sp_auth();
    let gw = start_gateway_with(|db| config(db, &databricks(&mock, &auth), "")).await;
    assert_eq!(chat(&gw, KEY).await.0, 200);
    // No request at all while the refresh is due: the refresher fetches on its own.
    skip_clock(Duration::from_millis(2100)).await;
    let count = poll_until(
        async || {
            oauth_stats(&mock).await["client_credentials"]
                .as_u64()
                .unwrap()
        },
        |count| *count >= 2,
    )
    .await;
    assert!(count >= 2, "no background refresh");
    // Past the first token's lifetime every request still carries a live token.
    skip_clock(Duration::from_millis(2500)).await;
    assert_eq!(chat(&gw, KEY).await.0, 200);
    let seen = upstream_auth(&mock, INVOCATIONS).await;
    assert_ne!(seen.first(), seen.last(), "the token was never replaced");
}

#[tokio::test]
async fn concurrent_requests_during_a_fetch_share_one_token_request() {
    let mock = start_mock_with(oauth_mock()).await;
    // A slow token endpoint: the startup fetch is still in flight while the
    // 50 requests arrive, and every one of them waits for it.
    oauth_knobs(&mock, json!({"delay_ms": 800})).await;
    let auth = sp_auth();
    let gw = start_gateway_with(|db| config(db, &databricks(&mock, &auth), "")).await;
    let calls = (0..50).map(|_| chat(&gw, KEY));
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert_eq!(oauth_stats(&mock).await["client_credentials"], 1);
}

/// The token endpoint's address never reaches the caller (issue 24): an
/// unreachable endpoint answers 502 with a stable code and message; its URL
/// and the OS error are for the log.
#[tokio::test]
async fn an_unreachable_token_endpoint_is_not_named_to_the_caller() {
    let mock = start_mock(None).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let auth = format!(
        "{{type: client_credentials, token_url: \"http://{closed}/internal/oidc/token\", client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}"
    );
    let gw = start_gateway_with(|db| config(db, &databricks(&mock, &auth), "")).await;
    let (status, body) = chat(&gw, KEY).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_credentials");
    assert_eq!(
        body["error"]["message"],
        "upstream p credentials unavailable: token endpoint could not be reached"
    );
    let text = body.to_string();
    for leak in [
        closed.to_string(),
        "/internal/oidc".into(),
        "refused".into(),
    ] {
        assert!(!text.contains(&leak), "{leak} in {text}");
    }
}

#[tokio::test]
async fn refresh_failure_is_a_502_with_a_clear_message_and_recovers() {
    let mock = start_mock_with(oauth_mock()).await;
    oauth_knobs(&mock, json!({"fail_status": 503})).await;
    let auth = sp_auth();
    let gw = start_gateway_with(|db| config(db, &databricks(&mock, &auth), "")).await;
    let (status, body) = chat(&gw, KEY).await;
    assert_eq!(status, 502, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("upstream p credentials unavailable")
            && msg.contains("HTTP 503")
            && msg.contains("temporarily_unavailable"),
        "{msg}"
    );
    assert_eq!(body["error"]["code"], "upstream_credentials");
    assert!(!body.to_string().contains(CLIENT_SECRET));
    // No request reached the model endpoint without a credential.
    assert!(upstream_auth(&mock, INVOCATIONS).await.is_empty());
    // The endpoint recovers: the next request after the failure hold fetches.
    oauth_knobs(&mock, json!({})).await;
    skip_clock(Duration::from_millis(1100)).await; // past the failure hold
    assert_eq!(chat(&gw, KEY).await.0, 200);
}

#[tokio::test]
async fn an_expired_token_that_cannot_be_refreshed_is_a_502_until_the_endpoint_recovers() {
    let mock = start_mock_with(MockOptions {
        token_ttl: Duration::from_secs(2),
        ..oauth_mock()
    })
    .await;
    let auth = sp_auth();
    let gw = start_gateway_with(|db| config(db, &databricks(&mock, &auth), "")).await;
    assert_eq!(chat(&gw, KEY).await.0, 200);
    // From now on every refresh fails; the cached token runs out.
    oauth_knobs(&mock, json!({"fail_status": 500})).await;
    skip_clock(Duration::from_millis(2500)).await;
    let (status, body) = chat(&gw, KEY).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("token endpoint returned HTTP 500"));
    // The endpoint recovers: the next request fetches a token itself.
    oauth_knobs(&mock, json!({})).await;
    skip_clock(Duration::from_millis(1100)).await; // past the failure hold
    assert_eq!(chat(&gw, KEY).await.0, 200);
    // Expired tokens were never sent: the mock would have answered 401.
    assert!(oauth_stats(&mock).await["failed"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn rejected_client_names_the_oauth_error_without_the_secret() {
    let mock = start_mock_with(oauth_mock()).await;
    let gw = start_gateway_with(|db| {
        let auth = format!(
            "{{type: client_credentials, client_id: {CLIENT_ID}, client_secret: not-the-one-9911}}"
        );
        config(db, &databricks(&mock, &auth), "")
    })
    .await;
    let (status, body) = chat(&gw, KEY).await;
    assert_eq!(status, 502);
    let text = body.to_string();
    assert!(
        text.contains("HTTP 401") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(!text.contains("not-the-one-9911"));
}

#[tokio::test]
async fn token_exchange_of_a_workload_token_file() {
    let mock = start_mock(None).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workload.jwt");
    std::fs::write(&file, sign(Algorithm::RS256, json!({"sub": "workload-7"}))).unwrap();
    let auth = format!(
        "{{type: token_exchange, subject: file, subject_token_file: {}, client_id: fed-sp}}",
        file.display()
    );
    let gw = start_gateway_with(|db| config(db, &databricks(&mock, &auth), "")).await;
    assert_eq!(chat(&gw, KEY).await.0, 200);
    assert_eq!(chat(&gw, KEY).await.0, 200);
    assert_eq!(oauth_stats(&mock).await["token_exchange"], 1);
    let seen = upstream_auth(&mock, INVOCATIONS).await;
    assert!(
        seen.iter().all(|a| a == "Bearer mock-at-1-fed-workload-7"),
        "{seen:?}"
    );
}

fn oidc_block(jwks: std::net::SocketAddr) -> String {
    format!(
        r#"auth:
  oidc:
    - issuer: {ISSUER}
      audiences: [tollgate]
      discovery: false
      jwks_url: http://{jwks}/jwks
policy:
  rules:
    - name: all
      principals: [alice, bob, carol]
      models: ["*"]
"#
    )
}

#[tokio::test]
async fn token_exchange_of_the_callers_jwt_is_cached_per_subject() {
    let mock = start_mock(None).await;
    let jwks = jwks_server().await;
    let gw = start_gateway_with(|db| {
        config(
            db,
            &databricks(&mock, "{type: token_exchange}"),
            &oidc_block(jwks),
        )
    })
    .await;
    let alice = sign(Algorithm::RS256, json!({"sub": "alice"}));
    let bob = sign(Algorithm::RS256, json!({"sub": "bob"}));
    // 20 concurrent calls by one subject: one exchange.
    let calls = (0..20).map(|_| chat(&gw, &alice));
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert_eq!(oauth_stats(&mock).await["token_exchange"], 1);
    assert_eq!(chat(&gw, &bob).await.0, 200);
    assert_eq!(oauth_stats(&mock).await["token_exchange"], 2);
    let seen = upstream_auth(&mock, INVOCATIONS).await;
    assert_eq!(
        seen.iter().filter(|a| a.ends_with("-fed-alice")).count(),
        20
    );
    assert_eq!(seen.iter().filter(|a| a.ends_with("-fed-bob")).count(), 1);
    // An API-key caller has no JWT to exchange: a clear 502.
    let (status, body) = chat(&gw, KEY).await;
    assert_eq!(status, 502);
    assert!(body
        .to_string()
        .contains("token exchange needs the caller's bearer JWT"));
}

#[tokio::test]
async fn passthrough_forwards_the_callers_own_token_unchanged() {
    let jwks = jwks_server().await;
    let jwt = sign(Algorithm::RS256, json!({"sub": "carol"}));
    // The upstream accepts exactly the caller's token.
    let mock = start_mock(Some(&jwt)).await;
    let gw = start_gateway_with(|db| {
        let provider = format!(
            "{}    headers: {{x-static: kept}}\n",
            databricks(&mock, "{type: passthrough}")
        );
        config(db, &provider, &oidc_block(jwks))
    })
    .await;
    assert_eq!(chat(&gw, &jwt).await.0, 200);
    assert_eq!(
        upstream_auth(&mock, INVOCATIONS).await,
        [format!("Bearer {jwt}")]
    );
    // An API-key caller's key is forwarded as is too (and rejected upstream).
    assert_eq!(chat(&gw, KEY).await.0, 502);
    assert_eq!(
        upstream_auth(&mock, INVOCATIONS).await[1],
        format!("Bearer {KEY}")
    );
}

#[tokio::test]
async fn azure_api_key_header_and_entra_id_bearer() {
    let mock = start_mock_with(MockOptions {
        require_key: Some("azure-key-123".into()),
        ..oauth_mock()
    })
    .await;
    let gw = start_gateway_with(|db| {
        let key = format!(
            "  - name: p\n    kind: azure_openai\n    base_url: http://{}\n    api_version: 2024-10-21\n    api_key: azure-key-123\n",
            mock.addr
        );
        let entra = format!(
            "  - name: q\n    kind: azure_openai\n    base_url: http://{a}\n    api_version: 2024-10-21\n    auth: {{type: client_credentials, token_url: http://{a}/oidc/v1/token, client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}\n",
            a = mock.addr
        );
        add_model(config(db, &format!("{key}{entra}"), ""), "entra", "q", "gpt4o-deploy")
    })
    .await;
    assert_eq!(chat(&gw, KEY).await.0, 200);
    assert_eq!(chat_status(&gw, KEY, "entra").await, 200);
    let recs = mock.received().await;
    let by_key = recs
        .iter()
        .find(|r| {
            r["path"] == "/openai/deployments/my-endpoint/chat/completions?api-version=2024-10-21"
        })
        .expect("api-key request");
    assert_eq!(by_key["headers"]["api-key"], "azure-key-123");
    assert!(by_key["headers"].get("authorization").is_none());
    let by_entra = recs
        .iter()
        .find(|r| {
            r["path"] == "/openai/deployments/gpt4o-deploy/chat/completions?api-version=2024-10-21"
        })
        .expect("entra request");
    assert!(by_entra["headers"]["authorization"]
        .as_str()
        .unwrap()
        .starts_with("Bearer mock-at-"));
    assert_eq!(
        oauth_stats(&mock).await["last_scope"],
        "https://cognitiveservices.azure.com/.default"
    );
}
