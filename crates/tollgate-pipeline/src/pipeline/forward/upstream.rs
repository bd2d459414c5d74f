//! Routes and connections at run time: each an `Upstream` (base URL, path
//! rules, allowed methods and paths, header rules, credential, HTTP client,
//! caps), built once per snapshot. An upstream whose config did not change
//! is carried over from the previous snapshot, so its connection pool and
//! cached tokens survive a reload (its file-backed secrets are re-read).
//!
//! Must not: read a named secret (that happens per call, after the grant).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tollgate_config::{
    ConnectionConfig, CredentialKind, PayloadKind, RouteConfig, Timeouts, UpstreamAuth,
};
use tollgate_core::error::BuildError;
use tollgate_policy::subject::TargetKind;

use super::credential::Credential;

/// What kind of forwarded call an upstream serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Route,
    Connection,
}

impl Kind {
    /// The ledger's and metrics' `endpoint`.
    pub fn operation(self) -> &'static str {
        match self {
            Kind::Route => "route",
            Kind::Connection => "connection",
        }
    }

    pub fn target_kind(self) -> TargetKind {
        match self {
            Kind::Route => TargetKind::Route,
            Kind::Connection => TargetKind::Connection,
        }
    }
}

#[derive(PartialEq)]
enum Source {
    Route(RouteConfig),
    Connection(ConnectionConfig),
}

/// One route or connection.
pub struct Upstream {
    pub kind: Kind,
    pub name: String,
    base: String,
    /// The data-plane prefix it is reached at.
    prefix: String,
    strip_prefix: bool,
    replace_prefix: String,
    methods: Vec<Method>,
    /// A connection's allowed path prefixes (empty: all).
    paths: Vec<String>,
    set_headers: HeaderMap,
    remove_headers: Vec<HeaderName>,
    pub credential: Credential,
    pub client: tollgate_net::Client,
    pub timeouts: Timeouts,
    pub max_request_bytes: usize,
    pub max_rows: Option<u64>,
    pub payload: PayloadKind,
    pub audit_payloads: bool,
    pub max_buffered_response_bytes: usize,
    source: Source,
    /// `base` parsed once: a call sets its path and query on a copy
    /// instead of parsing the whole URL (`None`: parsed per call).
    base_url: Option<reqwest::Url>,
    /// The response scrubber's matcher, reused across calls when
    /// `reuse_scrubber` (body.rs).
    pub(super) scrubbers: super::body::ScrubCache,
    /// The credential is one the gateway holds between calls (not a named
    /// secret revealed per call, not the caller's own or exchanged token).
    pub(super) reuse_scrubber: bool,
}

/// The HTTP client every route and connection sends through (rustls,
/// pooled, TCP_NODELAY, no redirects followed: a redirect is relayed to the
/// caller, never chased to another host). Built in this one place so that
/// the egress allow-list's client builder can take its place.
pub fn http_client(
    connect: Duration,
    egress: &tollgate_net::Egress,
) -> Result<tollgate_net::Client, BuildError> {
    tollgate_net::client_builder(egress)
        .with(|b| {
            b.connect_timeout(connect)
                .pool_idle_timeout(Duration::from_secs(90))
                .tcp_nodelay(true)
        })
        .max_redirects(0)
        .build()
        .map_err(|e| BuildError::of(e).context("forwarding: cannot build HTTP client"))
}

fn header_rules(
    who: &str,
    rules: &tollgate_config::HeaderRules,
) -> Result<(HeaderMap, Vec<HeaderName>), BuildError> {
    let mut set = HeaderMap::new();
    for (k, v) in &rules.set {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("{who}: bad header name {k}"))?;
        let mut value =
            HeaderValue::from_str(v).map_err(|_| format!("{who}: bad value for header {k}"))?;
        value.set_sensitive(true);
        set.insert(name, value);
    }
    let remove = rules
        .remove
        .iter()
        .map(|k| HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("{who}: bad header {k}")))
        .collect::<Result<_, _>>()?;
    Ok((set, remove))
}

/// A base URL without query or fragment, parsed once; `None` keeps the
/// per-call parse for anything else.
fn parsed_base(text: &str) -> Option<reqwest::Url> {
    reqwest::Url::parse(text.trim_end_matches('/'))
        .ok()
        .filter(|u| u.query().is_none() && u.fragment().is_none() && !u.cannot_be_a_base())
}

