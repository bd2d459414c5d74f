//! JWT bearer tokens against a real OIDC issuer process: `oauth2-mock-server`
//! from npm (tests/oidc/issuer.mjs; `npm ci --prefix tests/oidc` installs it,
//! scripts/test.sh does that before `cargo test`).

use crate::common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The issuer process and its control API.
struct Idp {
    issuer: String,
    control: String,
    _child: Child,
}

impl Idp {
    async fn start() -> Idp {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc");
        assert!(
            dir.join("node_modules/oauth2-mock-server").exists(),
            "the test issuer is not installed: run `npm ci --prefix tests/oidc` (scripts/test.sh does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("issuer.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed to run the OIDC tests");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("issuer started within 30s")
        .unwrap();
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        Idp {
            issuer: info["issuer"].as_str().unwrap().to_owned(),
            control: info["control"].as_str().unwrap().to_owned(),
            _child: child,
        }
    }

    async fn call(&self, path: &str, body: Value) -> String {
        let resp = client()
            .post(format!("{}{path}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        text
    }

    async fn sign(&self, body: Value) -> String {
        self.call("/sign", body).await
    }

    async fn rotate(&self, alg: &str) -> String {
        let v: Value =
            serde_json::from_str(&self.call("/rotate", json!({"alg": alg})).await).unwrap();
        v["kid"].as_str().unwrap().to_owned()
    }

    async fn stop(&self) {
        self.call("/stop", json!({})).await;
    }
}

fn config(issuer: &str, db: &str) -> String {
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
  - name: chat-eng
    provider: local
  - name: acme-chat
    provider: local
    tenant: acme
  - name: globex-chat
    provider: local
    tenant: globex
  - name: ops-only
    provider: local
keys:
  - id: acme-app
    hash: {acme}
    principal: acme-app
    kind: service
    tenant: acme
    models: ["*"]
auth:
  oidc:
    - issuer: {issuer}
      audiences: [tollgate, other-api]
      leeway: 5s
      unknown_kid_refresh: 1s
      claims:
        groups: realm_access.roles
        tenant: tid
        kind_claim: gty
        service_values: [client-credentials]
policy:
  rules:
    - name: everyone
      kinds: [user, service]
      models: [chat-local]
    - name: eng
      groups: [eng]
      models: ["chat-*"]
    - name: acme
      tenants: [acme]
      models: ["acme-*"]
    - name: globex
      tenants: [globex]
      models: ["globex-*"]
    - name: ops
      groups: [ops]
      models: [ops-only]
      admin: true
"#,
        acme = hash(ACME_KEY),
    )
}

const ACME_KEY: &str = "tg-acme-tenant-key";

async fn start(idp: &Idp) -> Gateway {
    let iss = idp.issuer.clone();
    start_gateway_with(|db| config(&iss, db)).await
}

async fn chat(gw: &Gateway, token: &str, model: &str) -> (u16, Value) {
    let resp = post(
        gw,
        "/v1/chat/completions",
        Some(token),
        &chat_body(model, "hi"),
    )
    .await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn model_ids(gw: &Gateway, token: &str) -> Vec<String> {
    let v: Value = client()
        .get(gw.url("/v1/models"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn alice() -> Value {
    json!({"sub": "alice", "tid": "acme", "realm_access": {"roles": ["eng"]}})
}

#[tokio::test]
async fn tokens_of_every_algorithm_are_accepted_and_recorded() {
    let idp = Idp::start().await;
    let mut gw = start(&idp).await;
    let mut ids = Vec::new();
    for alg in ["RS256", "ES256", "EdDSA"] {
        let token = idp.sign(json!({"alg": alg, "claims": alice()})).await;
        let resp = post(
            &gw,
            "/v1/chat/completions",
            Some(&token),
            &chat_body("chat-eng", "x"),
        )
        .await;
        assert_eq!(resp.status(), 200, "{alg}: {}", resp.text().await.unwrap());
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    // A second audience from the list works too; aud may be a list.
    let token = idp
        .sign(json!({"claims": {"sub": "alice", "aud": ["x", "other-api"]}}))
        .await;
    assert_eq!(chat(&gw, &token, "chat-local").await.0, 200);

    // /v1/models: exactly what the principal may use (everyone + eng + tenant acme).
    let token = idp.sign(json!({"claims": alice()})).await;
    assert_eq!(
        model_ids(&gw, &token).await,
        ["chat-local", "chat-eng", "acme-chat"]
    );

    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    for id in &ids {
        let r = recs.iter().find(|r| &r.request_id == id).unwrap();
        assert_eq!(r.principal, "alice");
        assert_eq!(r.tenant, "acme");
        assert_eq!(r.auth_method, "jwt");
        assert_eq!(r.issuer, idp.issuer);
        assert_eq!(r.key_id, "");
        assert_eq!(r.status, 200);
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_failed_check() {
    let idp = Idp::start().await;
    let gw = start(&idp).await;
    // Keys are cached by the first good request.
    let good = idp.sign(json!({"claims": alice()})).await;
    assert_eq!(chat(&gw, &good, "chat-local").await.0, 200);

    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "expired",
            json!({"expiresIn": -600, "claims": alice()}),
            "token expired",
            "token_expired",
        ),
        (
            "wrong audience",
            json!({"claims": {"sub": "a", "aud": "someone-else"}}),
            "audience not accepted",
            "audience_not_accepted",
        ),
        (
            "no audience",
            json!({"claims": {"sub": "a", "aud": null}}),
            "audience not accepted",
            "audience_not_accepted",
        ),
        (
            "wrong issuer",
            json!({"claims": {"sub": "a", "iss": "https://evil.example"}}),
            "issuer `https://evil.example` is not accepted",
            "issuer_not_accepted",
        ),
        (
            "not yet valid",
            json!({"claims": {"sub": "a", "nbf": 4_000_000_000u64}}),
            "not valid yet",
            "token_not_yet_valid",
        ),
        (
            "tampered",
            json!({"forge": "tamper", "claims": alice()}),
            "signature is invalid",
            "invalid_signature",
        ),
        (
            "alg none",
            json!({"forge": "none", "claims": alice()}),
            "algorithm `none` is not accepted",
            "alg_none",
        ),
        (
            "HS256 with the public key",
            json!({"forge": "hs256-pubkey", "claims": alice()}),
            "algorithm `HS256` is not accepted",
            "alg_not_allowed",
        ),
        (
            "unknown kid",
            json!({"header": {"kid": "no-such-key"}, "claims": alice()}),
            "unknown signing key `no-such-key`",
            "unknown_signing_key",
        ),
        (
            "no subject",
            json!({"claims": {"sub": null}}),
            "no `sub` claim",
            "missing_claim",
        ),
    ];
    for (name, req, message, reason) in cases {
        let token = idp.sign(req).await;
        let resp = post(
            &gw,
            "/v1/chat/completions",
            Some(&token),
            &chat_body("chat-local", "x"),
        )
        .await;
        assert_eq!(resp.status(), 401, "{name}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{name}");
        let body: Value = resp.json().await.unwrap();
        let text = body.to_string();
        assert_eq!(
            body["error"]["type"], "authentication_error",
            "{name}: {text}"
        );
        assert_eq!(body["error"]["code"], "invalid_token", "{name}: {text}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(message),
            "{name}: {text}"
        );
        // Never echo the token (nor its signature).
        let sig = token.rsplit('.').next().unwrap();
        assert!(
            !text.contains(&token) && (sig.is_empty() || !text.contains(sig)),
            "{name}: {text}"
        );
        let metrics = metrics_text(&gw).await;
        assert!(
            metrics.contains(&format!(
                "tollgate_auth_failures_total{{reason=\"{reason}\"}}"
            )),
            "{name}: no {reason} in metrics"
        );
    }
    // Valid tokens still pass after all that.
    assert_eq!(chat(&gw, &good, "chat-local").await.0, 200);
}

#[tokio::test]
async fn key_rotation_at_the_issuer_is_picked_up() {
    let idp = Idp::start().await;
    let gw = start(&idp).await;
    let before = idp.sign(json!({"claims": alice()})).await;
    assert_eq!(chat(&gw, &before, "chat-local").await.0, 200);

    // A new key the gateway has never seen: the unknown kid triggers one refresh.
    let kid = idp.rotate("RS256").await;
    let after = idp.sign(json!({"kid": kid, "claims": alice()})).await;
    let (status, body) = chat(&gw, &after, "chat-local").await;
    assert_eq!(status, 200, "{body}");
    // The previous key is still published, so its tokens still work.
    assert_eq!(chat(&gw, &before, "chat-local").await.0, 200);

    // Rotating to ES256 and EdDSA keys too.
    for alg in ["ES256", "EdDSA"] {
        let kid = idp.rotate(alg).await;
        // Let the unknown-kid cooldown (1s) pass since the last refresh.
        skip_clock(Duration::from_millis(1100)).await;
        let token = idp
            .sign(json!({"alg": alg, "kid": kid, "claims": alice()}))
            .await;
        let (status, body) = chat(&gw, &token, "chat-local").await;
        assert_eq!(status, 200, "{alg}: {body}");
    }
}

#[tokio::test]
async fn issuer_going_down_does_not_break_cached_keys() {
    let idp = Idp::start().await;
    let gw = start(&idp).await;
    let token = idp.sign(json!({"claims": alice()})).await;
    assert_eq!(chat(&gw, &token, "chat-eng").await.0, 200);

    idp.stop().await;
    // Keys already cached keep verifying, for old and newly minted tokens.
    assert_eq!(chat(&gw, &token, "chat-eng").await.0, 200);
    let fresh = idp.sign(json!({"alg": "ES256", "claims": alice()})).await;
    assert_eq!(chat(&gw, &fresh, "chat-eng").await.0, 200);

    // An unknown kid now triggers a refresh that fails: refused, cache intact.
    let unknown = idp
        .sign(json!({"header": {"kid": "rotated-while-down"}, "claims": alice()}))
        .await;
    let (status, body) = chat(&gw, &unknown, "chat-eng").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("unknown signing key"), "{body}");
    assert_eq!(chat(&gw, &token, "chat-eng").await.0, 200);
    assert_eq!(chat(&gw, &fresh, "chat-eng").await.0, 200);
}

#[tokio::test]
async fn groups_and_tenants_decide_access() {
    let idp = Idp::start().await;
    let gw = start(&idp).await;

    // A globex user: its tenant's model, the shared one; not acme's.
    let globex = idp
        .sign(json!({"claims": {"sub": "gina", "tid": "globex", "realm_access": {"roles": ["sales"]}}}))
        .await;
    assert_eq!(model_ids(&gw, &globex).await, ["chat-local", "globex-chat"]);
    assert_eq!(chat(&gw, &globex, "globex-chat").await.0, 200);
    let (status, body) = chat(&gw, &globex, "acme-chat").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["type"], "permission_error");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("model `acme-chat` is not granted to principal `gina`"),
        "{msg}"
    );
    assert!(msg.contains("groups: sales; tenant: globex"), "{msg}");
    // eng is a group grant: gina has none.
    assert_eq!(chat(&gw, &globex, "chat-eng").await.0, 403);

    // Even an ops admin of tenant acme cannot cross into globex's model.
    let ops = idp
        .sign(json!({"claims": {"sub": "olga", "tid": "acme", "realm_access": {"roles": ["ops", "eng"]}}}))
        .await;
    assert_eq!(
        model_ids(&gw, &ops).await,
        ["chat-local", "chat-eng", "acme-chat", "ops-only"]
    );
    assert_eq!(chat(&gw, &ops, "globex-chat").await.0, 403);

    // A service token (client credentials), no tenant: only the shared model.
    let svc = idp
        .sign(json!({"claims": {"sub": "batch-job", "gty": "client-credentials"}}))
        .await;
    assert_eq!(model_ids(&gw, &svc).await, ["chat-local"]);

    // The acme tenant's API key: its own grant says "*", but other tenants'
    // models stay out of reach.
    assert_eq!(
        model_ids(&gw, ACME_KEY).await,
        ["chat-local", "chat-eng", "acme-chat", "ops-only"]
    );
    assert_eq!(chat(&gw, ACME_KEY, "acme-chat").await.0, 200);
    let (status, body) = chat(&gw, ACME_KEY, "globex-chat").await;
    assert_eq!(status, 403, "{body}");

    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains("tollgate_access_denied_total{reason=\"tenant_mismatch\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tollgate_access_denied_total{reason=\"model_forbidden\"}"));
}

#[tokio::test]
async fn token_inspect_explains_a_token() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("i.db").display());
    let cfg = tollgate::config::parse_str(&config(&idp.issuer, &db)).unwrap();
    let snap = tollgate::snapshot::Snapshot::build(cfg, None).unwrap();
    let empty = tollgate::auth::KeyIndex::default();
    let ops = idp
        .sign(json!({"claims": {"sub": "olga", "tid": "acme", "realm_access": {"roles": ["ops"]}}}))
        .await;
    let r = tollgate::auth::inspect::inspect(
        &snap.credentials(&empty),
        &snap.policy,
        snap.models_with_owner(),
        &ops,
    )
    .await;
    assert!(r.valid, "{}", r.render());
    assert_eq!(r.issuer.as_deref(), Some(idp.issuer.as_str()));
    assert!(r.admin);
    let p = r.principal.as_ref().unwrap();
    assert_eq!(
        (p.subject.as_str(), p.tenant.as_deref()),
        ("olga", Some("acme"))
    );
    let allowed: Vec<_> = r
        .models
        .iter()
        .filter(|m| m.allowed)
        .map(|m| m.model.as_str())
        .collect();
    assert_eq!(allowed, ["chat-local", "acme-chat", "ops-only"]);
    assert!(r.render().contains("rule:ops"), "{}", r.render());

    let expired = idp
        .sign(json!({"expiresIn": -600, "claims": alice()}))
        .await;
    let r = tollgate::auth::inspect::inspect(
        &snap.credentials(&empty),
        &snap.policy,
        snap.models_with_owner(),
        &expired,
    )
    .await;
    assert!(!r.valid);
    assert_eq!(r.failure_reason, Some("token_expired"));
    assert!(!r.principal_verified);
    assert_eq!(r.principal.as_ref().unwrap().subject, "alice");
    assert!(
        r.render().contains("REJECTED (token_expired)"),
        "{}",
        r.render()
    );
}
