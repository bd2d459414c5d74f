//! The allow-list of a detector set: values a policy must not report, so
//! that a coding assistant's traffic (its own domains' addresses, `127.0.0.1`,
//! `10.0.0.5` in a config file) is not masked to death. Checked on the
//! matched text before findings are resolved, so an allowed value never
//! hides another finding.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Category;

/// `detectors.allow` in a guardrail policy.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct AllowList {
    /// Email addresses at these domains (or their subdomains) are not
    /// reported; case-insensitive.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Loopback, private (RFC 1918, `fc00::/7`), link-local and unspecified
    /// addresses are not reported as `ip_address`.
    #[serde(default)]
    pub private_ips: bool,
    /// Exact values no detector reports (e.g. a documented test card).
    #[serde(default)]
    pub values: Vec<String>,
}

impl AllowList {
    pub(super) fn is_empty(&self) -> bool {
        self.email_domains.is_empty() && !self.private_ips && self.values.is_empty()
    }

    /// Whether `value`, found as `category`, is allowed.
    pub(super) fn allows(&self, category: Category, value: &str) -> bool {
        if self.values.iter().any(|v| v == value) {
            return true;
        }
        match category {
            Category::Email => value.rsplit_once('@').is_some_and(|(_, domain)| {
                let domain = domain.to_ascii_lowercase();
                self.email_domains.iter().any(|d| {
                    let d = d.trim_start_matches('.').to_ascii_lowercase();
                    domain == d || domain.strip_suffix(&d).is_some_and(|h| h.ends_with('.'))
                })
            }),
            Category::IpAddress => self.private_ips && value.parse::<IpAddr>().is_ok_and(private),
            _ => false,
        }
    }
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| private(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_ips_and_values() {
        let a = AllowList {
            email_domains: vec!["Example.com".into()],
            private_ips: true,
            values: vec!["4111 1111 1111 1111".into()],
        };
        assert!(a.allows(Category::Email, "dev@example.com"));
        assert!(a.allows(Category::Email, "dev@ci.EXAMPLE.com"));
        assert!(!a.allows(Category::Email, "dev@notexample.com"));
        assert!(!a.allows(Category::Email, "dev@example.com.evil.io"));
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.20",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(a.allows(Category::IpAddress, ip), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1"] {
            assert!(!a.allows(Category::IpAddress, ip), "{ip}");
        }
        assert!(a.allows(Category::CreditCard, "4111 1111 1111 1111"));
        assert!(!AllowList::default().allows(Category::IpAddress, "127.0.0.1"));
    }
}
