//! Named secrets encrypted at rest (AES-256-GCM, `keyring.rs`): the
//! store keeps ciphertexts only; the gateway holds them in memory, loaded
//! at start and re-read in the background (`server/vault.rs`), and
//! decrypts one only when `reveal` is called, after the caller was
//! granted the connection that needs it. `Vault` is the store-backed
//! `tollgate_core::secret::SecretSource`.
//!
//! Plaintexts are not cached: each `reveal` decrypts (8 µs for a 48-byte
//! value in a debug build, bench/README.md: noise beside the upstream call
//! it serves), so a plaintext lives
//! only as long as the request that uses it, and the decryption counter
//! counts every use.
//!
//! Must not: call the store from `reveal`, or log, format or return a
//! plaintext anywhere but `reveal`'s `SecretValue`.

mod keyring;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tollgate_core::error::{ErrorKind, GatewayError};
use tollgate_core::secret::{SecretSource, SecretValue};

pub use keyring::{check_name, generate_key, Keyring, KEY_LEN, MAX_SECRET_BYTES};

use crate::store::{SealedSecret, Store, StoreError};

/// Why a key, a secret or a store operation on secrets failed. No variant
/// carries a key or a plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{at} (key {id:?}): {reason}")]
    KeyUnavailable {
        at: String,
        id: String,
        reason: String,
    },
    #[error("{at} (key {id:?}): the key must be 32 bytes or their base64 (read {len} bytes)")]
    BadKey { at: String, id: String, len: usize },
    #[error("no secrets.primary key is configured (docs/secrets.md)")]
    NoPrimary,
    #[error("secret {name:?} is encrypted under key {key_id:?}, which is not among secrets.primary and secrets.previous")]
    UnknownKey { name: String, key_id: String },
    #[error("secret {name:?}: the configured key {key_id:?} is not the key it was encrypted with")]
    WrongKey { name: String, key_id: String },
    #[error("secret {name:?} could not be decrypted (damaged, or moved from another name)")]
    Undecryptable { name: String },
    #[error("secret name {0:?} must be 1-128 letters, digits, -, _ or .")]
    BadName(String),
    #[error("a secret must not be empty")]
    Empty,
    #[error("a secret must be at most {MAX_SECRET_BYTES} bytes")]
    TooLarge,
    #[error("encryption failed")]
    Crypto,
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A stored secret as held in memory: its ciphertext, or why it cannot be
/// opened with the configured keys.
enum Held {
    Sealed(SealedSecret),
    Broken(String),
}

/// The store-backed secret source.
pub struct Vault {
    keyring: Keyring,
    held: ArcSwap<HashMap<String, Held>>,
    /// False until the store's secrets were read once (a PostgreSQL store
    /// unreachable at start): `reveal` cannot tell "no such secret" yet.
    loaded: AtomicBool,
    decrypts: AtomicU64,
    /// The problems of the last load, so each is logged once.
    problems: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("keyring", &self.keyring)
            .field("secrets", &self.held.load().len())
            .finish()
    }
}

impl Vault {
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            held: ArcSwap::from_pointee(HashMap::new()),
            loaded: AtomicBool::new(false),
            decrypts: AtomicU64::new(0),
            problems: Mutex::new(Vec::new()),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Decryptions since start (each `reveal` of a stored secret).
    pub fn decrypts(&self) -> u64 {
        self.decrypts.load(Ordering::Relaxed)
    }

    /// Replaces the held secrets with `rows`. Each row is checked against
    /// the keys (its key id known, its key's check value equal) without
    /// decrypting it; the rows that fail are held as broken (`reveal`
    /// errs) and returned.
    pub fn install(&self, rows: Vec<SealedSecret>) -> Vec<VaultError> {
        let mut problems = Vec::new();
        let mut held = HashMap::with_capacity(rows.len());
        for row in rows {
            let name = row.name.clone();
            let entry = match self.keyring.check(&row) {
                Ok(()) => Held::Sealed(row),
                Err(e) => {
                    let why = e.to_string();
                    problems.push(e);
                    Held::Broken(why)
                }
            };
            held.insert(name, entry);
        }
        self.held.store(Arc::new(held));
        self.loaded.store(true, Ordering::Relaxed);
        problems
    }

    /// Reads the store's secrets and installs them; returns the rows that
    /// cannot be opened with the configured keys.
    pub async fn load(&self, store: &Store) -> Result<Vec<VaultError>, StoreError> {
        Ok(self.install(store.list_secrets().await?))
    }

