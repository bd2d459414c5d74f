//! Named secrets encrypted at rest (issue 27): what the store's file holds
//! (no plaintext), a restart with the key decrypts, a missing or wrong key
//! stops the start with a clear error, old keys still decrypt and a
//! rotation re-encrypts, secrets written while running are picked up, the
//! admin API (admin grant only, nothing logged), and PostgreSQL.

use crate::common;

use std::path::Path;

use base64::Engine as _;
use common::pg::Pg;
use common::*;
use tollgate::store::Store;
use tollgate::vault::{Keyring, Vault};

const PLAIN: &str = "crm-api-token-Qv7Lm2Zx9Kp4Wd8";
const LATER: &str = "ticketing-token-Hs3Jn6Rt1Yb5";

fn write_key(path: &Path, byte: u8) {
    std::fs::write(
        path,
        base64::engine::general_purpose::STANDARD.encode([byte; 32]) + "\n",
    )
    .unwrap();
}

fn config(db: &str, secrets: &str) -> String {
    format!(
        "{}keys:\n  - id: admin\n    hash: {}\n    principal: alice\n  \
         - id: plain\n    hash: {}\n    principal: bob\npolicy:\n  rules:\n    - name: ops\n      \
         principals: [alice]\n      admin: true\n{secrets}",
        config_head(db).replace("ledger:", "  key_refresh: 100ms\nledger:"),
        hash(KEY),
        hash(KEY_LIMITED)
    )
}

fn secrets_section(primary: (&str, &Path), previous: &[(&str, &Path)]) -> String {
    let mut s = format!(
        "secrets:\n  primary: {{ id: {}, file: {} }}\n",
        primary.0,
        primary.1.display()
    );
    if !previous.is_empty() {
        s.push_str("  previous:\n");
        for (id, p) in previous {
            s.push_str(&format!("    - {{ id: {id}, file: {} }}\n", p.display()));
        }
    }
    s
}

/// What `tollgate connections set-secret` does, with the config at `path`.
async fn set_secret(path: &Path, name: &str, value: &str) {
    let cfg = tollgate::config::load_file(path).unwrap();
    let store = Store::open(&cfg.storage.url).await.unwrap();
    let vault = Vault::new(Keyring::load(&cfg.secrets).unwrap());
    vault.put(&store, name, value).await.unwrap();
    store.close().await;
}

async fn start_err(path: &Path) -> String {
    match tollgate::server::start(path).await {
        Ok(r) => {
            r.shutdown();
            panic!("the gateway started")
        }
        Err(e) => e.to_string(),
    }
}

fn reveal(r: &tollgate::server::Running, name: &str) -> Option<String> {
    r.state
        .secrets
        .reveal(name)
        .unwrap()
        .map(|v| v.expose().to_string())
}

/// Every byte SQLite keeps for the store: the file, its WAL and shared memory.
fn raw_sqlite(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["t.db", "t.db-wal", "t.db-shm"] {
        if let Ok(b) = std::fs::read(dir.join(f)) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn sqlite_holds_ciphertext_only_and_restarts_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (k1, k2) = (dir.path().join("k1.key"), dir.path().join("k2.key"));
    write_key(&k1, 1);
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, config(&db, &secrets_section(("k1", &k1), &[]))).unwrap();
    set_secret(&path, "crm-token", PLAIN).await;

    let running = tollgate::server::start(&path).await.unwrap();
    assert_eq!(running.vault.decrypts(), 0, "nothing decrypted at start");
    assert_eq!(reveal(&running, "crm-token").as_deref(), Some(PLAIN));
    assert_eq!(reveal(&running, "no-such-secret"), None);
    assert_eq!(running.vault.decrypts(), 1);
    // Written while running (another process): picked up by the refresh.
    set_secret(&path, "ticketing-token", LATER).await;
    let seen = poll_until(
        async || reveal(&running, "ticketing-token"),
        Option::is_some,
    )
    .await;
    assert_eq!(seen.as_deref(), Some(LATER));
    running.shutdown();
    running.wait().await.unwrap();

    let raw = raw_sqlite(dir.path());
    assert!(contains(&raw, "crm-token"), "the names are stored in clear");
    assert!(!contains(&raw, PLAIN) && !contains(&raw, LATER));

    // A restart with the key decrypts.
    let running = tollgate::server::start(&path).await.unwrap();
    assert_eq!(reveal(&running, "crm-token").as_deref(), Some(PLAIN));
    running.shutdown();
    running.wait().await.unwrap();

    // Another key under the same id, a missing key, no keys at all.
    write_key(&k1, 9);
    assert_eq!(
        start_err(&path).await,
        "secrets: secret \"crm-token\": the configured key \"k1\" is not the key it was encrypted with"
    );
    std::fs::remove_file(&k1).unwrap();
    assert!(start_err(&path)
        .await
        .starts_with("secrets: secrets.primary (key \"k1\"): cannot read"));
    std::fs::write(&path, config(&db, "")).unwrap();
    assert_eq!(
        start_err(&path).await,
        "secrets: secret \"crm-token\" is encrypted under key \"k1\", which is not among secrets.primary and secrets.previous"
    );

    // Rotation: k2 becomes primary, k1 stays as previous and still decrypts;
    // after rotate-secrets, k2 alone is enough.
    write_key(&k1, 1);
    write_key(&k2, 2);
    std::fs::write(
        &path,
        config(&db, &secrets_section(("k2", &k2), &[("k1", &k1)])),
    )
    .unwrap();
    let running = tollgate::server::start(&path).await.unwrap();
    assert_eq!(reveal(&running, "crm-token").as_deref(), Some(PLAIN));
    running.shutdown();
    running.wait().await.unwrap();
    let cfg = tollgate::config::load_file(&path).unwrap();
    let store = Store::open(&db).await.unwrap();
    let keyring = Keyring::load(&cfg.secrets).unwrap();
    assert_eq!(tollgate::vault::rotate(&keyring, &store).await.unwrap(), 2);
    assert!(store
        .list_secrets()
        .await
        .unwrap()
        .iter()
        .all(|s| s.key_id == "k2"));
    store.close().await;
    std::fs::write(&path, config(&db, &secrets_section(("k2", &k2), &[]))).unwrap();
    let running = tollgate::server::start(&path).await.unwrap();
    assert_eq!(reveal(&running, "crm-token").as_deref(), Some(PLAIN));
    assert_eq!(reveal(&running, "ticketing-token").as_deref(), Some(LATER));
    running.shutdown();
    running.wait().await.unwrap();
    assert!(!contains(&raw_sqlite(dir.path()), PLAIN));
}

