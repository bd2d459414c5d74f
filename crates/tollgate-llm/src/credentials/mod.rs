//! Upstream credentials: how the gateway proves itself to a provider
//! (config: a provider's `auth:` block, docs/credentials.md). Callers never
//! see these credentials, and no secret reaches a log, an error, a metric or
//! a trace: header values are marked sensitive, `Debug` is redacted, and
//! token-endpoint errors are scrubbed of the configured secrets.
//!
//! | mode | where the header comes from |
//! | --- | --- |
//! | static (`bearer`, `api_key`, legacy `api_key:`) | config value or a file, re-read on reload (`static_secret.rs`) |
//! | `client_credentials` | OAuth 2.0 token cached, refreshed ahead of expiry in the background, single-flight (`token.rs`) |
//! | `token_exchange` | RFC 8693: a workload token file (one cached token, like client credentials) or the caller's JWT (cached per subject token, `exchange.rs`) |
//! | `passthrough` | the caller's own `Authorization`, unchanged |

mod exchange;
mod oauth;
mod static_secret;
mod token;

use std::sync::Arc;
use tollgate_core::error::BuildError;

use http::{HeaderMap, HeaderName, HeaderValue};

use exchange::SubjectCache;
use oauth::{Grant, TokenEndpoint};
use static_secret::StaticSecret;
use token::TokenSource;
use tollgate_config::{ProviderConfig, SubjectSource, Timeouts, UpstreamAuth};
use tollgate_net::Egress;

/// Per-provider-kind defaults for the OAuth modes.
#[derive(Debug, Clone, Default)]
pub struct CredentialDefaults {
    /// Used when `auth.token_url` is absent (Databricks: `{workspace}/oidc/v1/token`).
    pub token_url: Option<String>,
    /// Used when `auth.scope` is absent.
    pub scope: Option<&'static str>,
    /// The header a provider's plain `api_key:` goes in (default: bearer).
    pub api_key_header: Option<&'static str>,
}

/// Why no credential could be produced. Messages carry no secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// `code` is the OAuth `error` code when the answer had a well-formed one.
    #[error("token endpoint returned HTTP {status}: {detail}")]
    Rejected {
        status: u16,
        code: Option<String>,
        detail: String,
    },
    #[error("token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("token endpoint sent an invalid response: {0}")]
    BadResponse(String),
    #[error("cannot read credential file {path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Caller(&'static str),
    /// The egress allowlist refused the token endpoint (or a redirect off it).
    #[error("token endpoint: {0}")]
    Egress(tollgate_net::EgressDenied),
}

impl CredentialError {
    /// What an API caller may be told: the kind of failure, the token
    /// endpoint's status and OAuth error code, or the caller's own mistake.
    /// Endpoint URLs, addresses, file paths, OS errors and free text from
    /// the endpoint stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            CredentialError::Rejected {
                status,
                code: Some(code),
                ..
            } => format!("token endpoint returned HTTP {status} ({code})"),
            CredentialError::Rejected { status, .. } => {
                format!("token endpoint returned HTTP {status}")
            }
            CredentialError::Unreachable(_) => "token endpoint could not be reached".into(),
            CredentialError::BadResponse(_) => "token endpoint sent an invalid response".into(),
            CredentialError::File { .. } => "a credential file could not be read".into(),
            CredentialError::Caller(m) => (*m).into(),
            CredentialError::Egress(_) => {
                "token endpoint refused by the gateway's egress allowlist".into()
            }
        }
    }
}

enum Mode {
    None,
    Static(StaticSecret),
    Token(Arc<TokenSource>),
    ExchangeCaller(SubjectCache),
    Passthrough,
}

/// A provider's credential, ready to produce the header for each request.
pub struct Credentials {
    mode: Mode,
}

impl Credentials {
    pub fn build(
        cfg: &ProviderConfig,
        defaults: CredentialDefaults,
        timeouts: &Timeouts,
        egress: &Egress,
    ) -> Result<Arc<Self>, BuildError> {
        Self::build_auth(
            &cfg.name,
            cfg.auth.as_ref(),
            cfg.api_key.as_ref(),
            defaults,
            timeouts,
            egress,
        )
    }

