//! Talking to an OAuth 2.0 token endpoint: the client-credentials grant
//! (RFC 6749 §4.4, client authenticated with HTTP Basic as Databricks and
//! Entra ID both accept) and token exchange (RFC 8693). Error details from
//! the endpoint are scrubbed of every secret the request carried.

use std::time::Duration;
use tollgate_core::error::BuildError;

use http::HeaderValue;
use serde::Deserialize;

use super::static_secret::read_file;
use super::CredentialError;
use crate::upstream_text::{error_chain, read_capped, truncate};
use tollgate_config::Timeouts;
use tollgate_net::{Egress, EgressDenied};
use zeroize::Zeroizing;

/// Used when a token response has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest lifetime believed (keeps `Instant` arithmetic in range).
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

pub(super) enum Grant {
    ClientCredentials {
        client_id: String,
        /// Wiped when the credential is dropped (a reload that replaces it).
        client_secret: Zeroizing<String>,
        scope: Option<String>,
    },
    Exchange {
        subject_token_type: String,
        client_id: Option<String>,
        scope: Option<String>,
        /// The workload token file (`subject: file`); `None` for the caller's JWT.
        subject_file: Option<String>,
    },
}

/// A fresh access token.
pub(super) struct Fetched {
    /// `Bearer <access_token>`, marked sensitive.
    pub header: HeaderValue,
    pub lifetime: Duration,
}

pub(super) struct TokenEndpoint {
    pub provider: String,
    url: reqwest::Url,
    client: tollgate_net::Client,
}

#[derive(Deserialize)]
struct TokenResponse {
    /// Moved into a `Zeroizing` as soon as it is read.
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenEndpoint {
    pub(super) fn new(
        provider: &str,
        url: &str,
        timeouts: &Timeouts,
        egress: &Egress,
    ) -> Result<Self, BuildError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| format!("provider {provider}: bad auth.token_url: {e}"))?;
        let client = tollgate_net::client_builder(egress)
            .with(|b| {
                b.connect_timeout(timeouts.connect)
                    .timeout(timeouts.first_byte + timeouts.connect)
            })
            .build()
            .map_err(|e| format!("provider {provider}: cannot build token client: {e}"))?;
        Ok(Self {
            provider: provider.to_string(),
            url,
            client,
        })
    }

    /// Runs the grant. `caller_token` is the subject token for a caller
    /// exchange; a file-backed exchange reads its file here, every time, so a
    /// rotated workload token is picked up.
    pub(super) async fn fetch(
        &self,
        grant: &Grant,
        caller_token: Option<&str>,
    ) -> Result<Fetched, CredentialError> {
        // The form and the strings to scrub hold the client secret or the
        // subject token: wiped when this call ends.
        let z = |s: &str| Zeroizing::new(s.to_string());
        type Form = Vec<(&'static str, Zeroizing<String>)>;
        let (form, secrets, basic): (Form, Vec<Zeroizing<String>>, _) = match grant {
            Grant::ClientCredentials {
                client_id,
                client_secret,
                scope,
            } => {
                let mut form = vec![("grant_type", z("client_credentials"))];
                if let Some(s) = scope {
                    form.push(("scope", z(s)));
                }
                (
                    form,
                    vec![client_secret.clone()],
                    Some((client_id, client_secret.as_str())),
                )
            }
            Grant::Exchange {
                subject_token_type,
                client_id,
                scope,
                subject_file,
            } => {
                let subject = match (subject_file, caller_token) {
                    (Some(path), _) => Zeroizing::new(read_file(path)?),
                    (None, Some(t)) => z(t),
                    (None, None) => {
                        return Err(CredentialError::Caller(
                            "token exchange has no subject token",
                        ))
                    }
                };
                let mut form = vec![
                    (
                        "grant_type",
                        z("urn:ietf:params:oauth:grant-type:token-exchange"),
                    ),
                    ("subject_token", subject.clone()),
                    ("subject_token_type", z(subject_token_type)),
                ];
                if let Some(id) = client_id {
                    form.push(("client_id", z(id)));
                }
                if let Some(s) = scope {
                    form.push(("scope", z(s)));
                }
                (form, vec![subject], None)
            }
        };
        let mut req = self
            .client
            .post(self.url.clone())
            .map_err(CredentialError::Egress)?
            .header(http::header::ACCEPT, "application/json")
            .form(
                &form
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect::<Vec<_>>(),
            );
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        metrics::counter!("tollgate_upstream_token_requests_total", "provider" => self.provider.clone())
            .increment(1);
        let resp = req.send().await.map_err(|e| match EgressDenied::find(&e) {
            Some(denied) => CredentialError::Egress(denied.clone()),
            None => CredentialError::Unreachable(scrub(error_chain(&e), &secrets)),
        })?;
        let status = resp.status();
        let body = read_capped(http::Response::from(resp), 64 * 1024).await;
        if !status.is_success() {
            let (code, detail) = match serde_json::from_slice::<OAuthError>(&body) {
                Ok(OAuthError {
                    error: Some(code),
                    error_description,
                }) => {
                    let detail = match error_description {
                        Some(d) => format!("{code}: {d}"),
                        None => code.clone(),
                    };
                    (oauth_code(&code), detail)
                }
                _ => (None, String::from_utf8_lossy(&body).trim().to_string()),
            };
            metrics::counter!("tollgate_upstream_token_failures_total", "provider" => self.provider.clone())
                .increment(1);
            return Err(CredentialError::Rejected {
                status: status.as_u16(),
                code,
                detail: truncate(scrub(detail, &secrets), 300),
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            CredentialError::BadResponse(format!("expected a JSON token response: {e}"))
        })?;
        let token = Zeroizing::new(parsed.access_token);
        let bearer = Zeroizing::new(format!("Bearer {}", token.as_str()));
        let mut header = HeaderValue::from_str(&bearer).map_err(|_| {
            CredentialError::BadResponse("access_token is not a valid header value".into())
        })?;
        header.set_sensitive(true);
        Ok(Fetched {
            header,
            lifetime: parsed
                .expires_in
                .map_or(DEFAULT_LIFETIME, Duration::from_secs)
                .min(MAX_LIFETIME),
        })
    }
}

/// Replaces every occurrence of a secret (≥ 4 chars) in `text`.
fn scrub(mut text: String, secrets: &[Zeroizing<String>]) -> String {
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if text.contains(s.as_str()) {
            text = text.replace(s.as_str(), "[redacted]");
        }
    }
    text
}

/// An RFC 6749 error code (`invalid_client`, `temporarily_unavailable`):
/// short, lower-case ASCII and `_`, so it can be shown to an API caller;
/// anything else is free text and stays in the log.
fn oauth_code(code: &str) -> Option<String> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    ok.then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn scrubs_secrets() {
        let out = super::scrub(
            "bad secret hunter22 in hunter22".into(),
            &["hunter22".to_string().into(), "x".to_string().into()],
        );
        assert_eq!(out, "bad secret [redacted] in [redacted]");
    }
}