fn methods(who: &str, list: &[String]) -> Result<Vec<Method>, BuildError> {
    Ok(list
        .iter()
        .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| format!("{who}: bad method {m}")))
        .collect::<Result<_, _>>()?)
}

impl Upstream {
    fn route(cfg: &RouteConfig, egress: &tollgate_net::Egress) -> Result<Self, BuildError> {
        let who = format!("route {}", cfg.name);
        let (set_headers, remove_headers) = header_rules(&who, &cfg.headers)?;
        Ok(Self {
            kind: Kind::Route,
            name: cfg.name.clone(),
            base: cfg.upstream.trim_end_matches('/').to_string(),
            prefix: cfg.path.clone(),
            strip_prefix: cfg.strip_prefix,
            replace_prefix: cfg.replace_prefix.clone().unwrap_or_default(),
            methods: methods(&who, &cfg.methods)?,
            paths: Vec::new(),
            set_headers,
            remove_headers,
            credential: Credential::for_route(&cfg.name, cfg.auth.as_ref(), &cfg.timeouts, egress)?,
            client: http_client(cfg.timeouts.connect, egress)?,
            timeouts: cfg.timeouts.clone(),
            max_request_bytes: cfg.max_request_bytes,
            max_rows: cfg.max_rows,
            payload: cfg.payload,
            audit_payloads: cfg.audit_payloads,
            max_buffered_response_bytes: cfg.max_buffered_response_bytes,
            source: Source::Route(cfg.clone()),
            base_url: parsed_base(&cfg.upstream),
            scrubbers: Default::default(),
            reuse_scrubber: cfg.auth.as_ref().is_none_or(|a| {
                !matches!(
                    a,
                    UpstreamAuth::Passthrough | UpstreamAuth::TokenExchange { .. }
                )
            }),
        })
    }

