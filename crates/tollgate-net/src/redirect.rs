//! Redirects for the providers' client (`upstream::UpstreamClient`), as
//! the reqwest clients follow them: at most `max` hops (10 by default; the
//! 11th redirect fails the call), 301/302 turn a POST into a GET without
//! its body, 303 turns anything but HEAD into a GET without a body, 307/308
//! re-send the same method and body. hyper-util's client follows no
//! redirect, so the hop itself is tower-http's `FollowRedirect` (the
//! middleware reqwest is built on, with the method and body rules above);
//! this policy adds what the gateway needs on each hop: the allowlist check
//! of the `Location` before anything is sent to it (stage `redirect`; its
//! connection is checked again by the resolver), the hop limit, and no
//! credential sent to another origin.

use http::header::HeaderName;
use http::{HeaderMap, Request, Uri};
use tower_http::follow_redirect::policy::{Action, Attempt, Policy};

use crate::client::TooManyRedirects;
use crate::error::Stage;
use crate::upstream::Failure;
use crate::Egress;

/// Headers dropped when a hop leaves the first request's origin: reqwest's
/// own list (`authorization`, cookies, `proxy-authorization`,
/// `www-authenticate`) and the API key headers the providers' credentials
/// set. A header the config marks sensitive (static `headers:`) goes too.
const CROSS_ORIGIN_DROPPED: &[&str] = &[
    "authorization",
    "cookie",
    "cookie2",
    "proxy-authorization",
    "www-authenticate",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-amz-security-token",
];

/// One request's redirect state (tower-http clones the policy per call).
#[derive(Clone)]
pub(crate) struct Hops {
    egress: Egress,
    max: usize,
    followed: usize,
    /// The first request's URI, whose origin each hop is compared with.
    first: Option<Uri>,
}

impl Hops {
    pub(crate) fn new(egress: Egress, max: usize) -> Self {
        Self {
            egress,
            max,
            followed: 0,
            first: None,
        }
    }
}

/// Scheme, host (without case) and port, the port defaulted by scheme.
fn same_origin(a: &Uri, b: &Uri) -> bool {
    let port = |u: &Uri| {
        u.port_u16().or(match u.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        })
    };
    a.scheme() == b.scheme()
        && a.host()
            .unwrap_or_default()
            .eq_ignore_ascii_case(b.host().unwrap_or_default())
        && port(a) == port(b)
}

fn drop_credentials(headers: &mut HeaderMap) {
    for name in CROSS_ORIGIN_DROPPED {
        headers.remove(*name);
    }
    let sensitive: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, v)| v.is_sensitive())
        .map(|(n, _)| n.clone())
        .collect();
    for name in sensitive {
        headers.remove(name);
    }
}

impl<B: Clone> Policy<B, Failure> for Hops {
    fn redirect(&mut self, attempt: &Attempt<'_>) -> Result<Action, Failure> {
        self.followed += 1;
        if self.followed > self.max {
            return Err(Failure::Redirect(Box::new(TooManyRedirects(self.max))));
        }
        let location = attempt.location();
        self.egress
            .check_uri(location, Stage::Redirect)
            .map_err(|denied| Failure::Redirect(Box::new(denied)))?;
        if !matches!(location.scheme_str(), Some("http" | "https")) {
            return Err(Failure::Redirect(Box::new(BadScheme)));
        }
        Ok(Action::Follow)
    }

    fn on_request(&mut self, req: &mut Request<B>) {
        match &self.first {
            None => self.first = Some(req.uri().clone()),
            Some(first) if !same_origin(first, req.uri()) => drop_credentials(req.headers_mut()),
            Some(_) => {}
        }
    }

    // 307 and 308 re-send the body: the providers' bodies are whole bytes.
    fn clone_body(&self, body: &B) -> Option<B> {
        Some(body.clone())
    }
}

/// A redirect to neither http nor https (reqwest's words).
#[derive(Debug, thiserror::Error)]
#[error("URL scheme is not allowed")]
pub(crate) struct BadScheme;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_dropped_headers() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(same_origin(
            &u("http://A.example/x"),
            &u("http://a.example:80/y")
        ));
        assert!(!same_origin(
            &u("http://a.example/"),
            &u("https://a.example/")
        ));
        assert!(!same_origin(
            &u("http://a.example/"),
            &u("http://a.example:8080/")
        ));
        assert!(!same_origin(
            &u("http://a.example/"),
            &u("http://b.example/")
        ));

        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "Bearer k".parse().unwrap());
        h.insert("x-api-key", "k".parse().unwrap());
        let mut secret: http::HeaderValue = "s".parse().unwrap();
        secret.set_sensitive(true);
        h.insert("x-static", secret);
        h.insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
        drop_credentials(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(http::header::CONTENT_TYPE));
    }
}
