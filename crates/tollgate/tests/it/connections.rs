//! Outbound connections (docs/connections.md): the credential is injected
//! server-side only for granted principals, never reaches the caller (also
//! when the upstream echoes it, in headers and in a streamed body), and a
//! refused call reveals no named secret.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tollgate_core::error::GatewayError;
use tollgate_core::secret::{SecretSource, SecretValue};

use crate::common::echo::start_echo;
use crate::common::*;

const ALICE: &str = "tg-conn-alice";
const BOB: &str = "tg-conn-bob";
const CRM_SECRET: &str = "crm-secret-abcdef123456";
const VENDOR_SECRET: &str = "vendor-inline-secret-999";

/// A secret source that counts what it reveals.
#[derive(Default)]
struct Counting {
    reveals: AtomicUsize,
}

impl SecretSource for Counting {
    fn reveal(&self, name: &str) -> Result<Option<SecretValue>, GatewayError> {
        self.reveals.fetch_add(1, Ordering::SeqCst);
        Ok((name == "crm-token").then(|| SecretValue::new(CRM_SECRET)))
    }
}

#[tokio::test]
async fn connections_inject_scrub_and_refuse_without_revealing() {
    let echo = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let config = format!(
        r#"{head}
connections:
  - name: crm
    base_url: {base}/api
    credential: {{ type: bearer, secret: crm-token }}
    methods: [GET, POST]
    paths: [/v1]
  - name: vendor
    base_url: {base}
    credential: {{ type: header, header: x-api-key, value: {VENDOR_SECRET} }}
keys:
  - {{ id: alice, hash: {ha}, principal: alice, groups: [sales] }}
  - {{ id: bob, hash: {hb}, principal: bob, models: ["*"] }}
policy:
  rules:
    - {{ name: sales, groups: [sales], connections: [crm, vendor] }}
"#,
        head = config_head(&db),
        base = echo.base(),
        ha = hash(ALICE),
        hb = hash(BOB),
    );
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, config).unwrap();
    let secrets = Arc::new(Counting::default());
    let running = tollgate::server::start_with_secrets(&path, secrets.clone())
        .await
        .unwrap();
    let url = |p: &str| format!("http://{}{p}", running.addr);
    let get = |key: &'static str, p: String| async move {
        client().get(p).bearer_auth(key).send().await.unwrap()
    };

    // No grant: 403, nothing revealed, nothing sent.
    let r = get(BOB, url("/connections/crm/v1/contacts")).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "connection_not_allowed", "{body}");
    assert_eq!(secrets.reveals.load(Ordering::SeqCst), 0);
    assert!(echo.received().is_empty());

    // Granted: the secret is injected upstream; the upstream echoes it in a
    // header and the body, and the caller sees neither.
    let r = get(ALICE, url("/connections/crm/v1/contacts?limit=2")).await;
    assert_eq!(r.status(), 200);
    let headers = format!("{:?}", r.headers());
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(CRM_SECRET) && !headers.contains(CRM_SECRET),
        "{headers} {text}"
    );
    assert!(text.contains("[redacted]"), "{text}");
    assert_eq!(secrets.reveals.load(Ordering::SeqCst), 1);
    let got = echo.received();
    assert_eq!(got[0].uri, "/api/v1/contacts?limit=2");
    assert_eq!(
        got[0].headers["authorization"],
        format!("Bearer {CRM_SECRET}").as_str()
    );
    assert!(!format!("{:?}", got[0].headers).contains(ALICE));

    // Streamed: the echoed secret arrives split across chunks, still scrubbed.
    let r = get(ALICE, url("/connections/crm/v1/stream")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with("begin ") && text.ends_with(" end"),
        "{text}"
    );
    assert!(
        !text.contains(CRM_SECRET) && !text.contains("abcdef123456"),
        "{text}"
    );

    // Outside the allow-lists: refused before anything is revealed.
    let before = secrets.reveals.load(Ordering::SeqCst);
    let r = get(ALICE, url("/connections/crm/v2/admin")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "path_not_allowed"
    );
    let r = client()
        .delete(url("/connections/crm/v1/contacts/1"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = get(ALICE, url("/connections/crm/v1/../../admin")).await;
    assert_ne!(r.status(), 200);
    assert_eq!(secrets.reveals.load(Ordering::SeqCst), before);
    let r = get(ALICE, url("/connections/nope/x")).await;
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());

    // A header credential from the config, scrubbed the same way.
    let r = get(ALICE, url("/connections/vendor/items")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains(VENDOR_SECRET), "{text}");
    let last = echo.received().pop().unwrap();
    assert_eq!(last.headers["x-api-key"], VENDOR_SECRET);
    assert!(last.headers.get("authorization").is_none());
    assert_eq!(echo.received().len(), 3);

    running.shutdown();
    running.wait().await.unwrap();
    let store = tollgate::store::Store::open(&db).await.unwrap();
    let recs = wait_records(&store, 8).await;
    assert!(recs
        .iter()
        .any(|r| r.endpoint == "connection" && r.requested_model == "crm" && r.status == 200));
    assert!(recs
        .iter()
        .any(|r| r.status == 403 && r.error == "connection_forbidden"));
}

/// The other credential shapes of a connection, asserted on what the
/// upstream receives: `basic` from the config (the same answer scrubbed on
/// every call, the second one served by the reused matcher) and `caller`
/// (each caller's own token passed on, and scrubbed from that caller's
/// answer, never mixed up with another caller's).
#[tokio::test]
async fn basic_and_caller_credentials_reach_the_upstream_and_are_scrubbed() {
    const PASSWORD: &str = "basic-pass-7d1e0c";
    let echo = start_echo().await;
    let gw = start_gateway_with(|db| {
        format!(
            r#"{head}
connections:
  - name: legacy
    base_url: {base}
    credential: {{ type: basic, username: svc, value: {PASSWORD} }}
  - name: mine
    base_url: {base}
    credential: {{ type: caller }}
keys:
  - {{ id: alice, hash: {ha}, principal: alice, groups: [sales] }}
  - {{ id: bob, hash: {hb}, principal: bob, groups: [sales] }}
policy:
  rules:
    - {{ name: sales, groups: [sales], connections: [legacy, mine] }}
"#,
            head = config_head(db),
            base = echo.base(),
            ha = hash(ALICE),
            hb = hash(BOB),
        )
    })
    .await;
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("svc:{PASSWORD}"))
    );
    let get = |path: &str, key: &str| client().get(gw.url(path)).bearer_auth(key).send();
    for _ in 0..2 {
        let r = get("/connections/legacy/items", ALICE).await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(&basic) && text.contains("[redacted]"),
            "{text}"
        );
        assert_eq!(
            echo.received().pop().unwrap().headers["authorization"],
            basic.as_str()
        );
    }
    for key in [ALICE, BOB, ALICE] {
        let r = get("/connections/mine/items", key).await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(key) && text.contains("[redacted]"),
            "{key}: {text}"
        );
        assert_eq!(
            echo.received().pop().unwrap().headers["authorization"],
            format!("Bearer {key}").as_str()
        );
    }
}
