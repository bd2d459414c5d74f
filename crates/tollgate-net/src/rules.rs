//! The allowlist built from `egress.allow`: which (scheme, host, port) a
//! URL may name, and which addresses a connection may reach. Names match
//! exactly or by `*.suffix` (subdomains at any depth, never the apex); an
//! IP address in a URL must be listed (`host: 10.0.0.5` or a `cidr`); an
//! address a name resolves to must be public or inside a listed address or
//! network. Matching allocates nothing: it runs on every request.

use std::net::IpAddr;

use ipnet::IpNet;
use tollgate_config::{egress_host_ip, EgressConfig, EgressScheme};
use tollgate_core::error::BuildError;

use crate::error::Reason;
use crate::special::{canonical, is_special};

#[derive(Debug)]
enum Target {
    /// Lower case, no trailing dot.
    Exact(String),
    /// `.example.com` for `*.example.com`.
    Suffix(String),
    Net(IpNet),
}

#[derive(Debug)]
struct Rule {
    target: Target,
    ports: Option<Vec<u16>>,
    schemes: Option<Vec<EgressScheme>>,
}

/// What a URL names, as the checks see it.
#[derive(Debug, Clone, Copy)]
pub enum Host<'a> {
    /// Lower case, without a trailing dot.
    Name(&'a str),
    Ip(IpAddr),
}

#[derive(Debug, Default)]
pub struct Allowlist {
    rules: Vec<Rule>,
}

/// A name as rules compare it (URL hosts are already lower case).
pub(crate) fn normal_name(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

impl Allowlist {
    pub fn build(cfg: &EgressConfig) -> Result<Self, BuildError> {
        let rules = cfg
            .allow
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let bad = |what: &str| BuildError::new(format!("egress.allow[{i}]: bad {what}"));
                let target = match (&r.host, &r.cidr) {
                    (Some(host), None) => match egress_host_ip(host) {
                        Some(ip) => Target::Net(IpNet::from(canonical(ip))),
                        None => {
                            let host = normal_name(host).to_ascii_lowercase();
                            match host.strip_prefix('*') {
                                Some(suffix) => Target::Suffix(suffix.to_string()),
                                None => Target::Exact(host),
                            }
                        }
                    },
                    (None, Some(cidr)) => {
                        let net: IpNet = cidr.parse().map_err(|_| bad("cidr"))?;
                        Target::Net(net.trunc())
                    }
                    _ => return Err(bad("rule: exactly one of host or cidr")),
                };
                Ok(Rule {
                    target,
                    ports: r.ports.clone(),
                    schemes: r.schemes.clone(),
                })
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(Self { rules })
    }

    /// May a request name this scheme, host and port? The reason names the
    /// closest miss: a listed host on another port says `port`.
    pub fn check(&self, scheme: &str, host: Host<'_>, port: u16) -> Result<(), Reason> {
        let scheme = match scheme {
            "http" => EgressScheme::Http,
            "https" => EgressScheme::Https,
            _ => return Err(Reason::Scheme),
        };
        let mut miss = match host {
            Host::Name(_) => Reason::Host,
            Host::Ip(_) => Reason::IpLiteral,
        };
        for rule in self.rules.iter().filter(|r| r.target.matches(host)) {
            if rule.ports.as_ref().is_some_and(|p| !p.contains(&port)) {
                miss = Reason::Port;
            } else if rule.schemes.as_ref().is_some_and(|s| !s.contains(&scheme)) {
                miss = Reason::Scheme;
            } else {
                return Ok(());
            }
        }
        Err(miss)
    }

    /// Is this name listed at all (whatever the port and scheme)? The
    /// resolver asks before it looks a name up.
    pub fn name_listed(&self, name: &str) -> bool {
        let host = Host::Name(normal_name(name));
        self.rules.iter().any(|r| r.target.matches(host))
    }

    /// May a connection reach this address? Public addresses may (the name
    /// was checked); any other only inside a listed address or network.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_special(ip) || self.listed_address(ip)
    }

    fn listed_address(&self, ip: IpAddr) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(&r.target, Target::Net(net) if net.contains(&ip)))
    }
}

