//! Authentication: request headers → `Principal`. API keys are looked up by
//! their SHA-256 in in-memory indexes (config keys in the snapshot, store
//! keys refreshed in the background); no I/O happens here. Owns key hashing
//! and generation; must not know about models beyond the grant matcher.

mod keys;

pub use keys::{
    format_hash, generate_key, hash_key, parse_hash, KeyEntry, KeyHash, KeyIndex, ModelGrant,
};

use std::sync::Arc;

use http::HeaderMap;

use crate::config::PrincipalKind;

/// Who is calling, whichever way they authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub subject: Arc<str>,
    pub kind: PrincipalKind,
    pub groups: Arc<[String]>,
    /// The API key's id (never the key).
    pub key_id: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`")]
    Missing,
    #[error("invalid API key")]
    Unknown,
    #[error("malformed Authorization header: expected `Bearer KEY`")]
    Malformed,
}

impl AuthError {
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_key",
            AuthError::Unknown => "invalid_key",
            AuthError::Malformed => "malformed_auth",
        }
    }
}

/// The key a request presents, from `Authorization: Bearer` or `x-api-key`.
pub fn presented_key(headers: &HeaderMap) -> Result<&str, AuthError> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, rest) = v.split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed);
        }
        let key = rest.trim();
        return if key.is_empty() {
            Err(AuthError::Missing)
        } else {
            Ok(key)
        };
    }
    if let Some(v) = headers.get("x-api-key") {
        let key = v.to_str().map_err(|_| AuthError::Malformed)?.trim();
        return if key.is_empty() {
            Err(AuthError::Missing)
        } else {
            Ok(key)
        };
    }
    Err(AuthError::Missing)
}

/// Resolves the presented key against the config keys first, then the store's.
pub fn authenticate(
    headers: &HeaderMap,
    config_keys: &KeyIndex,
    store_keys: &KeyIndex,
) -> Result<Arc<KeyEntry>, AuthError> {
    let key = presented_key(headers)?;
    let hash = hash_key(key);
    config_keys
        .get(&hash)
        .or_else(|| store_keys.get(&hash))
        .ok_or(AuthError::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                h.insert(k, v);
            }
        }
        h
    }

    #[test]
    fn reads_bearer_and_x_api_key() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer abc")])),
            Ok("abc")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer  abc ")])),
            Ok("abc")
        );
        assert_eq!(presented_key(&headers(&[("x-api-key", "k1")])), Ok("k1"));
        assert_eq!(presented_key(&headers(&[])), Err(AuthError::Missing));
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic abc")])),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer ")])),
            Err(AuthError::Missing)
        );
    }
}
