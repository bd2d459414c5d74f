//! The `routes:` and `connections:` sections: plain HTTP traffic the gateway
//! forwards to an upstream through the same phases as a model call. A route
//! is a path prefix on the data plane (an ML serving endpoint, any HTTP
//! API); a connection is an external API reached at
//! `/connections/{name}/{path}` with a credential the gateway injects
//! (docs/routes.md, docs/connections.md). Schema and checks only; the
//! runtime lives in `tollgate_pipeline::pipeline::forward`.

use crate::redact::redacted_debug;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::credentials::{Secret, UpstreamAuth};
use super::duration;
use super::model::Timeouts;

/// One identity-aware route: `path` (a prefix) → `upstream`.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Names the route in grants (`policy.rules[].routes`), limits,
    /// guardrails, the ledger and metrics.
    pub name: String,
    /// The data-plane path prefix it serves, e.g. `/ml/fraud` (matched on
    /// whole segments: `/ml/fraud` serves `/ml/fraud` and `/ml/fraud/…`,
    /// not `/ml/fraudulent`).
    pub path: String,
    /// The upstream's base URL; the rewritten path is appended to it.
    pub upstream: String,
    /// How the gateway authenticates to the upstream: the same modes as a
    /// provider's (docs/credentials.md). None: no credential is sent.
    #[serde(default)]
    pub auth: Option<UpstreamAuth>,
    /// HTTP methods served (upper case); empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Remove `path` from the front of the request path before appending
    /// it to `upstream` (default true).
    #[serde(default = "default_true")]
    pub strip_prefix: bool,
    /// Put this in place of the stripped prefix (`/v2/models/fraud`).
    #[serde(default)]
    pub replace_prefix: Option<String>,
    #[serde(default)]
    pub headers: HeaderRules,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Largest request body accepted (default 10 MiB).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Most rows (instances) one request may carry; unset: no cap.
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// How rows are counted: `auto` recognises model-serving payloads,
    /// `none` counts none.
    #[serde(default)]
    pub payload: PayloadKind,
    /// Add request (and buffered response) bodies to the audit log,
    /// redacted like models' payloads (default false).
    #[serde(default)]
    pub audit_payloads: bool,
    /// Largest JSON response held whole for an output guardrail or the
    /// audit log (default 4 MiB); a larger one is refused (502).
    #[serde(default = "default_max_buffered_response_bytes")]
    pub max_buffered_response_bytes: usize,
}

redacted_debug!(RouteConfig {
    plain name,
    plain path,
    url upstream,
    plain auth,
    plain methods,
    plain strip_prefix,
    plain replace_prefix,
    plain headers,
    plain timeouts,
    plain max_request_bytes,
    plain max_rows,
    plain payload,
    plain audit_payloads,
    plain max_buffered_response_bytes,
});

/// Request header rules applied after the gateway's own removals.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    /// Headers set on the upstream request (values marked sensitive).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Caller headers not forwarded.
    #[serde(default)]
    pub remove: Vec<String>,
}

redacted_debug!(HeaderRules {
    values set,
    plain remove,
});

/// How a route counts the rows of a request.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// Databricks / MLflow `dataframe_split`, `dataframe_records`,
    /// `instances`, `inputs`; Azure ML `input_data`; KServe v2 `inputs`.
    #[default]
    Auto,
    /// No rows are counted (any body).
    None,
}

/// An outbound connection: an external API, reached at
/// `/connections/{name}/{path}` with a credential only the gateway holds.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Also its path: `/connections/{name}/…`; granted by
    /// `policy.rules[].connections`.
    pub name: String,
    /// The API's base URL; the path after `/connections/{name}` is appended.
    pub base_url: String,
    #[serde(default)]
    pub credential: Option<ConnectionCredential>,
    /// HTTP methods allowed (upper case); empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Path prefixes allowed (after `/connections/{name}`, matched on whole
    /// segments); empty: every path.
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub headers: HeaderRules,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Largest request body accepted (default 10 MiB).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Largest JSON response held whole for an output guardrail (default
    /// 4 MiB); a larger one is refused (502).
    #[serde(default = "default_max_buffered_response_bytes")]
    pub max_buffered_response_bytes: usize,
    /// Add request (and buffered response) bodies to the audit log, redacted.
    #[serde(default)]
    pub audit_payloads: bool,
}

redacted_debug!(ConnectionConfig {
    plain name,
    url base_url,
    plain credential,
    plain methods,
    plain paths,
    plain headers,
    plain timeouts,
    plain max_request_bytes,
    plain max_buffered_response_bytes,
    plain audit_payloads,
});

