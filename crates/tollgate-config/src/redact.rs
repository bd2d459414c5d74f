//! How a config prints (`Debug`, the form a `{:?}` in a log line takes)
//! without its secrets: URLs lose their userinfo (`postgres://u:PASS@`,
//! `redis://:PASS@`) and query, static header and environment values print
//! `[redacted]` (names stay), on top of `Secret`, which never prints. The
//! structs holding such fields implement `Debug` with `redacted_debug!`,
//! naming each field and how it prints; a field left out is not printed.

use std::collections::BTreeMap;
use std::fmt;

const REDACTED: &str = "[redacted]";

/// Implements `Debug` for a struct field by field: `plain name` prints as
/// derived, `url name` (a `String` or `Option<String>`) without userinfo
/// and query, `values name` (a `BTreeMap<String, String>`) names only.
macro_rules! redacted_debug {
    ($ty:ident { $($how:ident $field:ident),* $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &$crate::redact::$how(&self.$field)))*
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
}
