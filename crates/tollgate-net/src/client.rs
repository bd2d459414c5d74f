//! The one way the gateway builds an outbound HTTP client:
//! `client_builder(&egress)` → `ClientBuilder::with` (timeouts, HTTP
//! version, pool) → `build` → `Client`, whose `request` checks each URL
//! before reqwest sees it. The builder always adds the egress resolver, a
//! redirect policy that checks every hop, and rustls, after the caller's
//! settings, so no caller can leave them out.

use std::sync::Arc;

use reqwest::redirect;

use crate::error::{EgressDenied, Stage};
use crate::resolve::EgressResolver;
use crate::Egress;

/// reqwest's own default.
const DEFAULT_REDIRECTS: usize = 10;

/// A redirect chain longer than the client allows.
#[derive(Debug, thiserror::Error)]
#[error("too many redirects (more than {0})")]
pub struct TooManyRedirects(pub usize);

/// Starts a client whose every call is subject to `egress`.
pub fn client_builder(egress: &Egress) -> ClientBuilder {
    ClientBuilder {
        // The one place the workspace starts a reqwest client (clippy.toml).
        #[allow(clippy::disallowed_methods)]
        inner: reqwest::Client::builder(),
        egress: egress.clone(),
        max_redirects: DEFAULT_REDIRECTS,
    }
}

pub struct ClientBuilder {
    inner: reqwest::ClientBuilder,
    egress: Egress,
    max_redirects: usize,
}

impl ClientBuilder {
    /// The caller's own settings (timeouts, pool, HTTP version, TCP options).
    /// The resolver, redirect policy and TLS backend set by `build` win over
    /// anything set here.
    pub fn with(
        mut self,
        settings: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Self {
        self.inner = settings(self.inner);
        self
    }

    /// Most redirects followed per request (default 10; 0 follows none).
    /// Every hop is checked against the allowlist before it is followed.
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.max_redirects = n;
        self
    }

    pub fn build(self) -> Result<Client, reqwest::Error> {
        let egress = self.egress.clone();
        let max = self.max_redirects;
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                return attempt.error(TooManyRedirects(max));
            }
            match egress.check_url(attempt.url(), Stage::Redirect) {
                Ok(()) => attempt.follow(),
                Err(denied) => attempt.error(denied),
            }
        });
        let inner = self
            .inner
            .use_rustls_tls()
            .redirect(policy)
            .dns_resolver(Arc::new(EgressResolver {
                egress: self.egress.clone(),
            }))
            .build()?;
        Ok(Client {
            inner,
            egress: self.egress,
        })
    }
}

/// An outbound client: reqwest's, behind a check of every request's URL.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    egress: Egress,
}

impl Client {
    /// A request to `url`, or the refusal when the allowlist does not list
    /// its scheme, host and port (nothing is sent then).
    pub fn request(
        &self,
        method: http::Method,
        url: reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, EgressDenied> {
        self.egress.check_url(&url, Stage::Request)?;
        Ok(self.inner.request(method, url))
    }

    pub fn get(&self, url: reqwest::Url) -> Result<reqwest::RequestBuilder, EgressDenied> {
        self.request(http::Method::GET, url)
    }

    pub fn post(&self, url: reqwest::Url) -> Result<reqwest::RequestBuilder, EgressDenied> {
        self.request(http::Method::POST, url)
    }

    pub fn delete(&self, url: reqwest::Url) -> Result<reqwest::RequestBuilder, EgressDenied> {
        self.request(http::Method::DELETE, url)
    }

    /// The policy this client checks against.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }
}