/// How a connection proves itself to its API.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionCredential {
    #[serde(rename = "type")]
    pub kind: CredentialKind,
    /// A named secret (the secret store), revealed only for a granted call.
    #[serde(default)]
    pub secret: Option<String>,
    /// The secret itself (normally `${ENV}`).
    #[serde(default)]
    pub value: Option<Secret>,
    /// A file holding the secret (re-read on reload).
    #[serde(default)]
    pub file: Option<String>,
    /// `header`: the header the secret goes in.
    #[serde(default)]
    pub header: Option<String>,
    /// `basic`: the user name (the secret is the password).
    #[serde(default)]
    pub username: Option<String>,
    /// `oauth_client_credentials`, `token_exchange`: the token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// `token_exchange`: a workload token file as the subject (default: the
    /// caller's own JWT).
    #[serde(default)]
    pub subject_token_file: Option<String>,
    #[serde(default = "default_refresh_before", with = "duration")]
    pub refresh_before: Duration,
}

redacted_debug!(ConnectionCredential {
    plain kind,
    plain secret,
    plain value,
    plain file,
    plain header,
    plain username,
    url token_url,
    plain client_id,
    plain scope,
    plain subject_token_file,
    plain refresh_before,
});

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `<header>: <secret>`.
    Header,
    /// `Authorization: Basic base64(username:secret)`.
    Basic,
    /// OAuth 2.0 client credentials; the secret is the client secret.
    OauthClientCredentials,
    /// RFC 8693: the caller's JWT (or `subject_token_file`) exchanged.
    TokenExchange,
    /// The caller's own `Authorization`, unchanged.
    Caller,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Bearer => "bearer",
            CredentialKind::Header => "header",
            CredentialKind::Basic => "basic",
            CredentialKind::OauthClientCredentials => "oauth_client_credentials",
            CredentialKind::TokenExchange => "token_exchange",
            CredentialKind::Caller => "caller",
        }
    }

    /// Whether this kind takes a secret (`secret`, `value` or `file`).
    pub fn takes_secret(self) -> bool {
        !matches!(self, CredentialKind::TokenExchange | CredentialKind::Caller)
    }
}

fn default_true() -> bool {
    true
}
fn default_max_request_bytes() -> usize {
    10 * 1024 * 1024
}
fn default_max_buffered_response_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_refresh_before() -> Duration {
    Duration::from_secs(300)
}

/// Path prefixes the gateway serves itself: a route may not shadow them.
const RESERVED: &[&str] = &[
    "/v1",
    "/mcp",
    "/serving-endpoints",
    "/connections",
    "/.well-known",
];

/// Route and connection names are path segments and label values.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn http_url(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://")) && url::Url::parse(u).is_ok()
}

fn check_methods(at: &str, methods: &[String], p: &mut Vec<String>) {
    for (i, m) in methods.iter().enumerate() {
        let ok = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
        if !ok || http::Method::from_bytes(m.as_bytes()).is_err() {
            p.push(format!(
                "{at}.methods[{i}]: {m:?} is not an upper-case HTTP method"
            ));
        }
    }
}

fn check_headers(at: &str, h: &HeaderRules, p: &mut Vec<String>) {
    for (k, v) in &h.set {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            p.push(format!("{at}.headers.set: {k:?} is not a header name"));
        } else if http::HeaderValue::from_str(v).is_err() {
            p.push(format!(
                "{at}.headers.set.{k}: contains characters not allowed in a header"
            ));
        }
    }
    for (i, k) in h.remove.iter().enumerate() {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            p.push(format!(
                "{at}.headers.remove[{i}]: {k:?} is not a header name"
            ));
        }
    }
}

fn check_path(at: &str, path: &str, p: &mut Vec<String>) {
    let ok = path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    if !ok {
        p.push(format!(
            "{at}: {path:?} must start with `/`, not end with one, and hold only letters, digits and `/-_.~`"
        ));
    }
}

pub(crate) fn check_timeouts(at: &str, t: &Timeouts, p: &mut Vec<String>) {
    if t.connect.is_zero() || t.first_byte.is_zero() || t.total.is_zero() {
        p.push(format!("{at}.timeouts: must be greater than 0"));
    }
}

pub(crate) fn validate_routes(routes: &[RouteConfig], p: &mut Vec<String>) {
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for (i, r) in routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if !valid_name(&r.name) {
            p.push(format!(
                "{at}.name: {:?} must be 1-64 letters, digits, `-` or `_`",
                r.name
            ));
        } else if !names.insert(r.name.as_str()) {
            p.push(format!("{at}.name: duplicate route {:?}", r.name));
        }
        check_path(&format!("{at}.path"), &r.path, p);
        if RESERVED
            .iter()
            .any(|res| r.path == *res || r.path.starts_with(&format!("{res}/")))
        {
            p.push(format!(
                "{at}.path: {:?} is served by the gateway itself ({})",
                r.path,
                RESERVED.join(", ")
            ));
        }
        if !paths.insert(r.path.as_str()) {
            p.push(format!("{at}.path: duplicate path {:?}", r.path));
        }
        if !http_url(&r.upstream) {
            p.push(format!(
                "{at}.upstream: {:?} is not an http(s) URL",
                crate::shown_url(&r.upstream)
            ));
        }
        if let Some(a) = &r.auth {
            p.extend(a.problems(&format!("{at}.auth")));
            let needs_url = matches!(
                a,
                UpstreamAuth::ClientCredentials {
                    token_url: None,
                    ..
                } | UpstreamAuth::TokenExchange {
                    token_url: None,
                    ..
                }
            );
            if needs_url {
                p.push(format!("{at}.auth.token_url: required"));
            }
        }
        check_methods(&at, &r.methods, p);
        if let Some(rp) = &r.replace_prefix {
            if !r.strip_prefix {
                p.push(format!("{at}.replace_prefix: needs strip_prefix: true"));
            }
            if !rp.is_empty() {
                check_path(&format!("{at}.replace_prefix"), rp, p);
            }
        }
        check_headers(&at, &r.headers, p);
        check_timeouts(&at, &r.timeouts, p);
        if r.max_request_bytes == 0 {
            p.push(format!("{at}.max_request_bytes: must be greater than 0"));
        }
        if r.max_buffered_response_bytes == 0 {
            p.push(format!(
                "{at}.max_buffered_response_bytes: must be greater than 0"
            ));
        }
    }
}

