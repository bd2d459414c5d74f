//! MCP sessions carried in the session id itself: the id is the session's
//! state (server, owner, protocol revision, expiry, the upstream sessions
//! opened for it) sealed with AES-256-GCM. Any gateway process holding the
//! same `mcp.session_secret` opens it, so a session survives moving between
//! replicas without a sticky load balancer or a shared store; the client can
//! neither read it (upstream session ids stay private) nor forge or alter
//! it (the tag fails). Nothing is kept per session in memory.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bound into every seal, so a token sealed for another purpose with the
/// same key never opens as a session.
const AAD: &[u8] = b"tollgate-mcp-session-v1";
/// Longest session id accepted, before any decoding work.
const MAX_ID_LEN: usize = 8 * 1024;

/// What a session id holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// The server (as served, virtual or not) the session was opened on.
    #[serde(rename = "s")]
    pub server: String,
    /// Who opened it ([`owner_of`]): another caller presenting the id is refused.
    #[serde(rename = "o")]
    pub owner: String,
    /// The protocol revision agreed at `initialize`.
    #[serde(rename = "p")]
    pub protocol: String,
    /// Unix milliseconds after which the id is refused.
    #[serde(rename = "e")]
    pub expires_ms: i64,
    /// Upstream session ids, by upstream server name.
    #[serde(rename = "u", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("session id is malformed or was not issued by this gateway")]
    Invalid,
    #[error("session has expired")]
    Expired,
    #[error("session belongs to another server or caller")]
    NotYours,
    #[error("session could not be sealed")]
    Seal,
}

/// Seals and opens session ids with one key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// A sealer keyed by SHA-256 of `secret`, or by a random key when there
    /// is none (sessions then live on this process only).
    pub fn new(secret: Option<&str>) -> Result<Self, SessionError> {
        let bytes: [u8; 32] = match secret {
            Some(s) => Sha256::digest(s.as_bytes()).into(),
            None => rand::random(),
        };
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SessionError::Seal)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    pub fn seal(&self, state: &SessionState) -> Result<String, SessionError> {
        let mut data = serde_json::to_vec(state).map_err(|_| SessionError::Seal)?;
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(AAD), &mut data)
            .map_err(|_| SessionError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a session id presented for `server` by `owner` at `now_ms`.
    pub fn open(
        &self,
        id: &str,
        server: &str,
        owner: &str,
        now_ms: i64,
    ) -> Result<SessionState, SessionError> {
        if id.len() > MAX_ID_LEN {
            return Err(SessionError::Invalid);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(id.as_bytes())
            .map_err(|_| SessionError::Invalid)?;
        if raw.len() <= NONCE_LEN {
            return Err(SessionError::Invalid);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SessionError::Invalid)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut sealed)
            .map_err(|_| SessionError::Invalid)?;
        let state: SessionState =
            serde_json::from_slice(plain).map_err(|_| SessionError::Invalid)?;
        if state.server != server || state.owner != owner {
            return Err(SessionError::NotYours);
        }
        if now_ms > state.expires_ms {
            return Err(SessionError::Expired);
        }
        Ok(state)
    }
}

/// The owner tag of a principal: SHA-256 over issuer and subject (hex,
/// 128 bits), so the sealed state names nobody in clear even to itself.
pub fn owner_of(issuer: Option<&str>, subject: &str) -> String {
    let mut h = Sha256::new();
    h.update(issuer.unwrap_or("").as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SessionState {
        SessionState {
            server: "tools".into(),
            owner: owner_of(None, "alice"),
            protocol: "2025-11-25".into(),
            expires_ms: 10_000,
            upstream: [("warehouse".to_string(), "abc123".to_string())].into(),
        }
    }

    #[test]
    fn a_sealed_id_opens_with_the_same_secret_on_another_sealer() {
        let a = Sealer::new(Some("shared")).unwrap();
        let b = Sealer::new(Some("shared")).unwrap();
        let id = a.seal(&state()).unwrap();
        assert!(!id.contains("abc123"), "upstream ids are not readable");
        assert_eq!(
            b.open(&id, "tools", &state().owner, 5_000).unwrap(),
            state()
        );
    }

    #[test]
    fn refuses_other_keys_tampering_owners_servers_and_expiry() {
        let a = Sealer::new(Some("shared")).unwrap();
        let id = a.seal(&state()).unwrap();
        let owner = state().owner;
        let other = Sealer::new(Some("other")).unwrap();
        assert_eq!(
            other.open(&id, "tools", &owner, 0),
            Err(SessionError::Invalid)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&id).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            a.open(&tampered, "tools", &owner, 0),
            Err(SessionError::Invalid)
        );
        assert_eq!(a.open(&id, "other", &owner, 0), Err(SessionError::NotYours));
        let bob = owner_of(None, "bob");
        assert_eq!(a.open(&id, "tools", &bob, 0), Err(SessionError::NotYours));
        assert_eq!(
            a.open(&id, "tools", &owner, 10_001),
            Err(SessionError::Expired)
        );
        assert_eq!(a.open("!!", "tools", &owner, 0), Err(SessionError::Invalid));
        assert_eq!(a.open("", "tools", &owner, 0), Err(SessionError::Invalid));
    }
}
