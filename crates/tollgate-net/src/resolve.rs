//! Name resolution for every outbound connection, with the check inside:
//! reqwest asks this resolver once per new connection, and the socket
//! connects only to the addresses returned here, so the addresses checked
//! are the addresses connected to (a name that answers differently a
//! moment later, DNS rebinding, changes nothing). Names go to the system
//! resolver, or to `egress.nameservers` through hickory when set.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tollgate_core::error::BuildError;

use crate::error::{EgressDenied, Reason, Stage};
use crate::{Egress, State};

/// Where names are looked up.
pub(crate) enum Lookup {
    /// `getaddrinfo` on Tokio's blocking pool (what reqwest does by default).
    System,
    /// The configured nameservers (UDP, then TCP for a truncated answer).
    Servers {
        servers: Vec<SocketAddr>,
        resolver: Box<TokioResolver>,
    },
}

impl Lookup {
    pub(crate) fn build(servers: Vec<SocketAddr>) -> Result<Self, BuildError> {
        if servers.is_empty() {
            return Ok(Lookup::System);
        }
        let configs = servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), configs);
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .build()
            .map_err(|e| BuildError::of(e).context("egress.nameservers"))?;
        Ok(Lookup::Servers {
            servers,
            resolver: Box::new(resolver),
        })
    }

    /// Is this lookup already what `servers` asks for (kept across reloads,
    /// with its cache)?
    pub(crate) fn same(&self, servers: &[SocketAddr]) -> bool {
        match self {
            Lookup::System => servers.is_empty(),
            Lookup::Servers { servers: mine, .. } => mine == servers,
        }
    }

    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, BoxError> {
        match self {
            Lookup::System => Ok(tokio::net::lookup_host((name, 0))
                .await?
                .map(|a| a.ip())
                .collect()),
            Lookup::Servers { resolver, .. } => {
                Ok(resolver.lookup_ip(name).await?.iter().collect())
            }
        }
    }
}

/// An error of a lookup or a connection (an `EgressDenied` in its chain
/// when the allowlist refused it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The resolver every client built by `client_builder` uses.
pub(crate) struct EgressResolver {
    pub(crate) egress: Egress,
}

impl Resolve for EgressResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let state = self.egress.state();
        Box::pin(async move { Ok(to_addrs(checked_addresses(&state, name.as_str()).await?)) })
    }
}

/// The addresses of `name` a new connection may use: every one when no
/// allowlist is in force; otherwise the name must be listed, and only the
/// addresses the allowlist accepts are returned (none accepted: refused).
pub(crate) async fn checked_addresses(state: &State, name: &str) -> Result<Vec<IpAddr>, BoxError> {
    let Some(allow) = state.allow.as_ref() else {
        return state.lookup.addresses(name).await;
    };
    if !allow.name_listed(name) {
        let denied = EgressDenied::record(name.to_string(), Reason::Host, Stage::Connect, None);
        return Err(Box::new(denied) as BoxError);
    }
    let (allowed, refused): (Vec<IpAddr>, Vec<IpAddr>) = state
        .lookup
        .addresses(name)
        .await?
        .into_iter()
        .partition(|ip| allow.address_allowed(*ip));
    if allowed.is_empty() && !refused.is_empty() {
        let detail = format!("resolved to {refused:?}");
        let denied = EgressDenied::record(
            name.to_string(),
            Reason::Address,
            Stage::Connect,
            Some(&detail),
        );
        return Err(Box::new(denied) as BoxError);
    }
    if !refused.is_empty() {
        tracing::debug!(name, ?refused, "egress: addresses left out of a connection");
    }
    Ok(allowed)
}

/// Port 0: the connector puts the URL's port on each address.
fn to_addrs(ips: Vec<IpAddr>) -> Addrs {
    Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)))
}
