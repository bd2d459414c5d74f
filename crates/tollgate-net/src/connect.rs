//! A checked TCP connection for an outbound client that is not reqwest (the
//! OTLP exporter's gRPC channel): the URL is checked as `Client::request`
//! checks it, a name is resolved by the same checking lookup as reqwest's
//! resolver, and the socket connects only to the addresses that passed.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use crate::error::Stage;
use crate::resolve::{checked_addresses, BoxError};
use crate::Egress;

impl Egress {
    /// Opens a TCP connection to `uri`'s host and port (the scheme's default
    /// port when none is given), or the refusal; a refused destination is
    /// counted and logged like any other (`tollgate_egress_denied_total`).
    pub async fn connect(&self, uri: &http::Uri) -> Result<TcpStream, BoxError> {
        let url = reqwest::Url::parse(&uri.to_string())?;
        self.check_url(&url, Stage::Connect)?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("no port for {}", url.scheme()))?;
        let host = url.host_str().unwrap_or_default();
        let ips: Vec<IpAddr> = match tollgate_config::egress_host_ip(host) {
            Some(ip) => vec![ip],
            None => checked_addresses(&self.state(), host).await?,
        };
        let mut last = None;
        for ip in ips {
            match TcpStream::connect(SocketAddr::new(ip, port)).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => e.into(),
            None => format!("{host}: no address").into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_config::EgressConfig;

    fn apply(egress: &Egress, yaml: &str) {
        let cfg: EgressConfig = serde_yaml_ng::from_str(yaml).unwrap();
        egress.apply(Egress::prepare(Some(&cfg)).unwrap()).unwrap();
    }

    #[tokio::test]
    async fn connects_only_where_the_allowlist_says() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let uri: http::Uri = format!("http://127.0.0.1:{port}").parse().unwrap();
        let egress = Egress::default();
        assert!(egress.connect(&uri).await.is_ok(), "no section: allowed");

        apply(&egress, "allow: [{host: collector.example}]");
        let e = egress.connect(&uri).await.unwrap_err();
        let denied = crate::EgressDenied::find(&*e).unwrap();
        assert_eq!(denied.reason, crate::Reason::IpLiteral);
        assert_eq!(denied.stage, Stage::Connect);
        // A name that is not listed is refused before it is looked up.
        let named: http::Uri = format!("http://localhost:{port}").parse().unwrap();
        let e = egress.connect(&named).await.unwrap_err();
        assert_eq!(
            crate::EgressDenied::find(&*e).unwrap().reason,
            crate::Reason::Host
        );

        // Listed, but it resolves to loopback, which no rule lists.
        apply(&egress, "allow: [{host: localhost}]");
        let e = egress.connect(&named).await.unwrap_err();
        assert_eq!(
            crate::EgressDenied::find(&*e).unwrap().reason,
            crate::Reason::Address
        );

        apply(
            &egress,
            &format!("allow: [{{host: 127.0.0.1, ports: [{port}]}}]"),
        );
        assert!(egress.connect(&uri).await.is_ok());
    }
}
