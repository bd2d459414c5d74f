//! Authentication: request headers → one `Principal`, whichever way the
//! caller proved who it is. A bearer value shaped like a JWT is verified
//! against the configured OIDC issuers' cached keys (`jwt`, `jwks`);
//! anything else is an API key, looked up by its SHA-256 in in-memory
//! indexes (config keys in the snapshot, store keys refreshed in the
//! background). The only I/O a request can wait on here is the rate-limited
//! JWKS refresh for an unknown `kid`. Authorization lives in `policy`.

pub mod inspect;
pub mod jwks;
pub mod jwt;
mod keys;
pub mod policy;

pub use jwt::{Issuers, OidcIssuer, TokenError};
pub use keys::{
    format_hash, generate_key, hash_key, parse_hash, KeyEntry, KeyHash, KeyIndex, ModelGrant,
};
pub use policy::{Access, Denial, Grant, Policy};

use std::sync::Arc;

use http::HeaderMap;

use tollgate_config::PrincipalKind;

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ApiKey,
    Jwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Jwt => "jwt",
        }
    }
}

/// Who is calling, whichever way they authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub subject: Arc<str>,
    pub kind: PrincipalKind,
    pub groups: Arc<[String]>,
    /// The tenant the principal belongs to (key owner, or the token's tenant claim).
    pub tenant: Option<Arc<str>>,
    /// The API key's id (never the key); None for tokens.
    pub key_id: Option<Arc<str>>,
    /// The token's issuer; None for API keys.
    pub issuer: Option<Arc<str>>,
    pub method: AuthMethod,
    /// The verified token's claims, for policy rules on claims; None for
    /// API keys.
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// An authenticated caller: the principal, and the key's own grant when it
/// came with an API key.
#[derive(Debug, Clone)]
pub struct Identity {
    pub principal: Arc<Principal>,
    pub key: Option<Arc<KeyEntry>>,
}

impl Identity {
    pub fn key_grant(&self) -> Option<&ModelGrant> {
        self.key.as_deref().map(|k| &k.models)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing API key or token: send `Authorization: Bearer KEY_OR_TOKEN` or `x-api-key: KEY`"
    )]
    Missing,
    #[error("invalid API key")]
    Unknown,
    #[error("malformed Authorization header: expected `Bearer KEY_OR_TOKEN`")]
    Malformed,
    #[error("API key `{id}` expired at {at}")]
    KeyExpired { id: String, at: String },
    #[error("{0}")]
    Token(#[from] TokenError),
}

impl AuthError {
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_key",
            AuthError::Unknown => "invalid_key",
            AuthError::Malformed => "malformed_auth",
            AuthError::KeyExpired { .. } => "key_expired",
            AuthError::Token(e) => e.label(),
        }
    }

    /// OpenAI-style error code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::KeyExpired { .. } => "expired_api_key",
            AuthError::Token(_) => "invalid_token",
            _ => "invalid_api_key",
        }
    }
}

impl From<AuthError> for tollgate_core::error::GatewayError {
    fn from(e: AuthError) -> Self {
        use tollgate_core::error::{ErrorKind, GatewayError};
        GatewayError::new(ErrorKind::Authentication, 401, e.label(), e.to_string())
            .with_code(e.code())
    }
}

/// Formats Unix ms as RFC 3339 (seconds precision).
pub fn rfc3339(ms: i64) -> String {
    let secs = u64::try_from(ms.max(0) / 1000).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// The key a request presents, from `Authorization: Bearer` or `x-api-key`
/// (`tollgate_core::bearer::presented`).
pub fn presented_key(headers: &HeaderMap) -> Result<&str, AuthError> {
    use tollgate_core::bearer::{presented, NotPresented};
    presented(headers).map_err(|e| match e {
        NotPresented::Missing => AuthError::Missing,
        NotPresented::Malformed => AuthError::Malformed,
    })
}

/// Everything authentication reads: the snapshot's config keys and issuers,
/// and the store's keys.
pub struct Credentials<'a> {
    pub config_keys: &'a KeyIndex,
    pub store_keys: &'a KeyIndex,
    pub issuers: &'a Issuers,
}

impl Credentials<'_> {
    /// An API key, by its hash: config keys first, then the store's. Expired
    /// keys are refused with a reason.
    pub fn api_key(&self, key: &str, now_ms: i64) -> Result<Identity, AuthError> {
        self.api_key_hashed(&hash_key(key), now_ms)
    }

    fn api_key_hashed(&self, hash: &KeyHash, now_ms: i64) -> Result<Identity, AuthError> {
        let entry = self
            .config_keys
            .get(hash)
            .or_else(|| self.store_keys.get(hash))
            .ok_or(AuthError::Unknown)?;
        if let Some(exp) = entry.expires_ms {
            if now_ms >= exp {
                return Err(AuthError::KeyExpired {
                    id: entry.principal.key_id.as_deref().unwrap_or("").to_string(),
                    at: rfc3339(exp),
                });
            }
        }
        Ok(Identity {
            principal: entry.principal.clone(),
            key: Some(entry),
        })
    }

    /// Authenticates a presented bearer value (JWT or API key).
    pub async fn check(&self, presented: &str) -> Result<Identity, AuthError> {
        let now = tollgate_core::clock::wall_ms();
        let keys = (self.config_keys.version(), self.store_keys.version());
        // A JWT verified before under the same API keys is answered without
        // its shape check or its hash for the key index (the cache holds
        // only tokens that had the shape, compares the whole token and
        // records which keys it is not).
        if !self.issuers.is_empty() {
            if let Some(principal) = self.issuers.cached(presented, keys) {
                return Ok(Identity {
                    principal,
                    key: None,
                });
            }
        }
        if jwt::looks_like_jwt(presented) {
            // A configured key that happens to look like a JWT still works.
            match self.api_key_hashed(&hash_key(presented), now) {
                Err(AuthError::Unknown) => {}
                known => return known,
            }
            let principal = self.issuers.verify(presented, keys).await?;
            return Ok(Identity {
                principal,
                key: None,
            });
        }
        self.api_key_hashed(&hash_key(presented), now)
    }
}

/// Resolves the request's credentials to an identity.
pub async fn authenticate(
    headers: &HeaderMap,
    creds: &Credentials<'_>,
) -> Result<Identity, AuthError> {
    let presented = presented_key(headers)?;
    creds.check(presented).await
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