    fn connection(
        cfg: &ConnectionConfig,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, BuildError> {
        let who = format!("connection {}", cfg.name);
        let (set_headers, remove_headers) = header_rules(&who, &cfg.headers)?;
        Ok(Self {
            kind: Kind::Connection,
            name: cfg.name.clone(),
            base: cfg.base_url.trim_end_matches('/').to_string(),
            prefix: format!("/connections/{}", cfg.name),
            strip_prefix: true,
            replace_prefix: String::new(),
            methods: methods(&who, &cfg.methods)?,
            paths: cfg.paths.clone(),
            set_headers,
            remove_headers,
            credential: Credential::for_connection(
                &cfg.name,
                cfg.credential.as_ref(),
                &cfg.timeouts,
                egress,
            )?,
            client: http_client(cfg.timeouts.connect, egress)?,
            timeouts: cfg.timeouts.clone(),
            max_request_bytes: cfg.max_request_bytes,
            max_rows: None,
            payload: PayloadKind::None,
            audit_payloads: cfg.audit_payloads,
            max_buffered_response_bytes: cfg.max_buffered_response_bytes,
            source: Source::Connection(cfg.clone()),
            base_url: parsed_base(&cfg.base_url),
            scrubbers: Default::default(),
            reuse_scrubber: cfg.credential.as_ref().is_none_or(|c| {
                c.secret.is_none()
                    && !matches!(
                        c.kind,
                        CredentialKind::Caller | CredentialKind::TokenExchange
                    )
            }),
        })
    }

    /// Whether `path` is this route's prefix or below it (whole segments).
    fn serves_path(&self, path: &str) -> bool {
        under(path, &self.prefix)
    }

    pub fn allows_method(&self, m: &Method) -> bool {
        self.methods.is_empty() || self.methods.contains(m)
    }

    /// The upstream path for a data-plane `path` (prefix stripped or
    /// replaced), or `None` when a connection's allow-list refuses it.
    pub fn upstream_path(&self, path: &str) -> Option<String> {
        let rest = match (self.strip_prefix, path.strip_prefix(self.prefix.as_str())) {
            (true, Some(rest)) => format!("{}{rest}", self.replace_prefix),
            _ => path.to_string(),
        };
        self.checked_path(rest)
    }

    /// `rest` (the path below the base URL) when the path allow-list takes
    /// it and it has no dot segment.
    pub fn checked_path(&self, rest: String) -> Option<String> {
        let rest = if rest.is_empty() {
            "/".to_string()
        } else {
            rest
        };
        // Dot segments could climb out of an allowed prefix upstream.
        if rest
            .split('/')
            .any(|s| s == ".." || s == "." || s.contains('%') && dotty(s))
        {
            return None;
        }
        let allowed =
            self.paths.is_empty() || self.paths.iter().any(|p| p == "/" || under(&rest, p));
        allowed.then_some(rest)
    }

    /// The base URL paths are appended to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The full upstream URL of a path (and query).
    /// The URL a call goes to: `base` with `path` appended and `query`.
    pub fn target(&self, path: &str, query: Option<&str>) -> Option<reqwest::Url> {
        let Some(base) = &self.base_url else {
            return reqwest::Url::parse(&self.url(path, query)).ok();
        };
        let mut url = base.clone();
        let mut full = String::with_capacity(base.path().len() + path.len());
        full.push_str(base.path().trim_end_matches('/'));
        full.push_str(path);
        url.set_path(&full);
        url.set_query(query);
        Some(url)
    }

    pub fn url(&self, path: &str, query: Option<&str>) -> String {
        match query {
            Some(q) => format!("{}{path}?{q}", self.base),
            None => format!("{}{path}", self.base),
        }
    }

    /// The upstream request's headers: the caller's, without hop-by-hop
    /// and credential headers and the route's removals, then the route's
    /// own. The credential is added by the caller of this.
    pub fn request_headers(&self, caller: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(caller.len() + self.set_headers.len());
        for (name, value) in caller {
            if never_forwarded(name) || self.remove_headers.contains(name) {
                continue;
            }
            out.append(name.clone(), value.clone());
        }
        for (name, value) in &self.set_headers {
            out.insert(name.clone(), value.clone());
        }
        out
    }
}

/// `%2e` in a segment: a dot segment in disguise.
fn dotty(segment: &str) -> bool {
    segment.to_ascii_lowercase().contains("%2e") || segment.to_ascii_lowercase().contains("%2f")
}

/// `path` is `prefix` or below it, on whole segments.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Headers that never leave the gateway towards a route's upstream: the
/// caller's credentials (a passthrough credential re-adds its own), the
/// hop-by-hop set (RFC 9110 7.6.1), what the client sets itself, and
/// `accept-encoding`: a compressed answer could be neither scrubbed of the
/// credential nor read by a guardrail, so the upstream answers identity.
fn never_forwarded(name: &HeaderName) -> bool {
    const NAMES: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
    ];
    NAMES.contains(&name.as_str())
}

/// Response headers not relayed to the caller (hop-by-hop, framing).
pub(super) fn hop_by_hop(name: &HeaderName) -> bool {
    const NAMES: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    NAMES.contains(&name.as_str())
}

/// Every route and connection of a snapshot.
#[derive(Default)]
pub struct Table {
    /// Longest prefix first, so the most specific route serves a path.
    routes: Vec<Arc<Upstream>>,
    connections: HashMap<String, Arc<Upstream>>,
}

impl Table {
    pub fn build(
        routes: &[RouteConfig],
        connections: &[ConnectionConfig],
        previous: Option<&Table>,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, BuildError> {
        let reuse = |source: Source| {
            let old = previous.into_iter().flat_map(|t| {
                t.routes
                    .iter()
                    .chain(t.connections.values())
                    .filter(|u| u.source == source)
            });
            let found = old.into_iter().next().cloned();
            if let Some(u) = &found {
                u.credential.reload();
            }
            found
        };
        let mut table = Table::default();
        for r in routes {
            let up = match reuse(Source::Route(r.clone())) {
                Some(u) => u,
                None => Arc::new(Upstream::route(r, egress)?),
            };
            table.routes.push(up);
        }
        table
            .routes
            .sort_by_key(|u| std::cmp::Reverse(u.prefix.len()));
        for c in connections {
            let up = match reuse(Source::Connection(c.clone())) {
                Some(u) => u,
                None => Arc::new(Upstream::connection(c, egress)?),
            };
            table.connections.insert(c.name.clone(), up);
        }
        Ok(table)
    }

    /// The route serving a data-plane path.
    pub fn route_for(&self, path: &str) -> Option<&Arc<Upstream>> {
        if self.routes.is_empty() {
            return None;
        }
        self.routes.iter().find(|u| u.serves_path(path))
    }

    pub fn connection(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.connections.get(name)
    }

    /// Whether nothing is forwarded (no route, no connection).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.connections.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(yaml: &str) -> Upstream {
        let cfg: RouteConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Upstream::route(&cfg, &Default::default()).unwrap()
    }

