//! The keys of the `secrets:` section, read from their environment
//! variables or files, and the AES-256-GCM seal and open of one secret
//! under them. The secret's name is the associated data, so a ciphertext
//! copied onto another name's row does not open.
//!
//! Must not: print a key or a plaintext (`Debug` lists key ids only), or
//! keep a plaintext beyond the `SecretValue` it hands back.

use std::collections::HashMap;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use tollgate_config::{SecretKeySource, SecretsConfig};
use tollgate_core::secret::SecretValue;
use zeroize::{Zeroize, Zeroizing};

use super::VaultError;
use crate::store::SealedSecret;

/// AES-256 key length.
pub const KEY_LEN: usize = 32;
/// Largest plaintext accepted: credentials, not documents.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Prefix of the associated data; the secret's name follows.
const AAD_PREFIX: &[u8] = b"tollgate-secret-v1:";
/// What a key's check value is the HMAC of.
const CHECK_INPUT: &[u8] = b"tollgate-secrets-key-check-v1";

/// One key: the cipher and its check value.
struct Key {
    aead: LessSafeKey,
    /// Hex of the first 16 bytes of HMAC-SHA256(key, `CHECK_INPUT`):
    /// stored beside each secret, so a key swapped under an existing id is
    /// found at start without decrypting anything. It reveals nothing
    /// usable about the key.
    check: String,
}

/// The configured keys by id, and which one seals new secrets.
#[derive(Default)]
pub struct Keyring {
    primary: Option<String>,
    keys: HashMap<String, Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("key_ids", &ids)
            .finish()
    }
}

/// 32 raw bytes, or base64 of 32 bytes (standard or URL-safe, padded or
/// not, surrounding whitespace ignored). No 32-byte value is also the
/// base64 of 32 bytes (that is 43 or 44 characters), so the two never clash.
fn parse_key(raw: &[u8]) -> Option<[u8; KEY_LEN]> {
    if let Ok(k) = <[u8; KEY_LEN]>::try_from(raw) {
        return Some(k);
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok().map(Zeroizing::new))
        .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes.as_slice()).ok())
}

fn read_source(at: &str, src: &SecretKeySource) -> Result<[u8; KEY_LEN], VaultError> {
    let unavailable = |reason: String| VaultError::KeyUnavailable {
        at: at.to_string(),
        id: src.id.clone(),
        reason,
    };
    // The key as read (raw or base64), wiped once parsed.
    let raw: Zeroizing<Vec<u8>> = Zeroizing::new(match (&src.env, &src.file) {
        (Some(var), _) => {
            use std::os::unix::ffi::OsStringExt;
            std::env::var_os(var)
                .ok_or_else(|| unavailable(format!("environment variable {var} is not set")))?
                .into_vec()
        }
        (None, Some(path)) => std::fs::read(path)
            .map_err(|e| unavailable(format!("cannot read {path}: {}", e.kind())))?,
        (None, None) => return Err(unavailable("neither env nor file is set".into())),
    });
    parse_key(&raw).ok_or_else(|| VaultError::BadKey {
        at: at.to_string(),
        id: src.id.clone(),
        len: raw.len(),
    })
}

impl Keyring {
    /// Reads every configured key; a key that is missing or not 32 bytes
    /// fails the whole keyring (the gateway refuses to start).
    pub fn load(cfg: &SecretsConfig) -> Result<Self, VaultError> {
        let mut sources = Vec::new();
        if let Some(p) = &cfg.primary {
            sources.push(("secrets.primary".to_string(), p));
        }
        for (i, k) in cfg.previous.iter().enumerate() {
            sources.push((format!("secrets.previous[{i}]"), k));
        }
        let mut keys = Vec::with_capacity(sources.len());
        for (at, src) in sources {
            keys.push((src.id.clone(), read_source(&at, src)?));
        }
        Self::from_keys(cfg.primary.as_ref().map(|p| p.id.clone()), keys)
    }