impl Target {
    fn matches(&self, host: Host<'_>) -> bool {
        match (self, host) {
            (Target::Exact(want), Host::Name(name)) => want.eq_ignore_ascii_case(name),
            (Target::Suffix(suffix), Host::Name(name)) => {
                name.len() > suffix.len()
                    && name.is_char_boundary(name.len() - suffix.len())
                    && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            (Target::Net(net), Host::Ip(ip)) => net.contains(&canonical(ip)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(yaml: &str) -> Allowlist {
        let cfg: EgressConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Allowlist::build(&cfg).unwrap()
    }

    fn ip(s: &str) -> Host<'static> {
        Host::Ip(s.parse().unwrap())
    }

    #[test]
    fn exact_and_suffix_names() {
        let l = list("allow: [{host: API.openai.com}, {host: '*.example.com'}]");
        assert_eq!(l.check("https", Host::Name("api.openai.com"), 443), Ok(()));
        assert_eq!(
            l.check("https", Host::Name("api.openai.com.evil.io"), 443),
            Err(Reason::Host)
        );
        assert_eq!(l.check("https", Host::Name("a.example.com"), 443), Ok(()));
        assert_eq!(l.check("http", Host::Name("a.b.example.com"), 80), Ok(()));
        // The apex is not a subdomain, and a longer label is not one either.
        assert_eq!(
            l.check("https", Host::Name("example.com"), 443),
            Err(Reason::Host)
        );
        assert_eq!(
            l.check("https", Host::Name("badexample.com"), 443),
            Err(Reason::Host)
        );
        assert!(l.name_listed("x.example.com."));
        assert!(!l.name_listed("example.com"));
    }

    #[test]
    fn ports_and_schemes() {
        let l = list(
            "allow: [{host: '*.example.com', ports: [443], schemes: [https]},
                     {host: a.example.com, ports: [8080], schemes: [http]}]",
        );
        assert_eq!(l.check("https", Host::Name("b.example.com"), 443), Ok(()));
        assert_eq!(
            l.check("https", Host::Name("b.example.com"), 8443),
            Err(Reason::Port)
        );
        assert_eq!(
            l.check("http", Host::Name("b.example.com"), 443),
            Err(Reason::Scheme)
        );
        assert_eq!(l.check("http", Host::Name("a.example.com"), 8080), Ok(()));
        assert_eq!(
            l.check("ftp", Host::Name("a.example.com"), 21),
            Err(Reason::Scheme)
        );
    }

    #[test]
    fn ip_literals_need_a_listed_address() {
        let l = list(
            "allow: [{host: 8.8.8.8}, {cidr: 10.1.0.0/16, ports: [443]},
                     {host: '[fd00::5]'}, {cidr: '2001:db8::/32'}]",
        );
        assert_eq!(l.check("https", ip("8.8.8.8"), 443), Ok(()));
        assert_eq!(l.check("https", ip("8.8.4.4"), 443), Err(Reason::IpLiteral));
        assert_eq!(l.check("https", ip("10.1.200.3"), 443), Ok(()));
        assert_eq!(l.check("https", ip("10.1.200.3"), 80), Err(Reason::Port));
        assert_eq!(
            l.check("https", ip("10.2.0.1"), 443),
            Err(Reason::IpLiteral)
        );
        assert_eq!(l.check("https", ip("fd00::5"), 443), Ok(()));
        assert_eq!(l.check("https", ip("2001:db8:1::9"), 443), Ok(()));
        // A mapped IPv4 address is the IPv4 address.
        assert_eq!(l.check("https", ip("::ffff:10.1.0.9"), 443), Ok(()));
        assert_eq!(
            l.check("https", ip("::ffff:127.0.0.1"), 443),
            Err(Reason::IpLiteral)
        );
        // A name never matches an address rule.
        assert_eq!(
            l.check("https", Host::Name("10.1.0.1.nip.io"), 443),
            Err(Reason::Host)
        );
    }

    #[test]
    fn resolved_addresses() {
        let l = list("allow: [{host: svc.internal}, {cidr: 10.1.0.0/16}, {host: '::1'}]");
        assert!(l.address_allowed("93.184.216.34".parse().unwrap()));
        assert!(l.address_allowed("10.1.2.3".parse().unwrap()));
        assert!(l.address_allowed("::ffff:10.1.2.3".parse().unwrap()));
        assert!(l.address_allowed("::1".parse().unwrap()));
        for refused in [
            "10.2.0.1",
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "fe80::1",
            "fd12::1",
            "0.0.0.0",
            "224.0.0.1",
        ] {
            assert!(!l.address_allowed(refused.parse().unwrap()), "{refused}");
        }
        let none = list("allow: []");
        assert_eq!(
            none.check("https", Host::Name("api.openai.com"), 443),
            Err(Reason::Host)
        );
    }
}