    /// The same for any upstream with an `auth:` block (MCP servers, later
    /// connections): `name` names it in errors, `api_key` is a provider's
    /// legacy plain key.
    pub fn build_auth(
        name: &str,
        auth: Option<&UpstreamAuth>,
        api_key: Option<&tollgate_config::Secret>,
        defaults: CredentialDefaults,
        timeouts: &Timeouts,
        egress: &Egress,
    ) -> Result<Arc<Self>, BuildError> {
        let endpoint = |url: &Option<String>| -> Result<TokenEndpoint, BuildError> {
            let url = url
                .clone()
                .or_else(|| defaults.token_url.clone())
                .ok_or_else(|| format!("provider {name}: auth.token_url is required"))?;
            TokenEndpoint::new(name, &url, timeouts, egress)
        };
        let scope = |s: &Option<String>| s.clone().or(defaults.scope.map(str::to_owned));
        let mode = match (auth, api_key) {
            (None, None) => Mode::None,
            (None, Some(key)) if key.expose().is_empty() => Mode::None,
            (None, Some(key)) => Mode::Static(match defaults.api_key_header {
                Some(h) => StaticSecret::new(
                    name,
                    HeaderName::from_static(h),
                    "",
                    &Some(key.clone()),
                    &None,
                )?,
                None => StaticSecret::bearer_value(name, key.expose())?,
            }),
            (Some(UpstreamAuth::Bearer { token, token_file }), _) => {
                Mode::Static(StaticSecret::new(
                    name,
                    http::header::AUTHORIZATION,
                    "Bearer ",
                    token,
                    token_file,
                )?)
            }
            (
                Some(UpstreamAuth::ApiKey {
                    header,
                    key,
                    key_file,
                }),
                _,
            ) => {
                let header = HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("provider {name}: bad auth.header"))?;
                Mode::Static(StaticSecret::new(name, header, "", key, key_file)?)
            }
            (
                Some(UpstreamAuth::ClientCredentials {
                    token_url,
                    client_id,
                    client_secret,
                    client_secret_file,
                    scope: s,
                    refresh_before,
                }),
                _,
            ) => {
                let secret = static_secret::read_value(client_secret, client_secret_file)
                    .map_err(|e| format!("provider {name}: auth: {e}"))?;
                let grant = Grant::ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: zeroize::Zeroizing::new(secret),
                    scope: scope(s),
                };
                Mode::Token(TokenSource::start(
                    name,
                    endpoint(token_url)?,
                    grant,
                    *refresh_before,
                ))
            }
            (
                Some(UpstreamAuth::TokenExchange {
                    token_url,
                    subject,
                    subject_token_file,
                    subject_token_type,
                    client_id,
                    scope: s,
                    refresh_before,
                }),
                _,
            ) => {
                let grant = Grant::Exchange {
                    subject_token_type: subject_token_type.clone(),
                    client_id: client_id.clone(),
                    scope: scope(s),
                    subject_file: subject_token_file.clone(),
                };
                match subject {
                    SubjectSource::File => Mode::Token(TokenSource::start(
                        name,
                        endpoint(token_url)?,
                        grant,
                        *refresh_before,
                    )),
                    SubjectSource::Caller => {
                        Mode::ExchangeCaller(SubjectCache::new(endpoint(token_url)?, grant))
                    }
                }
            }
            (Some(UpstreamAuth::Passthrough), _) => Mode::Passthrough,
        };
        Ok(Arc::new(Self { mode }))
    }

    /// The credential header for one request, if any. Only an expired (or
    /// never fetched) token makes this wait on the token endpoint.
    pub async fn header(
        &self,
        client_headers: &HeaderMap,
    ) -> Result<Option<(HeaderName, HeaderValue)>, CredentialError> {
        match &self.mode {
            Mode::None => Ok(None),
            Mode::Static(s) => Ok(Some(s.header())),
            Mode::Token(t) => Ok(Some((http::header::AUTHORIZATION, t.get().await?))),
            Mode::ExchangeCaller(c) => {
                // Only a JWT is ever sent to the token endpoint: a gateway
                // API key in the same header must not leave the gateway.
                let token = caller_bearer(client_headers)
                    .filter(|t| looks_like_jwt(t))
                    .ok_or(CredentialError::Caller(
                        "token exchange needs the caller's bearer JWT (Authorization: Bearer …)",
                    ))?;
                Ok(Some((http::header::AUTHORIZATION, c.get(token).await?)))
            }
            Mode::Passthrough => {
                let mut value = client_headers
                    .get(http::header::AUTHORIZATION)
                    .cloned()
                    .ok_or(CredentialError::Caller(
                        "passthrough needs the caller's Authorization header; the request had none",
                    ))?;
                value.set_sensitive(true);
                Ok(Some((http::header::AUTHORIZATION, value)))
            }
        }
    }

    /// Re-reads file-backed secrets (config reload).
    pub fn reload(&self) {
        if let Mode::Static(s) = &self.mode {
            s.reload();
        }
    }
}

/// The caller's bearer token, if it sent one.
fn caller_bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Three non-empty base64url segments: the shape of a JWS compact JWT.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_jwts_are_exchanged() {
        assert!(super::looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(!super::looks_like_jwt("tg-key-123"));
        assert!(!super::looks_like_jwt("a..b"));
        assert!(!super::looks_like_jwt("a.b.c.d"));
    }
}
