//! How a config prints (`Debug`, the form a `{:?}` in a log line takes)
//! without its secrets: URLs lose their userinfo (`postgres://u:PASS@`,
//! `redis://:PASS@`) and query, static header and environment values print
//! `[redacted]` (names stay), on top of `Secret`, which never prints. The
//! structs holding such fields implement `Debug` with `redacted_debug!`,
//! naming each field and how it prints: a field left out does not build,
//! so a new field says how it prints. Enums holding such fields
//! (`UpstreamAuth`) write their `Debug` with the same helpers.

use std::collections::BTreeMap;
use std::fmt;

const REDACTED: &str = "[redacted]";

/// Implements `Debug` for a struct field by field: `plain name` prints as
/// derived, `url name` (a `String` or `Option<String>`) without userinfo
/// and query, `urls name` (a `Vec<String>`, e.g. a program's arguments)
/// each like `url`, `values name` (a `BTreeMap<String, String>`) names
/// only. Every field must be named (the struct is destructured whole).
macro_rules! redacted_debug {
    ($ty:ident { $($how:ident $field:ident),* $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let $ty { $($field),* } = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &$crate::redact::$how($field)))*
                    .finish()
            }
        }
    };
}
pub(crate) use redacted_debug;

pub(crate) fn plain<T: fmt::Debug>(v: &T) -> &T {
    v
}

pub(crate) fn url<T: ?Sized>(v: &T) -> Url<'_, T> {
    Url(v)
}

pub(crate) fn urls(v: &[String]) -> Vec<String> {
    v.iter().map(|u| shown_url(u)).collect()
}

pub(crate) fn values(v: &BTreeMap<String, String>) -> Values<'_> {
    Values(v)
}

/// A URL as a dump shows it.
pub(crate) struct Url<'a, T: ?Sized>(&'a T);

impl fmt::Debug for Url<'_, String> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&shown_url(self.0), f)
    }
}

impl fmt::Debug for Url<'_, Option<String>> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.as_deref().map(shown_url), f)
    }
}

/// Header or environment values: names shown, values hidden.
pub(crate) struct Values<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Hidden)))
            .finish()
    }
}

