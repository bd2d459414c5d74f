//! Static credentials: a bearer token or an API-key header, from the config
//! (usually `${ENV}`) or from a file that is re-read on every config reload
//! (a rotated secret mounted by Kubernetes, Vault agent, …).

use std::sync::Arc;
use tollgate_core::error::BuildError;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};

use super::CredentialError;
use tollgate_config::Secret;

pub(super) struct StaticSecret {
    provider: String,
    name: HeaderName,
    prefix: &'static str,
    value: ArcSwap<HeaderValue>,
    file: Option<String>,
}

impl StaticSecret {
    pub(super) fn new(
        provider: &str,
        name: HeaderName,
        prefix: &'static str,
        inline: &Option<Secret>,
        file: &Option<String>,
    ) -> Result<Self, BuildError> {
        let raw =
            read_value(inline, file).map_err(|e| format!("provider {provider}: auth: {e}"))?;
        let value = header_value(prefix, &raw).ok_or_else(|| {
            format!("provider {provider}: auth: the credential is not a valid header value")
        })?;
        Ok(Self {
            provider: provider.to_string(),
            name,
            prefix,
            value: ArcSwap::from_pointee(value),
            file: file.clone(),
        })
    }

    /// The provider's legacy `api_key:` field, sent as a bearer token.
    pub(super) fn bearer_value(provider: &str, key: &str) -> Result<Self, BuildError> {
        Self::new(
            provider,
            http::header::AUTHORIZATION,
            "Bearer ",
            &Some(Secret(key.to_string())),
            &None,
        )
        .map_err(|_| {
            BuildError::new(format!(
                "provider {provider}: api_key is not a valid header value"
            ))
        })
    }

    pub(super) fn header(&self) -> (HeaderName, HeaderValue) {
        (self.name.clone(), HeaderValue::clone(&self.value.load()))
    }

    /// Re-reads the file; on failure the previous value stays (and the
    /// failure is logged with the path only).
    pub(super) fn reload(&self) {
        let Some(path) = &self.file else { return };
        match read_file(path).map(|raw| header_value(self.prefix, &raw)) {
            Ok(Some(v)) => self.value.store(Arc::new(v)),
            Ok(None) => tracing::warn!(provider = %self.provider, %path,
                "credential file does not hold a valid header value; keeping the previous one"),
            Err(e) => tracing::warn!(provider = %self.provider, error = %e,
                "credential file could not be re-read; keeping the previous one"),
        }
    }
}

/// The secret from the inline value or the file (exactly one is set; the
/// config validator checks that).
pub(super) fn read_value(
    inline: &Option<Secret>,
    file: &Option<String>,
) -> Result<String, CredentialError> {
    match (inline, file) {
        (Some(s), _) => Ok(s.expose().to_string()),
        (None, Some(path)) => read_file(path),
        (None, None) => Err(CredentialError::Caller("no credential value configured")),
    }
}

/// A secret file's content without surrounding whitespace (files usually
/// end in a newline).
pub(super) fn read_file(path: &str) -> Result<String, CredentialError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| CredentialError::File {
            path: path.to_string(),
            message: e.kind().to_string(),
        })
}

fn header_value(prefix: &str, raw: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("{prefix}{raw}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}
