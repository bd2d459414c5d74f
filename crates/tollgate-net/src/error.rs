//! A refused outbound call: what was refused (scheme, host and port only,
//! never a path, query or userinfo, where credentials may live), why, and
//! at which step. Each refusal is counted
//! (`tollgate_egress_denied_total{reason}`) and logged at warn once, where
//! it happens; callers find it again in a reqwest error's source chain.

use std::fmt;

use tollgate_core::error::{ErrorKind, GatewayError};

/// Why a destination was refused (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The name matches no rule.
    Host,
    /// An IP address in the URL that no rule lists.
    IpLiteral,
    /// The host is listed, but not for this port.
    Port,
    /// Neither http nor https, or not a scheme the host's rule allows.
    Scheme,
    /// The name resolved only to addresses that are not public and not listed.
    Address,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Host => "host",
            Reason::IpLiteral => "ip_literal",
            Reason::Port => "port",
            Reason::Scheme => "scheme",
            Reason::Address => "address",
        }
    }

    fn says(self) -> &'static str {
        match self {
            Reason::Host => "the host is not in egress.allow",
            Reason::IpLiteral => "an IP address must be listed in egress.allow",
            Reason::Port => "the port is not allowed for this host",
            Reason::Scheme => "the scheme is not allowed for this host",
            Reason::Address => {
                "the name resolves only to private or reserved addresses egress.allow does not list"
            }
        }
    }
}

/// Where the refusal happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The URL of a request, before anything is sent.
    Request,
    /// A redirect's `Location`, before it is followed.
    Redirect,
    /// The name and its addresses, when a new connection is opened.
    Connect,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Request => "request",
            Stage::Redirect => "redirect",
            Stage::Connect => "connect",
        }
    }
}

/// An outbound call the egress allowlist refused.
#[derive(Debug, Clone, thiserror::Error)]
pub struct EgressDenied {
    /// `host` or `host:port` (an IPv6 address in brackets).
    pub destination: String,
    pub reason: Reason,
    pub stage: Stage,
}

impl fmt::Display for EgressDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let after = match self.stage {
            Stage::Redirect => " (redirect)",
            _ => "",
        };
        write!(
            f,
            "egress to {}{after} refused: {}",
            self.destination,
            self.reason.says()
        )
    }
}

impl EgressDenied {
    /// What a caller may be told: the reason, not the destination (the
    /// gateway keeps upstream hosts and addresses in its log).
    pub fn public(&self) -> String {
        format!(
            "egress refused by the gateway's allowlist: {}",
            self.reason.says()
        )
    }

    /// Counts and logs the refusal (once: call it where the refusal is made).
    /// `detail` is for the log only (the addresses a name resolved to).
    pub(crate) fn record(
        destination: String,
        reason: Reason,
        stage: Stage,
        detail: Option<&str>,
    ) -> Self {
        metrics::counter!("tollgate_egress_denied_total", "reason" => reason.label()).increment(1);
        tracing::warn!(
            destination = %destination,
            reason = reason.label(),
            stage = stage.label(),
            detail = detail.unwrap_or(""),
            "outbound call refused by the egress allowlist"
        );
        Self {
            destination,
            reason,
            stage,
        }
    }

    /// The refusal somewhere in an error's source chain (a reqwest error
    /// wraps the resolver's or the redirect policy's).
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressDenied> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(d) = err.downcast_ref::<EgressDenied>() {
                return Some(d);
            }
            cur = err.source();
        }
        None
    }
}

/// The caller's view: 502 `egress_denied`. The gateway's policy refused
/// its own upstream call; the caller's request is not at fault, and a
/// retry will not help. The destination goes to the log (`detail`).
impl From<EgressDenied> for GatewayError {
    fn from(e: EgressDenied) -> Self {
        GatewayError::new(ErrorKind::Server, 502, "egress_denied", e.public())
            .with_code("egress_denied")
            .with_detail(e.to_string())
            .with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_in_a_chain_and_rendered() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] EgressDenied);
        let d = EgressDenied {
            destination: "10.0.0.1:8080".into(),
            reason: Reason::IpLiteral,
            stage: Stage::Request,
        };
        let outer = Outer(d);
        let found = EgressDenied::find(&outer).unwrap();
        assert_eq!(found.reason, Reason::IpLiteral);
        let g = GatewayError::from(found.clone());
        assert_eq!(g.status(), 502);
        assert_eq!(g.code(), Some("egress_denied"));
        assert_eq!(
            g.message(),
            "egress refused by the gateway's allowlist: an IP address must be listed in egress.allow"
        );
        assert_eq!(
            g.detail(),
            Some("egress to 10.0.0.1:8080 refused: an IP address must be listed in egress.allow")
        );
    }
}
