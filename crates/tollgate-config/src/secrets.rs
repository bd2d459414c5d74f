//! The `secrets:` section: where the keys that encrypt named secrets at
//! rest come from (docs/secrets.md). Schema and checks only; the keys are
//! read and used by `tollgate_record::vault`. The config names a key's
//! environment variable or file, never the key itself, so a config dump
//! (`Debug`, `Serialize`) cannot carry key material.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The key new secrets are encrypted under (and `rotate-secrets`
    /// re-encrypts to). Unset: no secret can be written or read.
    #[serde(default)]
    pub primary: Option<SecretKeySource>,
    /// Older keys, still used to decrypt secrets written under them.
    #[serde(default)]
    pub previous: Vec<SecretKeySource>,
}

/// One 32-byte AES-256 key: its id (stored beside every secret sealed
/// under it) and where it is read from, exactly one of `env` and `file`.
/// The value is 32 raw bytes or their base64 (standard or URL-safe,
/// padding optional, surrounding whitespace ignored).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretKeySource {
    /// 1-64 letters, digits, `-`, `_` or `.`; never reused for another key.
    pub id: String,
    /// The environment variable holding the key.
    #[serde(default)]
    pub env: Option<String>,
    /// The file holding the key.
    #[serde(default)]
    pub file: Option<String>,
}

impl SecretsConfig {
    /// Every configured key, the primary first.
    pub fn keys(&self) -> impl Iterator<Item = &SecretKeySource> {
        self.primary.iter().chain(self.previous.iter())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) fn validate_secrets(cfg: &SecretsConfig, p: &mut Vec<String>) {
    if cfg.primary.is_none() && !cfg.previous.is_empty() {
        p.push("secrets.primary: required when secrets.previous lists keys".into());
    }
    let mut ids = HashSet::new();
    let at = |i: usize| match (i, cfg.primary.is_some()) {
        (0, true) => "secrets.primary".to_string(),
        (i, true) => format!("secrets.previous[{}]", i - 1),
        (i, false) => format!("secrets.previous[{i}]"),
    };
    for (i, k) in cfg.keys().enumerate() {
        let at = at(i);
        if !valid_id(&k.id) {
            p.push(format!(
                "{at}.id: {:?} must be 1-64 letters, digits, -, _ or .",
                k.id
            ));
        } else if !ids.insert(k.id.as_str()) {
            p.push(format!("{at}.id: duplicate key id {:?}", k.id));
        }
        match (&k.env, &k.file) {
            (Some(e), None) if !e.is_empty() => {}
            (None, Some(f)) if !f.is_empty() => {}
            _ => p.push(format!("{at}: set exactly one of env, file")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, env: Option<&str>, file: Option<&str>) -> SecretKeySource {
        SecretKeySource {
            id: id.into(),
            env: env.map(Into::into),
            file: file.map(Into::into),
        }
    }

    #[test]
    fn checks_ids_and_sources() {
        let mut p = Vec::new();
        validate_secrets(
            &SecretsConfig {
                primary: Some(key("k2", Some("K2"), None)),
                previous: vec![
                    key("k2", None, Some("/k")),
                    key("bad id", Some("A"), Some("/b")),
                ],
            },
            &mut p,
        );
        assert_eq!(
            p,
            vec![
                "secrets.previous[0].id: duplicate key id \"k2\"".to_string(),
                "secrets.previous[1].id: \"bad id\" must be 1-64 letters, digits, -, _ or ."
                    .to_string(),
                "secrets.previous[1]: set exactly one of env, file".to_string(),
            ]
        );
        let mut p = Vec::new();
        validate_secrets(
            &SecretsConfig {
                primary: None,
                previous: vec![key("k1", Some("K1"), None)],
            },
            &mut p,
        );
        assert_eq!(
            p,
            vec!["secrets.primary: required when secrets.previous lists keys".to_string()]
        );
    }
}
