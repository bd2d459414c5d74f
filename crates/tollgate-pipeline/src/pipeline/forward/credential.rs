//! The credential a route or connection sends upstream. A route's `auth:`
//! and a connection's credential from `value:`/`file:` use the providers'
//! credential modes (`tollgate_llm::credentials`: static, OAuth client
//! credentials, token exchange, the caller's token). A connection's
//! credential from `secret: NAME` is a named secret, asked of the
//! `SecretSource` per call, and only once the call was granted; an OAuth
//! client secret held that way starts its token source on the first
//! granted call.
//!
//! Must not: log, return or format a secret; reveal one before the grant.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::OnceCell;
use tollgate_config::{
    ConnectionCredential, CredentialKind, Secret, SubjectSource, Timeouts, UpstreamAuth,
};
use tollgate_core::error::{BuildError, GatewayError};
use tollgate_core::secret::SecretSource;
use tollgate_llm::credentials::{CredentialDefaults, CredentialError, Credentials};
use tollgate_llm::providers::ProviderError;
use zeroize::Zeroizing;

/// Where a named secret goes.
pub enum Shape {
    Bearer,
    Header(HeaderName),
    Basic(String),
}

pub enum Credential {
    None,
    Managed(Arc<Credentials>),
    /// `basic` from `value:`/`file:`: the header worked out at build.
    Basic(HeaderValue),
    /// A named secret, revealed per granted call.
    Named {
        secret: String,
        shape: Shape,
    },
    /// OAuth client credentials whose client secret is a named secret.
    NamedOauth(Box<NamedOauth>),
}

pub struct NamedOauth {
    name: String,
    secret: String,
    token_url: String,
    client_id: String,
    scope: Option<String>,
    refresh_before: Duration,
    timeouts: Timeouts,
    egress: tollgate_net::Egress,
    started: OnceCell<Arc<Credentials>>,
}

