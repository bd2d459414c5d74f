//! API keys: generation, hashing, and the in-memory index keyed by hash.
//! Keys are high-entropy random strings, so one SHA-256 is the right hash
//! (a slow password hash would only add latency; there is nothing to
//! brute-force). Clear keys exist only in `generate_key`'s return value.

use std::collections::HashMap;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Principal;

pub use tollgate_core::keyhash::{format_hash, parse_hash, KeyHash};

pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// A new key: `tg-` and 32 random bytes in hex.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("tg-{}", hex::encode(bytes))
}

/// One usable key: who it is and what it may call.
#[derive(Debug)]
pub struct KeyEntry {
    pub principal: Arc<Principal>,
    pub models: ModelGrant,
    /// Unix ms after which the key is refused (rotation overlap, expiry).
    pub expires_ms: Option<i64>,
}

/// The models a key may use: exact names and globs; deny by default.
#[derive(Debug, Clone)]
pub struct ModelGrant {
    set: GlobSet,
    patterns: Arc<[String]>,
}

impl ModelGrant {
    pub fn new(patterns: &[String]) -> Result<Self, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(Glob::new(p)?);
        }
        Ok(Self {
            set: b.build()?,
            patterns: patterns.to_vec().into(),
        })
    }

    pub fn allows(&self, model: &str) -> bool {
        self.set.is_match(model)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[derive(Debug)]
pub struct KeyIndex {
    by_hash: HashMap<KeyHash, Arc<KeyEntry>>,
    /// Unique to this index's content in this process: a new index, and
    /// every insert, takes a fresh number. The verified-token cache
    /// records it, so a token answered from that cache without a key
    /// lookup is one no key matched under the same keys.
    version: u64,
}

/// Hands out `KeyIndex::version` numbers.
static KEY_INDEX_VERSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_version() -> u64 {
    KEY_INDEX_VERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self {
            by_hash: HashMap::new(),
            version: next_version(),
        }
    }
}

impl KeyIndex {
    pub fn insert(&mut self, hash: KeyHash, entry: KeyEntry) {
        self.by_hash.insert(hash, Arc::new(entry));
        self.version = next_version();
    }

    /// See the field: equal versions mean the same keys.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn get(&self, hash: &KeyHash) -> Option<Arc<KeyEntry>> {
        self.by_hash.get(hash).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip() {
        let key = generate_key();
        assert!(key.starts_with("tg-") && key.len() == 67);
        let h = hash_key(&key);
        assert_eq!(parse_hash(&format_hash(&h)), Some(h));
        assert_eq!(parse_hash("sha256:zz"), None);
        assert_eq!(parse_hash("md5:00"), None);
    }

    #[test]
    fn grants_deny_by_default() -> Result<(), globset::Error> {
        let g = ModelGrant::new(&["gpt-*".into(), "mock-chat".into()])?;
        assert!(g.allows("gpt-4o"));
        assert!(g.allows("mock-chat"));
        assert!(!g.allows("claude"));
        assert!(!ModelGrant::new(&[])?.allows("anything"));
        Ok(())
    }
}