#[tokio::test]
async fn admin_api_writes_secrets_for_admins_only_and_never_logs_them() {
    let (logs, _guard) = crate::secrets::capture_logs(tracing::Level::TRACE);
    let mut gw = start_gateway_with(|db| {
        let dir = Path::new(db.trim_start_matches("sqlite://"))
            .parent()
            .unwrap()
            .to_path_buf();
        write_key(&dir.join("k1.key"), 4);
        config(db, &secrets_section(("k1", &dir.join("k1.key")), &[]))
    })
    .await;
    let c = client();
    let put = |key: &'static str, name: &'static str, body: serde_json::Value| {
        c.put(gw.admin_url(&format!("/admin/v1/secrets/{name}")))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let r = put(
        KEY_LIMITED,
        "crm-token",
        serde_json::json!({"value": PLAIN}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(reveal(gw.running(), "crm-token"), None);
    let r = put(KEY, "crm-token", serde_json::json!({"value": PLAIN}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reveal(gw.running(), "crm-token").as_deref(), Some(PLAIN));
    let r = put(KEY, "bad name", serde_json::json!({"value": "x"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a name with a space");
    let r = put(KEY, "crm-token", serde_json::json!({"value": 5}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let list: serde_json::Value = c
        .get(gw.admin_url("/admin/v1/secrets"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["secrets"][0]["name"], "crm-token");
    assert_eq!(list["secrets"][0]["key_id"], "k1");
    assert!(!list.to_string().contains(PLAIN));
    let delete = || {
        c.delete(gw.admin_url("/admin/v1/secrets/crm-token"))
            .bearer_auth(KEY)
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), 200);
    assert_eq!(reveal(gw.running(), "crm-token"), None);
    assert_eq!(delete().await.unwrap().status(), 404);
    gw.stop().await;
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("secret written through the admin API"));
    assert!(!logs.contains(PLAIN));
}

#[tokio::test]
async fn postgres_holds_ciphertext_only() {
    let pg = Pg::start();
    let dir = tempfile::tempdir().unwrap();
    let k1 = dir.path().join("k1.key");
    std::fs::write(&k1, [7u8; 32]).unwrap(); // raw bytes, not base64
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, config(&pg.url(), &secrets_section(("k1", &k1), &[]))).unwrap();
    set_secret(&path, "crm-token", PLAIN).await;
    let running = tollgate::server::start(&path).await.unwrap();
    assert_eq!(reveal(&running, "crm-token").as_deref(), Some(PLAIN));
    running.shutdown();
    running.wait().await.unwrap();

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg.url())
        .await
        .unwrap();
    let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT name, key_id, nonce, ciphertext FROM secrets")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    let (name, key_id, nonce, ciphertext) = &rows[0];
    assert_eq!(
        (name.as_str(), key_id.as_str(), nonce.len()),
        ("crm-token", "k1", 12)
    );
    assert_eq!(ciphertext.len(), PLAIN.len() + 16);
    assert!(!contains(ciphertext, PLAIN));
    let dump: Vec<(String,)> = sqlx::query_as("SELECT secrets::text FROM secrets")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(!dump[0].0.contains(PLAIN));
}