pub(crate) fn validate_connections(conns: &[ConnectionConfig], p: &mut Vec<String>) {
    let mut names = HashSet::new();
    for (i, c) in conns.iter().enumerate() {
        let at = format!("connections[{i}]");
        if !valid_name(&c.name) {
            p.push(format!(
                "{at}.name: {:?} must be 1-64 letters, digits, `-` or `_`",
                c.name
            ));
        } else if !names.insert(c.name.as_str()) {
            p.push(format!("{at}.name: duplicate connection {:?}", c.name));
        }
        if !http_url(&c.base_url) {
            p.push(format!(
                "{at}.base_url: {:?} is not an http(s) URL",
                crate::shown_url(&c.base_url)
            ));
        }
        check_methods(&at, &c.methods, p);
        for (j, path) in c.paths.iter().enumerate() {
            if path != "/" {
                check_path(&format!("{at}.paths[{j}]"), path, p);
            }
        }
        check_headers(&at, &c.headers, p);
        check_timeouts(&at, &c.timeouts, p);
        if c.max_request_bytes == 0 || c.max_buffered_response_bytes == 0 {
            p.push(format!("{at}: byte limits must be greater than 0"));
        }
        if let Some(cred) = &c.credential {
            check_credential(&format!("{at}.credential"), cred, p);
        }
    }
}

pub(crate) fn check_credential(at: &str, c: &ConnectionCredential, p: &mut Vec<String>) {
    let kind = c.kind.as_str();
    let sources = [c.secret.is_some(), c.value.is_some(), c.file.is_some()]
        .iter()
        .filter(|s| **s)
        .count();
    if c.kind.takes_secret() && sources != 1 {
        p.push(format!(
            "{at}: type {kind} needs exactly one of secret, value, file"
        ));
    }
    if !c.kind.takes_secret() && sources != 0 {
        p.push(format!("{at}: type {kind} takes no secret, value or file"));
    }
    if let Some(v) = &c.value {
        if http::HeaderValue::from_str(v.expose()).is_err() {
            p.push(format!(
                "{at}.value: contains characters not allowed in a header"
            ));
        }
    }
    let only = |field: &str, set: bool, kinds: &[CredentialKind], p: &mut Vec<String>| {
        if set && !kinds.contains(&c.kind) {
            p.push(format!("{at}.{field}: not used by type {kind}"));
        }
    };
    only("header", c.header.is_some(), &[CredentialKind::Header], p);
    only(
        "username",
        c.username.is_some(),
        &[CredentialKind::Basic],
        p,
    );
    let oauth = [
        CredentialKind::OauthClientCredentials,
        CredentialKind::TokenExchange,
    ];
    only("token_url", c.token_url.is_some(), &oauth, p);
    only("client_id", c.client_id.is_some(), &oauth, p);
    only("scope", c.scope.is_some(), &oauth, p);
    only(
        "subject_token_file",
        c.subject_token_file.is_some(),
        &[CredentialKind::TokenExchange],
        p,
    );
    match c.kind {
        CredentialKind::Header => match &c.header {
            Some(h) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {}
            Some(h) => p.push(format!("{at}.header: {h:?} is not a header name")),
            None => p.push(format!("{at}.header: required for type header")),
        },
        CredentialKind::Basic => {
            if c.username
                .as_deref()
                .is_none_or(|u| u.is_empty() || u.contains(':'))
            {
                p.push(format!(
                    "{at}.username: required for type basic, without `:`"
                ));
            }
        }
        CredentialKind::OauthClientCredentials | CredentialKind::TokenExchange => {
            match &c.token_url {
                Some(u) if http_url(u) => {}
                Some(u) => p.push(format!(
                    "{at}.token_url: {:?} is not an http(s) URL",
                    crate::shown_url(u)
                )),
                None => p.push(format!("{at}.token_url: required for type {kind}")),
            }
            if c.kind == CredentialKind::OauthClientCredentials
                && c.client_id.as_deref().is_none_or(str::is_empty)
            {
                p.push(format!("{at}.client_id: required for type {kind}"));
            }
        }
        CredentialKind::Bearer | CredentialKind::Caller => {}
    }
}
