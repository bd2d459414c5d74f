//! The `auth:` block of a provider: how the gateway proves itself to the
//! upstream (see docs/credentials.md). Schema only; the runtime lives in
//! `tollgate_llm::credentials`. Secret values are wrapped in `Secret`, whose `Debug`
//! never shows them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// A credential value (from `${ENV}` or the file itself). `Debug` prints
/// `[redacted]`, so a config dumped with `{:?}` shows no secret.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// One credential mode per provider. `Debug` shows `token_url` without
/// userinfo and query (`redact::shown_url`) and secrets as `[redacted]`.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpstreamAuth {
    /// `Authorization: Bearer <token>`; `token` or `token_file` (re-read on reload).
    Bearer {
        #[serde(default)]
        token: Option<Secret>,
        #[serde(default)]
        token_file: Option<String>,
    },
    /// A key in its own header (`api-key` for Azure OpenAI by default).
    ApiKey {
        #[serde(default = "default_api_key_header")]
        header: String,
        #[serde(default)]
        key: Option<Secret>,
        #[serde(default)]
        key_file: Option<String>,
    },
    /// OAuth 2.0 client credentials (Databricks service principal, Entra ID
    /// app): token cached and refreshed in the background before it expires.
    ClientCredentials {
        /// Default for `databricks`: `{base_url}/oidc/v1/token`.
        #[serde(default)]
        token_url: Option<String>,
        client_id: String,
        #[serde(default)]
        client_secret: Option<Secret>,
        #[serde(default)]
        client_secret_file: Option<String>,
        /// Default: `all-apis` (databricks), `https://cognitiveservices.azure.com/.default`
        /// (azure_openai).
        #[serde(default)]
        scope: Option<String>,
        #[serde(default = "default_refresh_before", with = "duration")]
        refresh_before: Duration,
    },
    /// RFC 8693 token exchange (OIDC token federation): the caller's JWT, or a
    /// workload token file, exchanged for a provider token, cached per subject.
    TokenExchange {
        #[serde(default)]
        token_url: Option<String>,
        /// `caller` (the caller's bearer JWT) or `file` (`subject_token_file`).
        #[serde(default)]
        subject: SubjectSource,
        #[serde(default)]
        subject_token_file: Option<String>,
        #[serde(default = "default_subject_token_type")]
        subject_token_type: String,
        /// Sent as `client_id` (Databricks: the service principal of a
        /// federation policy); optional.
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default = "default_refresh_before", with = "duration")]
        refresh_before: Duration,
    },
    /// On-behalf-of: the caller's own `Authorization` header is forwarded
    /// unchanged; the gateway never sends a credential of its own.
    Passthrough,
}

impl std::fmt::Debug for UpstreamAuth {
    /// Every field named (no `..`), so a new one does not build until it
    /// says how it prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::url;
        match self {
            UpstreamAuth::Bearer { token, token_file } => f
                .debug_struct("Bearer")
                .field("token", token)
                .field("token_file", token_file)
                .finish(),
            UpstreamAuth::ApiKey {
                header,
                key,
                key_file,
            } => f
                .debug_struct("ApiKey")
                .field("header", header)
                .field("key", key)
                .field("key_file", key_file)
                .finish(),
            UpstreamAuth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                client_secret_file,
                scope,
                refresh_before,
            } => f
                .debug_struct("ClientCredentials")
                .field("token_url", &url(token_url))
                .field("client_id", client_id)
                .field("client_secret", client_secret)
                .field("client_secret_file", client_secret_file)
                .field("scope", scope)
                .field("refresh_before", refresh_before)
                .finish(),
            UpstreamAuth::TokenExchange {
                token_url,
                subject,
                subject_token_file,
                subject_token_type,
                client_id,
                scope,
                refresh_before,
            } => f
                .debug_struct("TokenExchange")
                .field("token_url", &url(token_url))
                .field("subject", subject)
                .field("subject_token_file", subject_token_file)
                .field("subject_token_type", subject_token_type)
                .field("client_id", client_id)
                .field("scope", scope)
                .field("refresh_before", refresh_before)
                .finish(),
            UpstreamAuth::Passthrough => f.write_str("Passthrough"),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectSource {
    #[default]
    Caller,
    File,
}

fn default_api_key_header() -> String {
    "api-key".into()
}

fn default_refresh_before() -> Duration {
    Duration::from_secs(300)
}

fn default_subject_token_type() -> String {
    "urn:ietf:params:oauth:token-type:jwt".into()
}

impl UpstreamAuth {
    /// Problems with this block, each prefixed by `at` (the block's path).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        let one_of = |p: &mut Vec<String>, a: bool, b: bool, names: &str| {
            if a == b {
                p.push(format!("{at}: set exactly one of {names}"));
            }
        };
        let url = |p: &mut Vec<String>, u: &Option<String>| {
            if let Some(u) = u {
                if url::Url::parse(u).is_err() || !u.starts_with("http") {
                    p.push(format!(
                        "{at}.token_url: {:?} is not an http(s) URL",
                        crate::shown_url(u)
                    ));
                }
            }
        };
        match self {
            UpstreamAuth::Bearer { token, token_file } => {
                one_of(
                    &mut p,
                    token.is_some(),
                    token_file.is_some(),
                    "token, token_file",
                );
                if let Some(t) = token {
                    if http::HeaderValue::from_str(&format!("Bearer {}", t.expose())).is_err() {
                        p.push(format!(
                            "{at}.token: contains characters not allowed in a header"
                        ));
                    }
                }
            }
            UpstreamAuth::ApiKey {
                header,
                key,
                key_file,
            } => {
                one_of(&mut p, key.is_some(), key_file.is_some(), "key, key_file");
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    p.push(format!("{at}.header: {header:?} is not a header name"));
                }
                if let Some(k) = key {
                    if http::HeaderValue::from_str(k.expose()).is_err() {
                        p.push(format!(
                            "{at}.key: contains characters not allowed in a header"
                        ));
                    }
                }
            }
            UpstreamAuth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                client_secret_file,
                ..
            } => {
                one_of(
                    &mut p,
                    client_secret.is_some(),
                    client_secret_file.is_some(),
                    "client_secret, client_secret_file",
                );
                if client_id.is_empty() {
                    p.push(format!("{at}.client_id: must not be empty"));
                }
                url(&mut p, token_url);
            }
            UpstreamAuth::TokenExchange {
                token_url,
                subject,
                subject_token_file,
                ..
            } => {
                match (subject, subject_token_file) {
                    (SubjectSource::File, None) => p.push(format!(
                        "{at}.subject_token_file: required when subject is file"
                    )),
                    (SubjectSource::Caller, Some(_)) => p.push(format!(
                        "{at}.subject_token_file: only used when subject is file"
                    )),
                    _ => {}
                }
                url(&mut p, token_url);
            }
            UpstreamAuth::Passthrough => {}
        }
        p
    }
}