    #[test]
    fn prefixes_match_whole_segments_and_rewrite() {
        let r = route("{name: f, path: /ml/fraud, upstream: 'http://u/base/'}");
        assert!(r.serves_path("/ml/fraud") && r.serves_path("/ml/fraud/invocations"));
        assert!(!r.serves_path("/ml/fraudulent"));
        assert_eq!(
            r.upstream_path("/ml/fraud/invocations").unwrap(),
            "/invocations"
        );
        assert_eq!(r.upstream_path("/ml/fraud").unwrap(), "/");
        assert_eq!(r.url("/x", Some("a=1")), "http://u/base/x?a=1");
        // The parsed-once base gives the URL a whole parse would.
        for base in [
            "http://u/base/",
            "http://u",
            "https://u:8443/a/b",
            "http://u/",
        ] {
            let r = route(&format!("{{name: f, path: /ml/fraud, upstream: '{base}'}}"));
            for (path, query) in [
                ("/x", Some("a=1&b=%20")),
                ("/", None),
                ("", None),
                ("/a/%2Fb", Some("")),
            ] {
                let whole = reqwest::Url::parse(&r.url(path, query)).unwrap();
                assert_eq!(
                    r.target(path, query).unwrap(),
                    whole,
                    "{base} {path} {query:?}"
                );
            }
        }
        let r = route(
            "{name: f, path: /ml/fraud, upstream: 'http://u', replace_prefix: /v2/models/fraud}",
        );
        assert_eq!(
            r.upstream_path("/ml/fraud/infer").unwrap(),
            "/v2/models/fraud/infer"
        );
        let r = route("{name: f, path: /ml/fraud, upstream: 'http://u', strip_prefix: false}");
        assert_eq!(
            r.upstream_path("/ml/fraud/infer").unwrap(),
            "/ml/fraud/infer"
        );
        assert!(r.upstream_path("/ml/fraud/../admin").is_none());
        assert!(r.upstream_path("/ml/fraud/%2e%2e/admin").is_none());
    }

    #[test]
    fn connection_paths_and_headers() {
        let cfg: ConnectionConfig = serde_yaml_ng::from_str(
            "{name: crm, base_url: 'http://u', paths: [/v1/contacts], methods: [GET], headers: {set: {x-team: a}, remove: [x-drop]}}",
        )
        .unwrap();
        let c = Upstream::connection(&cfg, &Default::default()).unwrap();
        assert_eq!(
            c.upstream_path("/connections/crm/v1/contacts/7").unwrap(),
            "/v1/contacts/7"
        );
        assert!(c.upstream_path("/connections/crm/v1/contactsx").is_none());
        assert!(c.upstream_path("/connections/crm/v2/admin").is_none());
        assert!(c.allows_method(&Method::GET) && !c.allows_method(&Method::DELETE));
        let mut caller = HeaderMap::new();
        caller.insert("authorization", HeaderValue::from_static("Bearer tg-key"));
        caller.insert("x-drop", HeaderValue::from_static("1"));
        caller.insert("x-keep", HeaderValue::from_static("1"));
        caller.insert("connection", HeaderValue::from_static("close"));
        caller.insert("accept-encoding", HeaderValue::from_static("gzip"));
        let h = c.request_headers(&caller);
        assert!(h.get("authorization").is_none() && h.get("x-drop").is_none());
        assert!(h.get("accept-encoding").is_none());
        assert!(h.get("connection").is_none());
        assert_eq!(h["x-keep"], "1");
        assert_eq!(h["x-team"], "a");
    }
}