    /// A keyring of these keys; `primary` must be one of their ids.
    pub fn from_keys(
        primary: Option<String>,
        keys: Vec<(String, [u8; KEY_LEN])>,
    ) -> Result<Self, VaultError> {
        let mut ring = Keyring {
            primary,
            keys: HashMap::with_capacity(keys.len()),
        };
        for (id, mut bytes) in keys {
            let aead = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| VaultError::Crypto)?;
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &bytes), CHECK_INPUT);
            // aws-lc holds its own copy of the key from here on.
            bytes.zeroize();
            let check = hex::encode(&tag.as_ref()[..16]);
            ring.keys.insert(
                id,
                Key {
                    aead: LessSafeKey::new(aead),
                    check,
                },
            );
        }
        if let Some(p) = &ring.primary {
            if !ring.keys.contains_key(p) {
                return Err(VaultError::NoPrimary);
            }
        }
        Ok(ring)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn primary_id(&self) -> Option<&str> {
        self.primary.as_deref()
    }

    /// Seals `plaintext` for `name` under the primary key.
    pub fn seal(
        &self,
        name: &str,
        plaintext: &str,
        now_ms: i64,
    ) -> Result<SealedSecret, VaultError> {
        check_name(name)?;
        if plaintext.is_empty() {
            return Err(VaultError::Empty);
        }
        if plaintext.len() > MAX_SECRET_BYTES {
            return Err(VaultError::TooLarge);
        }
        let id = self.primary.as_deref().ok_or(VaultError::NoPrimary)?;
        let key = self.keys.get(id).ok_or(VaultError::NoPrimary)?;
        let nonce: [u8; NONCE_LEN] = rand::random();
        // The plaintext's copy, sealed in place; wiped if sealing fails.
        let mut data = Zeroizing::new(plaintext.as_bytes().to_vec());
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name)),
                &mut *data,
            )
            .map_err(|_| VaultError::Crypto)?;
        Ok(SealedSecret {
            name: name.to_string(),
            key_id: id.to_string(),
            key_check: key.check.clone(),
            nonce: nonce.to_vec(),
            ciphertext: std::mem::take(&mut *data),
            created_ms: now_ms,
            updated_ms: now_ms,
        })
    }

    /// Whether `s` can be opened here: its key is configured and is the
    /// key it was sealed with (check value). Decrypts nothing.
    pub fn check(&self, s: &SealedSecret) -> Result<(), VaultError> {
        match self.keys.get(&s.key_id) {
            None => Err(VaultError::UnknownKey {
                name: s.name.clone(),
                key_id: s.key_id.clone(),
            }),
            Some(k) if k.check != s.key_check => Err(VaultError::WrongKey {
                name: s.name.clone(),
                key_id: s.key_id.clone(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// Decrypts `s` (bound to its own name).
    pub fn open(&self, s: &SealedSecret) -> Result<SecretValue, VaultError> {
        self.check(s)?;
        let key = self.keys.get(&s.key_id).ok_or(VaultError::Crypto)?;
        let undecryptable = || VaultError::Undecryptable {
            name: s.name.clone(),
        };
        let nonce = Nonce::try_assume_unique_for_key(&s.nonce).map_err(|_| undecryptable())?;
        // Decrypted in place: the buffer holds the plaintext, wiped on drop.
        let mut data = Zeroizing::new(s.ciphertext.clone());
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(aad(&s.name)), &mut data[..])
            .map_err(|_| undecryptable())?;
        let text = std::str::from_utf8(plain).map_err(|_| undecryptable())?;
        Ok(SecretValue::new(text))
    }
}

fn aad(name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(AAD_PREFIX.len() + name.len());
    v.extend_from_slice(AAD_PREFIX);
    v.extend_from_slice(name.as_bytes());
    v
}

/// A new random key (the operating system's generator, through `rand`).
pub fn generate_key() -> [u8; KEY_LEN] {
    rand::random()
}

/// Secret names: 1-128 letters, digits, `-`, `_` or `.`.
pub fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    match ok {
        true => Ok(()),
        false => Err(VaultError::BadName(name.to_string())),
    }
}

/// A keyring of keys made of one repeated byte each, for tests.
#[cfg(test)]
pub(super) fn ring(primary: &str, keys: &[(&str, u8)]) -> Keyring {
    Keyring::from_keys(
        Some(primary.into()),
        keys.iter()
            .map(|(id, b)| (id.to_string(), [*b; 32]))
            .collect(),
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open() {
        let r = ring("k1", &[("k1", 1)]);
        let s = r.seal("crm-token", "hunter2-secret", 5).unwrap();
        assert_eq!(s.key_id, "k1");
        assert_eq!(s.nonce.len(), NONCE_LEN);
        assert_eq!(s.ciphertext.len(), "hunter2-secret".len() + 16);
        assert!(!s.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(r.open(&s).unwrap().expose(), "hunter2-secret");
        // A fresh nonce each time.
        assert_ne!(
            r.seal("crm-token", "hunter2-secret", 5).unwrap().nonce,
            s.nonce
        );
    }

    #[test]
    fn another_name_does_not_open() {
        let r = ring("k1", &[("k1", 1)]);
        let mut s = r.seal("crm-token", "v", 5).unwrap();
        s.name = "billing-token".into();
        assert!(matches!(r.open(&s), Err(VaultError::Undecryptable { .. })));
        s.name = "crm-token".into();
        s.ciphertext[0] ^= 1;
        assert!(matches!(r.open(&s), Err(VaultError::Undecryptable { .. })));
    }

    #[test]
    fn old_keys_still_open_and_wrong_keys_are_told_apart() {
        let old = ring("k1", &[("k1", 1)]);
        let s = old.seal("a", "value-a", 1).unwrap();
        let rotated = ring("k2", &[("k2", 2), ("k1", 1)]);
        assert_eq!(rotated.open(&s).unwrap().expose(), "value-a");
        let resealed = rotated.seal("a", "value-a", 2).unwrap();
        assert_eq!(resealed.key_id, "k2");
        // The old key alone cannot open what the new one sealed.
        assert!(matches!(
            old.open(&resealed),
            Err(VaultError::UnknownKey { .. })
        ));
        // Another key under the same id: found by its check value.
        let swapped = ring("k1", &[("k1", 9)]);
        assert!(matches!(
            swapped.check(&s),
            Err(VaultError::WrongKey { .. })
        ));
    }

    #[test]
    fn keys_parse_raw_or_base64() {
        let k = [7u8; 32];
        assert_eq!(parse_key(&k), Some(k));
        let b64 = STANDARD.encode(k);
        assert_eq!(parse_key(format!("{b64}\n").as_bytes()), Some(k));
        assert_eq!(parse_key(URL_SAFE_NO_PAD.encode(k).as_bytes()), Some(k));
        assert_eq!(parse_key(b"too short"), None);
        assert_eq!(parse_key(STANDARD.encode([1u8; 16]).as_bytes()), None);
    }

    #[test]
    fn names_sizes_and_debug() {
        let r = ring("k1", &[("k1", 1)]);
        assert!(matches!(r.seal("a b", "v", 1), Err(VaultError::BadName(_))));
        assert!(matches!(r.seal("a", "", 1), Err(VaultError::Empty)));
        let big = "x".repeat(MAX_SECRET_BYTES + 1);
        assert!(matches!(r.seal("a", &big, 1), Err(VaultError::TooLarge)));
        let none = Keyring::default();
        assert!(matches!(none.seal("a", "v", 1), Err(VaultError::NoPrimary)));
        assert_eq!(
            format!("{r:?}"),
            "Keyring { primary: Some(\"k1\"), key_ids: [\"k1\"] }"
        );
    }

    #[test]
    fn load_reports_missing_and_short_keys() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, "c2hvcnQ=").unwrap();
        let good = dir.path().join("good.key");
        std::fs::write(&good, STANDARD.encode([3u8; 32])).unwrap();
        let src = |id: &str, file: &std::path::Path| SecretKeySource {
            id: id.into(),
            env: None,
            file: Some(file.display().to_string()),
        };
        let e = Keyring::load(&SecretsConfig {
            primary: Some(src("k2", &short)),
            previous: vec![],
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "secrets.primary (key \"k2\"): the key must be 32 bytes or their base64 (read 8 bytes)"
        );
        let e = Keyring::load(&SecretsConfig {
            primary: Some(src("k2", &good)),
            previous: vec![SecretKeySource {
                id: "k1".into(),
                env: Some("TOLLGATE_TEST_UNSET_SECRET_KEY".into()),
                file: None,
            }],
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "secrets.previous[0] (key \"k1\"): environment variable TOLLGATE_TEST_UNSET_SECRET_KEY is not set"
        );
        let r = Keyring::load(&SecretsConfig {
            primary: Some(src("k2", &good)),
            previous: vec![],
        })
        .unwrap();
        assert_eq!(r.primary_id(), Some("k2"));
    }
}