/// A value shown as `[redacted]`.
struct Hidden;

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `url` with everything before the authority's last `@` (user and
/// password) and everything after a `?` (tokens in query parameters)
/// replaced by `[redacted]`; scheme, host, port and path stay. Works on
/// text that does not parse as a URL too, which is what validation
/// messages must quote.
pub fn shown_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, _)) => (b, true),
        None => (url, false),
    };
    let (scheme, rest) = match before_query.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, before_query),
    };
    let end = rest.find(['/', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let mut out = String::with_capacity(url.len());
    if let Some(s) = scheme {
        out.push_str(s);
        out.push_str("://");
    }
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str(REDACTED);
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    out.push_str(path);
    if query {
        out.push('?');
        out.push_str(REDACTED);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_and_query_only() {
        for (raw, shown) in [
            (
                "postgres://u:PASS@db:5432/tg",
                "postgres://[redacted]@db:5432/tg",
            ),
            (
                "redis://:PASS@127.0.0.1:6379/0",
                "redis://[redacted]@127.0.0.1:6379/0",
            ),
            ("http://u:p@w@proxy:3128", "http://[redacted]@proxy:3128"),
            ("https://h/v1?key=PASS&x=1", "https://h/v1?[redacted]"),
            ("sqlite://data/tg.db", "sqlite://data/tg.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("https://api.example.com/v1", "https://api.example.com/v1"),
            ("not a url @ all", "[redacted]@ all"),
            ("", ""),
        ] {
            assert_eq!(shown_url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn values_show_names_only() {
        let m = BTreeMap::from([("x-token".to_string(), "PASS".to_string())]);
        assert_eq!(format!("{:?}", values(&m)), r#"{"x-token": [redacted]}"#);
        assert_eq!(
            format!("{:?}", url(&Some("redis://:PASS@h".to_string()))),
            r#"Some("redis://[redacted]@h")"#
        );
    }

    /// A config seeding a password and a query secret into every URL field
    /// (token endpoints in every `auth:` and credential block, workspaces,
    /// webhooks, JWKS, MCP URLs and stdio arguments) and secret values into
    /// job parameters: neither its `Debug` nor the problems of a config whose
    /// URLs are all invalid quote them.
    #[test]
    fn no_url_secret_in_a_dump_or_a_problem() {
        const PW: &str = "Pw0rdSeed";
        const SIG: &str = "QrySigSeed";
        let u = |host: &str| format!("\"https://u:{PW}@{host}/t?sig={SIG}\"");
        let auth = |kind: &str| {
            format!(
                "{{type: {kind}, token_url: {}, client_id: c, client_secret: s}}",
                u("idp")
            )
        };
        let xchg = format!("{{type: token_exchange, token_url: {}}}", u("sts"));
        // The arguments are built by closures that format; inlining each
        // into the template would make it unreadable.
        #[allow(clippy::format_in_format_args)]
        let text = format!(
            "server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}\n\
             auth:\n  oidc: [{{issuer: {iss}, audiences: [a], jwks_url: {jwks}}}]\n\
             limits: {{alerts: {{webhook: {hook}}}}}\n\
             providers:\n\
             \x20 - {{name: p1, kind: openai, base_url: http://x/v1, auth: {cc}}}\n\
             \x20 - {{name: p2, kind: openai, base_url: http://x/v1, auth: {xchg}}}\n\
             routes:\n\
             \x20 - {{name: r, path: /ml/r, upstream: http://x, auth: {cc}}}\n\
             connections:\n\
             \x20 - {{name: c, base_url: http://x, credential: {{type: oauth_client_credentials, \
             token_url: {conn}, client_id: c, value: v}}}}\n\
             jobs:\n\
             \x20 - {{name: j, workspace: {ws}, job_id: 1, job_parameters: {{token: {PW}}}, \
             notebook_params: {{key: {SIG}}}, credential: {{type: oauth_client_credentials, \
             token_url: {jt}, client_id: c, value: v}}}}\n\
             mcp:\n  public_url: {public}\n  servers:\n\
             \x20   - {{name: m1, transport: streamable_http, url: http://x/mcp, auth: {cc}}}\n\
             \x20   - {{name: m2, transport: stdio, command: db-server, args: [--dsn, {dsn}]}}\n\
             \x20   - {{name: m3, transport: openapi, openapi: {{spec: {spec}, base_url: {base}}}}}\n",
            iss = u("issuer"),
            jwks = u("jwks"),
            hook = u("hook"),
            cc = auth("client_credentials"),
            conn = u("conn-idp"),
            ws = u("adb"),
            jt = u("adb-idp"),
            public = u("gw"),
            dsn = format!("\"postgres://u:{PW}@db/x?password={SIG}\""),
            spec = u("spec"),
            base = u("api"),
        );
        let cfg = crate::parse_str(&text);
        let Ok(cfg) = cfg else {
            unreachable!("{}", cfg.err().map(|e| e.to_string()).unwrap_or_default())
        };
        let dump = format!("{cfg:?}");
        assert!(
            dump.contains("adb-idp") && dump.contains("[redacted]@"),
            "{dump}"
        );
        for seed in [PW, SIG] {
            assert!(!dump.contains(seed), "{seed} in {dump}");
        }
        // Every URL invalid (a scheme validation refuses), so each problem
        // quotes one.
        let broken = text.replace("https://u:", "ftp://u:");
        let problems = crate::parse_str(&broken).err().map(|e| e.to_string());
        let problems = problems.unwrap_or_default();
        for field in [
            "token_url",
            "workspace",
            "issuer",
            "jwks_url",
            "base_url",
            "public_url",
        ] {
            assert!(problems.contains(field), "{field}: {problems}");
        }
        for seed in [PW, SIG] {
            assert!(!problems.contains(seed), "{seed} in {problems}");
        }
    }
}
