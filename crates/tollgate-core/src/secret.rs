//! Named secrets the gateway injects into outbound calls (a connection's
//! credential), behind one seam: the pipeline asks a `SecretSource` for a
//! secret by name only after the caller was granted the connection, so a
//! refused call never causes a secret to be decrypted. The store-backed,
//! encrypted-at-rest implementation lives in `tollgate-record`; this crate
//! only names the contract, so the pipeline and the store do not depend on
//! each other's types.
//!
//! Must not: log, format or compare a secret's value (`Debug` on
//! `SecretValue` prints a placeholder), or leave a plaintext in freed
//! memory (`SecretValue` wipes its buffer when the last clone drops).

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::GatewayError;

/// A secret's plaintext. Cloning shares one allocation, which is
/// overwritten with zeros when the last clone drops; `Debug` never prints
/// the value.
#[derive(Clone)]
pub struct SecretValue(Arc<Zeroizing<String>>);

impl SecretValue {
    /// Takes a plaintext (a `String` is moved in as it is, so no copy of it
    /// is left behind unwiped).
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(Arc::new(Zeroizing::new(value.into())))
    }

    /// The plaintext, for the one place that injects it into a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Where named secrets come from.
pub trait SecretSource: Send + Sync {
    /// The named secret's plaintext, `Ok(None)` when no secret has that
    /// name. Called on the request path: an implementation must answer
    /// from memory (decrypting is fine, a store round trip is not).
    fn reveal(&self, name: &str) -> Result<Option<SecretValue>, GatewayError>;
}

/// A source that holds no secret (no secret store configured).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn reveal(&self, _name: &str) -> Result<Option<SecretValue>, GatewayError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = SecretValue::new("hunter2");
        assert_eq!(format!("{s:?}"), "SecretValue(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
        assert!(NoSecrets.reveal("x").unwrap().is_none());
    }
}
