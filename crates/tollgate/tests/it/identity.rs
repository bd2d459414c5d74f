//! Identity without an identity provider process: API-key expiry, tenants
//! and rotation, the policy over API keys, tokens signed with the fixture
//! keys (tests/fixtures/jwt) against a JWKS served from this test, and a
//! gateway that starts while its identity provider is down.

use crate::common;

use std::net::SocketAddr;

use common::jwt::{fixture, jwks_server, sign};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tollgate::config::PrincipalKind;
use tollgate::store::NewKey;

const TENANT_KEY: &str = "tg-tenant-acme";
const OLD_KEY: &str = "tg-expired-in-2020";

fn config(jwks: SocketAddr, db: &str) -> String {
    format!(
        r#"
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
storage:
  url: {db}
  key_refresh: 100ms
ledger:
  flush_interval: 20ms
providers:
  - name: local
    kind: mock
models:
  - name: chat-local
    provider: local
  - name: acme-chat
    provider: local
    tenant: acme
  - name: globex-chat
    provider: local
    tenant: globex
  - name: reports
    provider: local
keys:
  - id: acme-key
    hash: {tenant}
    principal: acme-app
    tenant: acme
    models: ["*"]
  - id: old
    hash: {old}
    principal: retired
    models: ["*"]
    expires: 2020-01-01T00:00:00Z
auth:
  oidc:
    - issuer: https://idp.test.example
      audiences: [tollgate]
      discovery: false
      jwks_url: http://{jwks}/jwks
      claims:
        groups: scp
        tenant: org.id
policy:
  rules:
    - name: readers
      groups: [reports.read]
      principals: [bob]
      models: [reports]
    - name: acme
      tenants: [acme]
      models: ["acme-*", chat-local]
"#,
        tenant = hash(TENANT_KEY),
        old = hash(OLD_KEY),
    )
}

async fn start() -> Gateway {
    let jwks = jwks_server().await;
    start_gateway_with(|db| config(jwks, db)).await
}

async fn status_and_body(gw: &Gateway, key: &str, model: &str) -> (u16, Value) {
    let resp = post(
        gw,
        "/v1/chat/completions",
        Some(key),
        &chat_body(model, "x"),
    )
    .await;
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn models(gw: &Gateway, key: &str) -> Vec<String> {
    let v = get_json(gw, "/v1/models", key).await;
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_status(gw: &Gateway, key: &str, model: &str, want: u16) -> (u16, Value) {
    poll_until(
        async || status_and_body(gw, key, model).await,
        |(status, _)| *status == want,
    )
    .await
}

#[tokio::test]
async fn expired_config_key_is_refused_with_the_reason() {
    let gw = start().await;
    let (status, body) = status_and_body(&gw, OLD_KEY, "chat-local").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "expired_api_key");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("API key `old` expired at 2020-01-01T00:00:00Z"),
        "{msg}"
    );
}

