//! What an entry is filed under, so an operator can purge by it
//! (`DELETE /admin/v1/cache`): the requested model, the tenant of the
//! principal that stored it, the caller's namespace, and the entry's key.
//! The memory backend keeps the labels beside the entry; the Redis backend
//! writes them into the entry's name, each hex-encoded behind a letter
//! (`{prefix}n{ns}:m{model}:t{tenant}:{key}`), so a purge is one `SCAN
//! MATCH` pattern whose segments cannot match each other (hex has no `n`,
//! `m`, `t` or `:`).

use std::fmt::Write as _;

use super::key::Key;

/// The labels of one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    pub model: String,
    /// The storing principal's tenant (empty: none).
    pub tenant: String,
    /// The caller's namespace (empty: none).
    pub namespace: String,
}

/// Which entries a purge removes: those matching every field set. At
/// least one field is set (`is_empty` is refused by the admin API unless
/// `all=true`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeFilter {
    pub model: Option<String>,
    pub tenant: Option<String>,
    pub namespace: Option<String>,
    /// A prefix of the entry key in hex (lowercase), as the
    /// `x-tollgate-cache-key` response header shows it.
    pub key_prefix: Option<String>,
}

impl PurgeFilter {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    pub(super) fn matches(&self, key: &Key, l: &Labels) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.model, &l.model)
            && eq(&self.tenant, &l.tenant)
            && eq(&self.namespace, &l.namespace)
            && self
                .key_prefix
                .as_deref()
                .is_none_or(|p| hex::encode(key).starts_with(p))
    }

    /// The Redis `SCAN MATCH` pattern of this filter under `prefix`.
    pub(super) fn redis_pattern(&self, prefix: &str) -> String {
        let mut out = String::new();
        glob_escape(&mut out, prefix);
        let seg = |out: &mut String, letter: char, v: &Option<String>| {
            out.push(letter);
            match v {
                Some(v) => out.push_str(&hex::encode(v)),
                None => out.push('*'),
            }
        };
        seg(&mut out, 'n', &self.namespace);
        out.push(':');
        seg(&mut out, 'm', &self.model);
        out.push(':');
        seg(&mut out, 't', &self.tenant);
        out.push(':');
        if let Some(p) = &self.key_prefix {
            out.push_str(p);
        }
        out.push('*');
        out
    }
}

/// A key prefix that is not lowercase hex of at most 64 digits.
pub fn valid_key_prefix(p: &str) -> bool {
    !p.is_empty() && p.len() <= 64 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The Redis name of an entry.
pub(super) fn redis_name(prefix: &str, key: &Key, l: &Labels) -> String {
    let mut out = String::with_capacity(
        prefix.len() + 2 * (l.namespace.len() + l.model.len() + l.tenant.len()) + 72,
    );
    out.push_str(prefix);
    let _ = write!(
        out,
        "n{}:m{}:t{}:{}",
        hex::encode(&l.namespace),
        hex::encode(&l.model),
        hex::encode(&l.tenant),
        hex::encode(key)
    );
    out
}

/// `*?[]\` taken literally in a Redis glob.
fn glob_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(model: &str, tenant: &str, ns: &str) -> Labels {
        Labels {
            model: model.into(),
            tenant: tenant.into(),
            namespace: ns.into(),
        }
    }

    /// A Redis glob, for the test: `*`, `?`, `\x` (enough for our patterns).
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(b'\\'), Some(c)) => p.get(1) == Some(c) && glob(&p[2..], &s[1..]),
            (Some(a), Some(b)) => a == b && glob(&p[1..], &s[1..]),
            _ => false,
        }
    }

    #[test]
    fn patterns_match_exactly_the_filtered_entries() {
        let key = [0xab; 32];
        // A tenant named like a model must not match a model filter.
        let entries = [
            labels("gpt", "acme", ""),
            labels("gpt", "gpt", "ns1"),
            labels("other", "gpt", ""),
            labels("gpt*", "", "gpt"),
        ];
        let filters = [
            PurgeFilter {
                model: Some("gpt".into()),
                ..Default::default()
            },
            PurgeFilter {
                tenant: Some("gpt".into()),
                ..Default::default()
            },
            PurgeFilter {
                namespace: Some("gpt".into()),
                ..Default::default()
            },
            PurgeFilter {
                namespace: Some(String::new()),
                ..Default::default()
            },
            PurgeFilter {
                key_prefix: Some("abab".into()),
                ..Default::default()
            },
            PurgeFilter {
                key_prefix: Some("abc".into()),
                ..Default::default()
            },
            PurgeFilter {
                model: Some("gpt".into()),
                tenant: Some("acme".into()),
                ..Default::default()
            },
        ];
        let prefix = "tg:[x]*:";
        for f in &filters {
            let pattern = f.redis_pattern(prefix);
            for l in &entries {
                let name = redis_name(prefix, &key, l);
                assert_eq!(
                    glob(pattern.as_bytes(), name.as_bytes()),
                    f.matches(&key, l),
                    "{f:?} {l:?}: {pattern} vs {name}"
                );
            }
        }
        assert!(valid_key_prefix("0a9f") && !valid_key_prefix("0A") && !valid_key_prefix(""));
    }
}