    /// `load` for the background refresh: a store error keeps the held
    /// secrets; each new problem is logged once.
    pub async fn refresh(&self, store: &Store) {
        let problems = match self.load(store).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh secrets; keeping the current set");
                return;
            }
        };
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let Ok(mut last) = self.problems.lock() else {
            return;
        };
        for t in texts.iter().filter(|t| !last.contains(t)) {
            tracing::error!(problem = %t, "a stored secret cannot be used with the configured keys");
        }
        *last = texts;
    }

    /// Seals `value` under the primary key and writes it to the store;
    /// the held copy is refreshed at once.
    pub async fn put(&self, store: &Store, name: &str, value: &str) -> Result<(), VaultError> {
        let sealed = self.keyring.seal(name, value, crate::store::now_ms())?;
        store.put_secret(&sealed).await?;
        self.refresh(store).await;
        Ok(())
    }

    /// Deletes a stored secret; whether there was one.
    pub async fn delete(&self, store: &Store, name: &str) -> Result<bool, VaultError> {
        let done = store.delete_secret(name).await?;
        self.refresh(store).await;
        Ok(done)
    }
}

/// Re-encrypts every stored secret not under the primary key, under it.
/// Returns how many were re-encrypted; a secret changed meanwhile by
/// another writer is left as that writer wrote it.
pub async fn rotate(keyring: &Keyring, store: &Store) -> Result<usize, VaultError> {
    let primary = keyring.primary_id().ok_or(VaultError::NoPrimary)?;
    let mut done = 0;
    for row in store.list_secrets().await? {
        if row.key_id == primary {
            continue;
        }
        let plain = keyring.open(&row)?;
        let mut new = keyring.seal(&row.name, plain.expose(), crate::store::now_ms())?;
        new.created_ms = row.created_ms;
        if store.replace_secret(&row, &new).await? {
            done += 1;
        }
    }
    Ok(done)
}

impl SecretSource for Vault {
    fn reveal(&self, name: &str) -> Result<Option<SecretValue>, GatewayError> {
        if !self.loaded.load(Ordering::Relaxed) {
            return Err(GatewayError::new(
                ErrorKind::Server,
                503,
                "secrets_unavailable",
                "the gateway's secrets are not loaded yet (store unreachable)",
            )
            .with_code("secrets_unavailable")
            .retryable());
        }
        let held = self.held.load();
        let sealed = match held.get(name) {
            None => return Ok(None),
            Some(Held::Broken(why)) => return Err(unusable(why.clone())),
            Some(Held::Sealed(s)) => s,
        };
        self.decrypts.fetch_add(1, Ordering::Relaxed);
        let result = self.keyring.open(sealed);
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("tollgate_secret_decrypts_total", "result" => label).increment(1);
        result.map(Some).map_err(|e| unusable(e.to_string()))
    }
}

/// A stored secret the configured keys cannot open: the gateway's fault,
/// told to the caller without the secret's name; the detail is logged.
fn unusable(detail: String) -> GatewayError {
    GatewayError::new(
        ErrorKind::Server,
        500,
        "secret_unusable",
        "a stored credential could not be decrypted",
    )
    .with_code("secret_unusable")
    .with_detail(detail)
}

#[cfg(test)]
mod tests {
    use super::keyring::ring;
    use super::*;

    #[test]
    fn reveal_decrypts_lazily_and_counts() {
        let v = Vault::new(ring("k1", &[("k1", 1)]));
        assert_eq!(v.reveal("a").unwrap_err().status(), 503);
        let sealed = v.keyring().seal("a", "value-a", 1).unwrap();
        let mut wrong = ring("k1", &[("k1", 9)]).seal("b", "value-b", 1).unwrap();
        wrong.key_id = "k1".into();
        let problems = v.install(vec![sealed, wrong]);
        assert_eq!(problems.len(), 1);
        assert_eq!(v.decrypts(), 0, "installing decrypts nothing");
        assert!(v.reveal("missing").unwrap().is_none());
        assert_eq!(v.decrypts(), 0);
        assert_eq!(v.reveal("a").unwrap().unwrap().expose(), "value-a");
        assert_eq!(v.decrypts(), 1);
        let e = v.reveal("b").unwrap_err();
        assert_eq!((e.status(), e.label()), (500, "secret_unusable"));
        assert_eq!(e.message(), "a stored credential could not be decrypted");
        assert!(!format!("{v:?}").contains("value-a"));
    }

    #[tokio::test]
    async fn rotation_reencrypts_under_the_primary() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let old = Vault::new(ring("k1", &[("k1", 1)]));
        old.put(&store, "a", "value-a").await.unwrap();
        old.put(&store, "b", "value-b").await.unwrap();
        let new = ring("k2", &[("k2", 2), ("k1", 1)]);
        assert_eq!(rotate(&new, &store).await.unwrap(), 2);
        assert_eq!(rotate(&new, &store).await.unwrap(), 0);
        let rows = store.list_secrets().await.unwrap();
        assert!(rows.iter().all(|r| r.key_id == "k2"));
        // The new key alone opens them now; the old one alone does not.
        let only_new = Vault::new(ring("k2", &[("k2", 2)]));
        assert!(only_new.load(&store).await.unwrap().is_empty());
        assert_eq!(only_new.reveal("b").unwrap().unwrap().expose(), "value-b");
        assert_eq!(old.load(&store).await.unwrap().len(), 2);
    }
}