/// Cross-field checks of a provider's credentials (called by `validate`).
pub(super) fn provider_problems(prov: &super::ProviderConfig, at: &str) -> Vec<String> {
    use super::ProviderKind;
    let mut p = Vec::new();
    if let Some(auth) = &prov.auth {
        p.extend(auth.problems(&format!("{at}.auth")));
        if prov.api_key.is_some() {
            p.push(format!("{at}: set either api_key or auth, not both"));
        }
        let needs_url = matches!(
            auth,
            UpstreamAuth::ClientCredentials {
                token_url: None,
                ..
            } | UpstreamAuth::TokenExchange {
                token_url: None,
                ..
            }
        );
        if needs_url && prov.kind != ProviderKind::Databricks {
            p.push(format!(
                "{at}.auth.token_url: required (only databricks has a default)"
            ));
        }
        if prov.kind == ProviderKind::Mock {
            p.push(format!("{at}.auth: the mock provider takes no credentials"));
        }
    }
    match (prov.kind, &prov.api_version) {
        (ProviderKind::AzureOpenai, None) => p.push(format!(
            "{at}.api_version: required for kind azure_openai (e.g. 2024-10-21)"
        )),
        (ProviderKind::AzureOpenai, Some(v)) if v.is_empty() || v.contains(['&', '#', ' ']) => {
            p.push(format!("{at}.api_version: {v:?} is not a version"))
        }
        (ProviderKind::AzureOpenai, _) | (_, None) => {}
        (_, Some(_)) => p.push(format!("{at}.api_version: only used by kind azure_openai")),
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode_and_hides_secrets() {
        let yaml = r#"
- { type: bearer, token: s3cr3t }
- { type: api_key, key_file: /k }
- { type: client_credentials, client_id: sp, client_secret: cs-VALUE-9, refresh_before: 30s }
- { type: token_exchange, subject: file, subject_token_file: /t }
- { type: passthrough }
"#;
        let parsed: Result<Vec<UpstreamAuth>, _> = serde_yaml_ng::from_str(yaml);
        let Ok(all) = parsed else {
            unreachable!("{parsed:?}")
        };
        assert_eq!(all.len(), 5);
        assert!(all.iter().all(|a| a.problems("auth").is_empty()));
        assert!(!format!("{all:?}").contains("s3cr3t"));
        assert!(!format!("{all:?}").contains("cs-VALUE-9"));
        let bad: Result<UpstreamAuth, _> = serde_yaml_ng::from_str("{type: bearer, tokn: x}");
        assert!(bad.is_err());
        let both = UpstreamAuth::Bearer {
            token: Some(Secret("a".into())),
            token_file: Some("/f".into()),
        };
        assert!(both.problems("auth")[0].contains("exactly one"));
    }
}