#[tokio::test]
async fn tenant_key_stays_inside_its_tenant() {
    let gw = start().await;
    assert_eq!(
        models(&gw, TENANT_KEY).await,
        ["chat-local", "acme-chat", "reports"]
    );
    assert_eq!(status_and_body(&gw, TENANT_KEY, "acme-chat").await.0, 200);
    let (status, body) = status_and_body(&gw, TENANT_KEY, "globex-chat").await;
    assert_eq!(status, 403);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("model `globex-chat` is not granted to principal `acme-app` (groups: none; tenant: acme; kind: user)"),
        "{msg}"
    );

    // A store key for tenant globex, granted nothing itself: tenant models
    // only through policy (none for globex), so nothing but its own tenant...
    let store = tollgate::store::Store::open(&gw.db_url).await.unwrap();
    let key = tollgate::auth::generate_key();
    store
        .create(&NewKey {
            id: "globex-1".into(),
            hash: hash(&key),
            principal: "globex-app".into(),
            kind: PrincipalKind::Service,
            models: vec!["globex-*".into(), "acme-*".into()],
            tenant: Some("globex".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    assert_eq!(wait_status(&gw, &key, "globex-chat", 200).await.0, 200);
    // Its own grant names acme-*, but acme-chat belongs to another tenant.
    assert_eq!(status_and_body(&gw, &key, "acme-chat").await.0, 403);
    assert_eq!(models(&gw, &key).await, ["globex-chat"]);

    let mut gw = gw;
    let recs = gw.stop().await.usage_since(0).await.unwrap();
    let r = recs
        .iter()
        .find(|r| r.principal == "globex-app" && r.status == 200)
        .unwrap();
    assert_eq!(
        (r.tenant.as_str(), r.auth_method.as_str(), r.key_id.as_str()),
        ("globex", "api_key", "globex-1")
    );
    let denied = recs
        .iter()
        .find(|r| r.principal == "globex-app" && r.status == 403)
        .unwrap();
    assert_eq!(denied.error, "tenant_mismatch");
}

#[tokio::test]
async fn rotated_key_overlaps_then_old_one_expires() {
    let gw = start().await;
    let store = tollgate::store::Store::open(&gw.db_url).await.unwrap();
    let old = tollgate::auth::generate_key();
    store
        .create(&NewKey {
            id: "ci-bot".into(),
            hash: hash(&old),
            principal: "ci".into(),
            groups: vec!["reports.read".into()],
            models: vec!["chat-local".into()],
            tenant: Some("acme".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    assert_eq!(wait_status(&gw, &old, "chat-local", 200).await.0, 200);

    let new = tollgate::auth::generate_key();
    let rotated = store
        .rotate_key("ci-bot", None, &hash(&new), 1500, None)
        .await
        .unwrap();
    assert_eq!(rotated.new_id, "ci-bot-v2");
    let keys = store.list_keys().await.unwrap();
    let v2 = keys.iter().find(|k| k.id == "ci-bot-v2").unwrap();
    assert_eq!(
        (v2.principal.as_str(), v2.tenant.as_deref()),
        ("ci", Some("acme"))
    );
    assert_eq!(
        (v2.groups.clone(), v2.models.clone()),
        (
            vec!["reports.read".to_string()],
            vec!["chat-local".to_string()]
        )
    );

    // Both work during the overlap, with the same grants (policy included).
    assert_eq!(wait_status(&gw, &new, "reports", 200).await.0, 200);
    assert_eq!(status_and_body(&gw, &old, "reports").await.0, 200);
    // Then the old one expires, with a reason.
    let (status, body) = wait_status(&gw, &old, "chat-local", 401).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key `ci-bot` expired at"),
        "{body}"
    );
    assert_eq!(status_and_body(&gw, &new, "chat-local").await.0, 200);
    // Rotating again names the next version; the expired key cannot be rotated.
    let again = store
        .rotate_key("ci-bot-v2", None, &hash("x-new"), 1000, None)
        .await
        .unwrap();
    assert_eq!(again.new_id, "ci-bot-v3");
    assert!(store
        .rotate_key("ci-bot", None, &hash("y"), 1000, None)
        .await
        .is_err());
}

#[tokio::test]
async fn fixture_tokens_map_claims_and_policy() {
    let gw = start().await;
    for alg in [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        // `scp` as a space-separated string, tenant from a nested claim.
        let token = sign(
            alg,
            json!({"sub": "carol", "scp": "reports.read openid", "org": {"id": "acme"}}),
        );
        assert_eq!(
            models(&gw, &token).await,
            ["chat-local", "acme-chat", "reports"],
            "{alg:?}"
        );
        assert_eq!(
            status_and_body(&gw, &token, "reports").await.0,
            200,
            "{alg:?}"
        );
    }
    // The principal selector: bob may read reports without the scope.
    let bob = sign(Algorithm::ES256, json!({"sub": "bob"}));
    assert_eq!(models(&gw, &bob).await, ["reports"]);
    // A token with nothing granted sees nothing.
    let nobody = sign(Algorithm::ES256, json!({"sub": "nobody"}));
    assert!(models(&gw, &nobody).await.is_empty());
    assert_eq!(status_and_body(&gw, &nobody, "chat-local").await.0, 403);
    // PS256 is accepted by default, RS384 is not configured for this issuer.
    let rs384 = sign(Algorithm::RS384, json!({"sub": "carol"}));
    let (status, body) = status_and_body(&gw, &rs384, "chat-local").await;
    assert_eq!(status, 401);
    assert!(
        body.to_string().contains("`RS384` is not accepted"),
        "{body}"
    );
    // A token claiming the EC key but signed with ES256 over the RSA key id.
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("test-rsa".into());
    let now = jsonwebtoken::get_current_timestamp();
    let mismatched = jsonwebtoken::encode(
        &h,
        &json!({"iss": "https://idp.test.example", "aud": "tollgate", "sub": "x", "exp": now + 60}),
        &EncodingKey::from_ec_pem(&fixture("ec.pem")).unwrap(),
    )
    .unwrap();
    let (status, body) = status_and_body(&gw, &mismatched, "chat-local").await;
    assert_eq!(status, 401);
    assert!(
        body.to_string()
            .contains("does not match signing key `test-rsa` (RSA)"),
        "{body}"
    );
}

#[tokio::test]
async fn gateway_starts_while_the_identity_provider_is_down() {
    let dead = dead_addr().await;
    let mut gw = start_gateway_with(|db| config(dead, db)).await;
    let token = sign(Algorithm::RS256, json!({"sub": "carol"}));
    let (status, body) = status_and_body(&gw, &token, "chat-local").await;
    assert_eq!(status, 401);
    assert!(
        body.to_string().contains("no signing keys for issuer"),
        "{body}"
    );
    // API keys are unaffected.
    assert_eq!(status_and_body(&gw, TENANT_KEY, "acme-chat").await.0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn token_inspect_explains_an_api_key() {
    let jwks = jwks_server().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("i.db").display());
    let cfg = tollgate::config::parse_str(&config(jwks, &db)).unwrap();
    let snap = tollgate::snapshot::Snapshot::build(cfg, None).unwrap();
    let empty = tollgate::auth::KeyIndex::default();
    let creds = snap.credentials(&empty);
    let r = tollgate::auth::inspect::inspect(
        &creds,
        &snap.policy,
        snap.models_with_owner(),
        TENANT_KEY,
    )
    .await;
    assert!(r.valid);
    assert_eq!(r.credential, "api_key");
    let p = r.principal.as_ref().unwrap();
    assert_eq!(
        (p.key_id.as_deref(), p.tenant.as_deref()),
        (Some("acme-key"), Some("acme"))
    );
    let view: Vec<_> = r
        .models
        .iter()
        .map(|m| (m.model.as_str(), m.why.as_str()))
        .collect();
    assert_eq!(
        view,
        [
            ("chat-local", "key"),
            ("acme-chat", "key"),
            ("globex-chat", "tenant_mismatch"),
            ("reports", "key")
        ]
    );
    let r =
        tollgate::auth::inspect::inspect(&creds, &snap.policy, snap.models_with_owner(), OLD_KEY)
            .await;
    assert_eq!(r.failure_reason, Some("key_expired"));
    let r =
        tollgate::auth::inspect::inspect(&creds, &snap.policy, snap.models_with_owner(), "nope")
            .await;
    assert_eq!(r.failure_reason, Some("invalid_key"));
    assert!(r.principal.is_none());
    // A key the store holds as revoked says so (the CLI passes the store's
    // revoked keys); another unknown key stays `invalid_key`.
    let stored = tollgate::auth::format_hash(&tollgate::auth::hash_key("nope"));
    let mut revoked = r;
    revoked.note_revoked(
        "Bearer nope",
        [("old-ci", stored.as_str(), 1_796_083_200_000)],
    );
    assert_eq!(revoked.failure_reason, Some("key_revoked"));
    assert_eq!(
        revoked.failure.as_deref(),
        Some("API key `old-ci` was revoked at 2026-12-01T00:00:00Z")
    );
    assert!(revoked.render().contains("REJECTED (key_revoked)"));
    let mut other =
        tollgate::auth::inspect::inspect(&creds, &snap.policy, snap.models_with_owner(), "nah")
            .await;
    other.note_revoked("nah", [("old-ci", stored.as_str(), 1_796_083_200_000)]);
    assert_eq!(other.failure_reason, Some("invalid_key"));
    // A token: fetched keys, verified claims, and the rule that grants.
    let token = sign(Algorithm::EdDSA, json!({"sub": "bob"}));
    let r = tollgate::auth::inspect::inspect(
        &creds,
        &snap.policy,
        snap.models_with_owner(),
        &format!("Bearer {token}"),
    )
    .await;
    assert!(r.valid, "{}", r.render());
    assert_eq!(r.kid.as_deref(), Some("test-ed"));
    assert_eq!(r.rules, ["readers"]);
}

#[tokio::test]
async fn key_caches_survive_reloads_unless_their_source_changes() {
    let jwks = jwks_server().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let text = config(jwks, &db);
    let build = |text: &str, prev: Option<&tollgate::snapshot::Snapshot>| {
        let cfg = tollgate::config::parse_str(text).unwrap();
        tollgate::snapshot::Snapshot::build(cfg, prev).unwrap()
    };
    let a = build(&text, None);
    let cache_a = a.issuers.all()[0].jwks.clone();
    assert_eq!(cache_a.refresh().await.unwrap(), 3);
    // Claims mapping and audiences changed: same key source, same cache.
    let b = build(
        &text.replace("audiences: [tollgate]", "audiences: [tollgate, x]"),
        Some(&a),
    );
    assert!(std::sync::Arc::ptr_eq(&cache_a, &b.issuers.all()[0].jwks));
    let token = sign(Algorithm::RS256, json!({"sub": "carol"}));
    assert!(b.issuers.verify_offline(&token).is_ok());
    // A different JWKS URL: a new, empty cache.
    let c = build(&text.replace("/jwks\n", "/other-jwks\n"), Some(&b));
    assert!(!std::sync::Arc::ptr_eq(&cache_a, &c.issuers.all()[0].jwks));
    assert!(c.issuers.all()[0].jwks.keys().is_empty());
}

/// Policy rules on token claims: booleans, strings, numbers, arrays and
/// space-separated scopes, custom and nested claims, alone or with a
/// selector; API keys (no claims) never match them.
#[tokio::test]
async fn policy_rules_match_token_claims() {
    let jwks = jwks_server().await;
    let mut gw = start_gateway_with(|db| {
        config(jwks, db).replace(
            "models:\n  - name: chat-local\n",
            "models:\n  - name: verified-chat\n    provider: local\n  - name: scoped-chat\n    provider: local\n  - name: custom-chat\n    provider: local\n  - name: chat-local\n",
        ) + r#"    - name: verified
      claims:
        - { claim: email_verified, equals: true }
        - { claim: azp, equals: reporting-ui }
      models: [verified-chat]
    - name: scoped
      principals: [carol]
      claims: [{ claim: scope, contains: chat.write }]
      models: [scoped-chat]
    - name: custom
      claims:
        - { claim: ext.level, equals: 3 }
        - { claim: roles, contains: analyst }
      models: [custom-chat]
"#
    })
    .await;
    let token = |claims: Value| sign(Algorithm::EdDSA, claims);
    let verified = token(json!({"sub": "dan", "email_verified": true, "azp": "reporting-ui"}));
    assert_eq!(
        status_and_body(&gw, &verified, "verified-chat").await.0,
        200
    );
    for refused in [
        json!({"sub": "dan", "email_verified": false, "azp": "reporting-ui"}),
        json!({"sub": "dan", "email_verified": "true", "azp": "reporting-ui"}),
        json!({"sub": "dan", "email_verified": true, "azp": "other-app"}),
        json!({"sub": "dan", "azp": "reporting-ui"}),
    ] {
        let (status, body) = status_and_body(&gw, &token(refused.clone()), "verified-chat").await;
        assert_eq!(status, 403, "{refused}: {body}");
    }
    // A claim condition narrows a selector: carol with the scope only.
    let carol = |scope: &str| token(json!({"sub": "carol", "scope": scope}));
    assert_eq!(
        status_and_body(&gw, &carol("chat.read chat.write"), "scoped-chat")
            .await
            .0,
        200
    );
    assert_eq!(
        status_and_body(&gw, &carol("chat.read"), "scoped-chat")
            .await
            .0,
        403
    );
    assert_eq!(
        status_and_body(&gw, &carol("chat.writer"), "scoped-chat")
            .await
            .0,
        403
    );
    let erin = token(json!({"sub": "erin", "scope": "chat.write"}));
    assert_eq!(status_and_body(&gw, &erin, "scoped-chat").await.0, 403);
    // Nested custom claims and arrays.
    let analyst = token(json!({"sub": "fay", "ext": {"level": 3}, "roles": ["viewer", "analyst"]}));
    assert_eq!(status_and_body(&gw, &analyst, "custom-chat").await.0, 200);
    let viewer = token(json!({"sub": "fay", "ext": {"level": 3}, "roles": ["viewer"]}));
    assert_eq!(status_and_body(&gw, &viewer, "custom-chat").await.0, 403);
    let low = token(json!({"sub": "fay", "ext": {"level": 2}, "roles": ["analyst"]}));
    assert_eq!(status_and_body(&gw, &low, "custom-chat").await.0, 403);
    assert!(models(&gw, &analyst)
        .await
        .contains(&"custom-chat".to_string()));
    assert!(!models(&gw, &viewer)
        .await
        .contains(&"custom-chat".to_string()));
    gw.stop().await;

    // An API key has no claims: a rule on claims never applies to it.
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let cfg = config(jwks, &db)
        + "    - name: any-verified\n      claims: [{ claim: email_verified, equals: true }]\n      admin: true\n";
    let snap =
        tollgate::snapshot::Snapshot::build(tollgate::config::parse_str(&cfg).unwrap(), None)
            .unwrap();
    let empty = tollgate::auth::KeyIndex::default();
    let r = tollgate::auth::inspect::inspect(
        &snap.credentials(&empty),
        &snap.policy,
        snap.models_with_owner(),
        TENANT_KEY,
    )
    .await;
    assert!(r.valid);
    assert_eq!(r.rules, ["acme"]);
    assert!(!r.admin);
}