/// `Basic` credentials; the strings that hold the password on the way are
/// wiped (the header value is the one copy kept).
fn basic(user: &str, password: &str) -> Option<HeaderValue> {
    let pair = Zeroizing::new(format!("{user}:{password}"));
    let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
    let mut v =
        HeaderValue::from_str(&Zeroizing::new(format!("Basic {}", encoded.as_str()))).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn unavailable(name: &str, public: impl Into<String>) -> GatewayError {
    let public = public.into();
    GatewayError::from(ProviderError::Credentials {
        provider: name.to_string(),
        message: public.clone(),
        public,
    })
}

fn from_credential_error(name: &str, e: &CredentialError) -> GatewayError {
    GatewayError::from(ProviderError::Credentials {
        provider: name.to_string(),
        public: e.public_message(),
        message: e.to_string(),
    })
}

impl Credential {
    pub fn for_route(
        name: &str,
        auth: Option<&UpstreamAuth>,
        timeouts: &Timeouts,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, BuildError> {
        Ok(match auth {
            None => Credential::None,
            Some(a) => Credential::Managed(Credentials::build_auth(
                name,
                Some(a),
                None,
                CredentialDefaults::default(),
                timeouts,
                egress,
            )?),
        })
    }

    pub fn for_connection(
        name: &str,
        cred: Option<&ConnectionCredential>,
        timeouts: &Timeouts,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, BuildError> {
        let Some(c) = cred else {
            return Ok(Credential::None);
        };
        let managed = |auth: UpstreamAuth| -> Result<Self, BuildError> {
            Ok(Credential::Managed(Credentials::build_auth(
                name,
                Some(&auth),
                None,
                CredentialDefaults::default(),
                timeouts,
                egress,
            )?))
        };
        if let Some(secret) = &c.secret {
            let shape = match c.kind {
                CredentialKind::Bearer => Shape::Bearer,
                CredentialKind::Header => Shape::Header(
                    HeaderName::from_bytes(c.header.as_deref().unwrap_or("").as_bytes())
                        .map_err(|_| format!("connection {name}: bad credential.header"))?,
                ),
                CredentialKind::Basic => Shape::Basic(c.username.clone().unwrap_or_default()),
                CredentialKind::OauthClientCredentials => {
                    return Ok(Credential::NamedOauth(Box::new(NamedOauth {
                        name: name.to_string(),
                        secret: secret.clone(),
                        token_url: c.token_url.clone().unwrap_or_default(),
                        client_id: c.client_id.clone().unwrap_or_default(),
                        scope: c.scope.clone(),
                        refresh_before: c.refresh_before,
                        timeouts: timeouts.clone(),
                        egress: egress.clone(),
                        started: OnceCell::new(),
                    })));
                }
                CredentialKind::TokenExchange | CredentialKind::Caller => {
                    return Err(format!("connection {name}: credential takes no secret").into())
                }
            };
            return Ok(Credential::Named {
                secret: secret.clone(),
                shape,
            });
        }
        match c.kind {
            CredentialKind::Bearer => managed(UpstreamAuth::Bearer {
                token: c.value.clone(),
                token_file: c.file.clone(),
            }),
            CredentialKind::Header => managed(UpstreamAuth::ApiKey {
                header: c.header.clone().unwrap_or_default(),
                key: c.value.clone(),
                key_file: c.file.clone(),
            }),
            CredentialKind::Basic => {
                let password = match (&c.value, &c.file) {
                    (Some(v), _) => v.expose().to_string(),
                    (None, Some(path)) => std::fs::read_to_string(path)
                        .map(|s| s.trim().to_string())
                        .map_err(|e| {
                            format!("connection {name}: cannot read credential file {path}: {e}")
                        })?,
                    (None, None) => String::new(),
                };
                let user = c.username.as_deref().unwrap_or("");
                basic(user, &password)
                    .map(Credential::Basic)
                    .ok_or_else(|| {
                        format!("connection {name}: credential not valid in a header").into()
                    })
            }
            CredentialKind::OauthClientCredentials => managed(UpstreamAuth::ClientCredentials {
                token_url: c.token_url.clone(),
                client_id: c.client_id.clone().unwrap_or_default(),
                client_secret: c.value.clone(),
                client_secret_file: c.file.clone(),
                scope: c.scope.clone(),
                refresh_before: c.refresh_before,
            }),
            CredentialKind::TokenExchange => managed(UpstreamAuth::TokenExchange {
                token_url: c.token_url.clone(),
                subject: match c.subject_token_file {
                    Some(_) => SubjectSource::File,
                    None => SubjectSource::Caller,
                },
                subject_token_file: c.subject_token_file.clone(),
                subject_token_type: "urn:ietf:params:oauth:token-type:jwt".into(),
                client_id: c.client_id.clone(),
                scope: c.scope.clone(),
                refresh_before: c.refresh_before,
            }),
            CredentialKind::Caller => managed(UpstreamAuth::Passthrough),
        }
    }

    /// The header for one granted call. A named secret is revealed here,
    /// and nowhere else.
    pub async fn header(
        &self,
        name: &str,
        secrets: &dyn SecretSource,
        caller: &HeaderMap,
    ) -> Result<Option<(HeaderName, HeaderValue)>, GatewayError> {
        match self {
            Credential::None => Ok(None),
            Credential::Managed(c) => c
                .header(caller)
                .await
                .map_err(|e| from_credential_error(name, &e)),
            Credential::Basic(v) => Ok(Some((http::header::AUTHORIZATION, v.clone()))),
            Credential::Named { secret, shape } => {
                let value = secrets
                    .reveal(secret)?
                    .ok_or_else(|| unavailable(name, format!("secret `{secret}` is not set")))?;
                let plain = value.expose();
                let header = match shape {
                    Shape::Bearer => {
                        HeaderValue::from_str(&Zeroizing::new(format!("Bearer {plain}")))
                            .ok()
                            .map(|v| (http::header::AUTHORIZATION, v))
                    }
                    Shape::Header(h) => HeaderValue::from_str(plain).ok().map(|v| (h.clone(), v)),
                    Shape::Basic(user) => {
                        basic(user, plain).map(|v| (http::header::AUTHORIZATION, v))
                    }
                };
                let (h, mut v) = header.ok_or_else(|| {
                    unavailable(name, format!("secret `{secret}` is not valid in a header"))
                })?;
                v.set_sensitive(true);
                Ok(Some((h, v)))
            }
            Credential::NamedOauth(o) => {
                let creds = o
                    .started
                    .get_or_try_init(|| async {
                        let value = secrets.reveal(&o.secret)?.ok_or_else(|| {
                            unavailable(name, format!("secret `{}` is not set", o.secret))
                        })?;
                        let auth = UpstreamAuth::ClientCredentials {
                            token_url: Some(o.token_url.clone()),
                            client_id: o.client_id.clone(),
                            client_secret: Some(Secret(value.expose().to_string())),
                            client_secret_file: None,
                            scope: o.scope.clone(),
                            refresh_before: o.refresh_before,
                        };
                        Credentials::build_auth(
                            &o.name,
                            Some(&auth),
                            None,
                            CredentialDefaults::default(),
                            &o.timeouts,
                            &o.egress,
                        )
                        .map_err(|_| unavailable(name, "the OAuth client could not be built"))
                    })
                    .await?;
                creds
                    .header(caller)
                    .await
                    .map_err(|e| from_credential_error(name, &e))
            }
        }
    }

    /// Re-reads file-backed secrets (config reload of an unchanged upstream).
    pub fn reload(&self) {
        if let Credential::Managed(c) = self {
            c.reload();
        }
    }
}
