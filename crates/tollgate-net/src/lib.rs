#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! Egress: every outbound HTTP call the gateway makes (providers, token
//! endpoints, guardrail webhooks, MCP upstreams, OIDC discovery and JWKS,
//! and whatever is added later) goes through a client built here, with
//! `client_builder(&Egress)`. When the config has an `egress:` section,
//! only what `egress.allow` lists is reached (docs/egress.md), checked
//! three times: the URL of each request before it is sent (`Client`), each
//! redirect before it is followed, and each new connection's name and
//! addresses in the resolver, which hands the connector exactly the
//! addresses it checked. Without the section every call goes where it
//! did before. A client that is not reqwest (the OTLP exporter's gRPC
//! channel) opens its connections with `Egress::connect`, which makes the
//! same checks.
//!
//! `Egress` is one gateway's handle: the first snapshot creates it, later
//! ones share it, and the allowlist it holds is swapped on reload, so
//! clients kept across a reload check against the current list.
//!
//! Must not: know providers, requests or the pipeline.

mod client;
mod connect;
mod error;
mod redirect;
mod resolve;
mod rules;
pub mod special;
mod upstream;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tollgate_config::{egress_nameserver, EgressConfig};
use tollgate_core::error::BuildError;

pub use client::{client_builder, Client, ClientBuilder, TooManyRedirects};
pub use error::{EgressDenied, Reason, Stage};
pub use resolve::BoxError;
pub use rules::{Allowlist, Host};
pub use upstream::{BodyError, Checked, SendError, UpstreamBody, UpstreamClient, UpstreamSettings};

use resolve::Lookup;

/// One gateway's egress policy, shared by every client it built.
#[derive(Clone, Default)]
pub struct Egress(Arc<Inner>);

#[derive(Default)]
struct Inner {
    state: ArcSwap<State>,
    /// Serialises `apply`, so two reloads cannot interleave.
    applying: Mutex<()>,
}

/// What the checks read: one `load` per request or connection.
pub(crate) struct State {
    /// `None`: no `egress:` section, everything allowed.
    pub(crate) allow: Option<Allowlist>,
    pub(crate) lookup: Arc<Lookup>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            allow: None,
            lookup: Arc::new(Lookup::System),
        }
    }
}

/// The runtime form of an `egress:` section, built before anything is
/// swapped so a bad section leaves the running policy alone.
pub struct Prepared {
    allow: Option<Allowlist>,
    servers: Vec<SocketAddr>,
}

impl Egress {
    /// Builds the runtime form of `cfg` (`None`: no section).
    pub fn prepare(cfg: Option<&EgressConfig>) -> Result<Prepared, BuildError> {
        let Some(cfg) = cfg else {
            return Ok(Prepared {
                allow: None,
                servers: Vec::new(),
            });
        };
        let servers = cfg
            .nameservers
            .iter()
            .map(|s| {
                egress_nameserver(s).ok_or_else(|| {
                    BuildError::new(format!("egress.nameservers: bad address {s:?}"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            allow: Some(Allowlist::build(cfg)?),
            servers,
        })
    }

    /// Makes `prepared` the policy every client of this gateway checks
    /// against from now on. The nameservers' resolver (and its cache) is
    /// kept when they did not change.
    pub fn apply(&self, prepared: Prepared) -> Result<(), BuildError> {
        let _one = self
            .0
            .applying
            .lock()
            .map_err(|_| "egress: poisoned lock")?;
        let current = self.0.state.load();
        let lookup = if current.lookup.same(&prepared.servers) {
            current.lookup.clone()
        } else {
            Arc::new(Lookup::build(prepared.servers)?)
        };
        self.0.state.store(Arc::new(State {
            allow: prepared.allow,
            lookup,
        }));
        Ok(())
    }

    /// Is an allowlist in force (an `egress:` section)?
    pub fn restricted(&self) -> bool {
        self.0.state.load().allow.is_some()
    }

    /// Checks a URL against the current allowlist, recording a refusal.
    pub fn check_url(&self, url: &reqwest::Url, stage: Stage) -> Result<(), EgressDenied> {
        self.check_parts(
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default(),
            stage,
        )
    }

    /// `check_url` for an `http::Uri` (the providers' client, which never
    /// parses a `Url`). A URI without a port has its scheme's.
    pub fn check_uri(&self, uri: &http::Uri, stage: Stage) -> Result<(), EgressDenied> {
        let scheme = uri.scheme_str().unwrap_or_default();
        let port = uri.port_u16().or(match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        self.check_parts(scheme, uri.host().unwrap_or_default(), port, stage)
    }

    fn check_parts(
        &self,
        scheme: &str,
        shown: &str,
        port: Option<u16>,
        stage: Stage,
    ) -> Result<(), EgressDenied> {
        let state = self.0.state.load();
        let Some(allow) = state.allow.as_ref() else {
            return Ok(());
        };
        let port = port.unwrap_or(0);
        let host = match tollgate_config::egress_host_ip(shown) {
            Some(ip) => Host::Ip(ip),
            None => Host::Name(rules::normal_name(shown)),
        };
        allow
            .check(scheme, host, port)
            .map_err(|reason| EgressDenied::record(format!("{shown}:{port}"), reason, stage, None))
    }

    /// The current state, owned (the resolver holds it across awaits).
    pub(crate) fn state(&self) -> Arc<State> {
        self.0.state.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Prepared {
        let cfg: EgressConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Egress::prepare(Some(&cfg)).unwrap()
    }

    #[tokio::test]
    async fn apply_swaps_what_every_check_reads() {
        let egress = Egress::default();
        let url = reqwest::Url::parse("https://user:pw@api.example.com/v1?key=secret").unwrap();
        assert!(egress.check_url(&url, Stage::Request).is_ok());
        assert!(!egress.restricted());

        egress
            .apply(policy(
                "allow: [{host: other.example}]\nnameservers: ['127.0.0.1:5353']",
            ))
            .unwrap();
        assert!(egress.restricted());
        let denied = egress.check_url(&url, Stage::Request).unwrap_err();
        assert_eq!(denied.destination, "api.example.com:443");
        assert_eq!(denied.reason, Reason::Host);
        for secret in ["pw", "secret", "/v1"] {
            assert!(!denied.to_string().contains(secret), "{denied}");
        }
        // An IPv4-mapped IPv6 literal is the IPv4 address.
        let mapped = reqwest::Url::parse("http://[::ffff:127.0.0.1]:8080/").unwrap();
        let denied = egress.check_url(&mapped, Stage::Redirect).unwrap_err();
        assert_eq!(denied.reason, Reason::IpLiteral);
        assert_eq!(denied.stage, Stage::Redirect);
        let file = reqwest::Url::parse("file:///etc/passwd").unwrap();
        assert_eq!(
            egress.check_url(&file, Stage::Request).unwrap_err().reason,
            Reason::Scheme
        );

        egress.apply(Egress::prepare(None).unwrap()).unwrap();
        assert!(egress.check_url(&url, Stage::Request).is_ok());
    }
}
