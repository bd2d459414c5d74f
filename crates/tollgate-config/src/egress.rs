//! The `egress:` section: which hosts, ports and schemes the gateway's own
//! outbound calls may reach (providers, token endpoints, webhooks, MCP
//! upstreams, OIDC discovery), and which nameservers resolve their names
//! (docs/egress.md). Schema and checks only; the runtime lives in
//! `tollgate_net`.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// What may be reached; anything else is refused (an empty list refuses
    /// every outbound call).
    #[serde(default)]
    pub allow: Vec<EgressRule>,
    /// DNS servers (`ip` or `ip:port`, port 53 by default) that resolve the
    /// names of outbound calls instead of the system resolver.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

/// One allowed destination: a `host` (exact name, `*.suffix`, or an IP
/// address) or a `cidr`, optionally limited to some ports and schemes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub cidr: Option<String>,
    /// Ports allowed (default: any).
    #[serde(default)]
    pub ports: Option<Vec<u16>>,
    /// Schemes allowed (default: http and https).
    #[serde(default)]
    pub schemes: Option<Vec<EgressScheme>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EgressScheme {
    Http,
    Https,
}

impl EgressScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            EgressScheme::Http => "http",
            EgressScheme::Https => "https",
        }
    }
}

/// A `host` value: `[::1]` and `::1` both name an IPv6 address.
pub fn egress_host_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// A `nameservers` entry: `ip` (port 53) or `ip:port` (`[v6]:port`).
pub fn egress_nameserver(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| egress_host_ip(text).map(|ip| SocketAddr::new(ip, 53)))
}

/// A `host` name pattern is well formed: letters, digits, `-`, `_` and dots,
/// optionally after a leading `*.`; no empty label.
fn name_pattern_ok(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

pub(crate) fn validate_egress(cfg: Option<&EgressConfig>, p: &mut Vec<String>) {
    let Some(cfg) = cfg else { return };
    for (i, rule) in cfg.allow.iter().enumerate() {
        let at = format!("egress.allow[{i}]");
        match (&rule.host, &rule.cidr) {
            (Some(_), Some(_)) | (None, None) => {
                p.push(format!("{at}: exactly one of host or cidr is required"))
            }
            (Some(host), None) => {
                if egress_host_ip(host).is_none() && !name_pattern_ok(host) {
                    p.push(format!(
                        "{at}.host: {host:?} is not a host name, `*.suffix` or IP address"
                    ));
                }
            }
            (None, Some(cidr)) => {
                if cidr.parse::<ipnet::IpNet>().is_err() {
                    p.push(format!(
                        "{at}.cidr: {cidr:?} is not a network like 10.0.0.0/8 or fd00::/8"
                    ));
                }
            }
        }
        if let Some(ports) = &rule.ports {
            if ports.is_empty() {
                p.push(format!(
                    "{at}.ports: must not be empty (omit it for any port)"
                ));
            }
            if ports.contains(&0) {
                p.push(format!("{at}.ports: 0 is not a port"));
            }
        }
        if rule.schemes.as_ref().is_some_and(|s| s.is_empty()) {
            p.push(format!(
                "{at}.schemes: must not be empty (omit it for http and https)"
            ));
        }
    }
    for (i, ns) in cfg.nameservers.iter().enumerate() {
        if egress_nameserver(ns).is_none() {
            p.push(format!(
                "egress.nameservers[{i}]: {ns:?} is not an address like 10.0.0.2 or 10.0.0.2:53"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        for ok in [
            "api.openai.com",
            "*.example.com",
            "localhost",
            "a_b.internal.",
        ] {
            assert!(name_pattern_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "*",
            "*.",
            "a..b",
            "ex*ample.com",
            "*.*.x",
            "https://x",
            "x:443",
        ] {
            assert!(!name_pattern_ok(bad), "{bad}");
        }
        assert_eq!(egress_host_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(
            egress_nameserver("10.0.0.2"),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            egress_nameserver("[fd00::2]:5353"),
            Some("[fd00::2]:5353".parse().unwrap())
        );
        assert_eq!(egress_nameserver("dns.example"), None);
    }

    #[test]
    fn malformed_rules_are_reported_with_their_paths() {
        let text = "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n\
            egress:\n  allow:\n\
            \x20   - { host: api.openai.com, cidr: 10.0.0.0/8 }\n\
            \x20   - { ports: [443] }\n\
            \x20   - { host: 'ex*ample.com' }\n\
            \x20   - { cidr: 10.0.0.0/33, ports: [] }\n\
            \x20   - { host: '*.example.com', ports: [0], schemes: [] }\n\
            \x20 nameservers: [dns.example]\n";
        let err = crate::parse_str(text).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        for path in [
            "egress.allow[0]: exactly one of host or cidr",
            "egress.allow[1]: exactly one of host or cidr",
            "egress.allow[2].host",
            "egress.allow[3].cidr",
            "egress.allow[3].ports: must not be empty",
            "egress.allow[4].ports: 0 is not a port",
            "egress.allow[4].schemes: must not be empty",
            "egress.nameservers[0]",
        ] {
            assert!(err.contains(path), "{path}: {err}");
        }
        let bad_scheme = "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n\
            egress:\n  allow:\n    - { host: a.example, schemes: [ftp] }\n";
        let err = crate::parse_str(bad_scheme).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .unwrap_or_default()
                .contains("egress.allow[0].schemes"),
            "{err:?}"
        );
        let absent = "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n";
        assert_eq!(crate::parse_str(absent).unwrap().egress, None);
    }
}
