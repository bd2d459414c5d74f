//! Reading the file: YAML → `${ENV}` substitution on string values →
//! typed config (errors carry the path, e.g. `providers[1].timeouts.connect`)
//! → cross-field validation.

use std::path::Path;

use serde_yaml_ng::Value;

use super::model::Config;
use super::validate::validate;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// One or more problems, each prefixed with the path it concerns.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut cfg = parse_str(&text)?;
    if cfg.prompts.dir.is_some() {
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        super::prompts::load_dir(&mut cfg, dir)?;
    }
    Ok(cfg)
}

pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse_with_env(text, &|name| std::env::var(name).ok())
}

pub(crate) fn parse_with_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut value: Value =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    let mut problems = Vec::new();
    interpolate(&mut value, String::new(), env, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(top level)".to_string()
        } else {
            path
        };
        let message = e.into_inner().to_string();
        ConfigError::Invalid(vec![format!("{path}: {}", shown_message(&path, message))])
    })?;
    validate(&config).map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// Field names whose values are (or may hold) secrets: credentials, URLs
/// (a password in the userinfo), static headers, MCP `env`.
fn secret_field(segment: &str) -> bool {
    matches!(
        segment,
        "api_key"
            | "token"
            | "key"
            | "client_secret"
            | "value"
            | "secret_access_key"
            | "session_token"
            | "session_secret"
            | "headers"
            | "set"
            | "env"
            | "upstream"
            | "spec"
            | "endpoint"
    ) || segment.ends_with("url")
}

/// serde's message for a value of the wrong type or form quotes it
/// (`invalid type: string "Bearer …", expected a map`): under a field that
/// may hold a secret, the quoted string is replaced by `[redacted]`, so
/// `tollgate validate` and a failed reload's log line do not print it.
fn shown_message(path: &str, message: String) -> String {
    let under_secret = path.split(['.', '[', ']']).any(secret_field);
    let quoted = ["invalid type: string \"", "invalid value: string \""]
        .iter()
        .find_map(|p| message.strip_prefix(p).map(|rest| (p, rest)));
    match quoted {
        Some((prefix, rest)) if under_secret => match rest.rfind("\", expected") {
            Some(end) => format!("{prefix}[redacted]{}", &rest[end..]),
            None => format!("{prefix}[redacted]\""),
        },
        _ => message,
    }
}

/// Replaces `${NAME}` in every string value; `$${` stays a literal `${`.
fn interpolate(
    value: &mut Value,
    path: String,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) {
    match value {
        Value::String(s) if s.contains('$') => match substitute(s, env) {
            Ok(out) => *s = out,
            Err(msg) => problems.push(format!("{}: {msg}", display_path(&path))),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, format!("{path}[{i}]"), env, problems);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                interpolate(v, child, env, problems);
            }
        }
        _ => {}
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "(top level)"
    } else {
        path
    }
}

/// Why a `${NAME}` in a value cannot be replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SubstituteError {
    #[error("unclosed `${{` in value")]
    Unclosed,
    #[error("invalid variable name {0:?} in `${{…}}`")]
    BadName(String),
    #[error("environment variable {0} is not set")]
    Unset(String),
}

fn substitute(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstituteError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or(SubstituteError::Unclosed)?;
            let name = &tail[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(SubstituteError::BadName(name.to_owned()));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => return Err(SubstituteError::Unset(name.to_owned())),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n";

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn substitutes_and_escapes() {
        assert_eq!(
            substitute("a ${TOKEN} b", &env).as_deref(),
            Ok("a s3cret b")
        );
        assert_eq!(substitute("$${TOKEN}", &env).as_deref(), Ok("${TOKEN}"));
        assert_eq!(substitute("cost $5", &env).as_deref(), Ok("cost $5"));
        assert!(substitute("${MISSING}", &env).is_err());
        assert!(substitute("${TOK", &env).is_err());
        assert!(substitute("${a-b}", &env).is_err());
    }

    #[test]
    fn missing_env_names_path() {
        let text = format!(
            "{MINIMAL}providers:\n  - name: p\n    kind: openai\n    base_url: http://x\n    api_key: ${{NOPE}}\n"
        );
        let err = parse_with_env(&text, &env).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("providers[0].api_key"), "{err}");
        assert!(err.contains("NOPE"), "{err}");
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_quoted() {
        for (field, value) in [
            ("headers", "\"Bearer s3cret-header\""),
            ("api_key", "{a: 1}"),
            ("base_url", "[1]"),
        ] {
            let text = format!(
                "{MINIMAL}providers:\n  - name: p\n    kind: openai\n    base_url: http://x\n    {field}: {value}\n"
            )
            .replace("base_url: http://x\n    base_url", "base_url");
            let err = parse_with_env(&text, &env).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains(&format!("providers[0].{field}")), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        assert_eq!(
            shown_message(
                "cache.redis_url",
                "invalid type: string \"redis://:pw@h\", expected a string".into()
            ),
            "invalid type: string \"[redacted]\", expected a string"
        );
        // Elsewhere the value stays: it says what is wrong.
        let m = "invalid value: string \"soon\", expected a duration".to_string();
        assert_eq!(shown_message("providers[0].timeouts.connect", m.clone()), m);
    }

    #[test]
    fn unknown_field_names_path() {
        let text = format!("{MINIMAL}  bogus: 1\n");
        let err = parse_with_env(&text, &env).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("server"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_duration_names_path() {
        let text = format!(
            "{MINIMAL}providers:\n  - name: p\n    kind: mock\n    timeouts:\n      connect: soon\n"
        );
        let err = parse_with_env(&text, &env).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("providers[0].timeouts.connect"), "{err}");
    }

    #[test]
    fn identity_sections_are_validated_with_paths() {
        let text = format!(
            r#"{MINIMAL}auth:
  oidc:
    - issuer: https://idp.example
      audiences: []
      algorithms: [RS256, HS256, none, XY999]
    - issuer: not-a-url
      audiences: [a]
      discovery: false
      claims: {{ groups: ".bad", service_values: [x] }}
policy:
  rules:
    - name: r
      models: ["chat-*"]
    - name: r
      groups: [g]
      models: ["[bad"]
    - name: empty
      tenants: [t]
keys:
  - id: k
    hash: sha256:{zero}
    principal: p
    tenant: ""
"#,
            zero = "0".repeat(64)
        );
        let err = parse_with_env(&text, &env).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        for want in [
            "auth.oidc[0].audiences: list at least one audience",
            "auth.oidc[0].algorithms[1]: \"HS256\": HMAC algorithms are not accepted",
            "auth.oidc[0].algorithms[2]: \"none\": unsigned tokens are never accepted",
            "auth.oidc[0].algorithms[3]: \"XY999\": unknown algorithm",
            "auth.oidc[1].issuer: \"not-a-url\" is not an http(s) URL",
            "auth.oidc[1].jwks_url: required when discovery is false",
            "auth.oidc[1].claims.groups",
            "auth.oidc[1].claims.service_values: needs claims.kind_claim",
            "policy.rules[0]: list at least one selector",
            "policy.rules[1].name: duplicate rule \"r\"",
            "policy.rules[1].models[0]",
            "policy.rules[2]: grants nothing",
            "keys[0].tenant: must not be empty",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn identity_defaults_and_expiry_formats() {
        let text = format!(
            "{MINIMAL}auth:\n  oidc:\n    - issuer: https://idp.example\n      audiences: [t]\nkeys:\n  - id: a\n    hash: sha256:{z}\n    principal: p\n    expires: 2026-01-31T00:00:00Z\n  - id: b\n    hash: sha256:{z}1\n    principal: p\n    expires: 1767225600\n",
            z = "0".repeat(64)
        );
        // Two distinct valid hashes.
        let text = text.replace(
            &format!("sha256:{}1", "0".repeat(64)),
            &format!("sha256:{}", "1".repeat(64)),
        );
        let cfg = parse_with_env(&text, &env).unwrap();
        let o = &cfg.auth.oidc[0];
        assert!(o.discovery);
        assert_eq!(o.algorithms, ["RS256", "PS256", "ES256", "EdDSA"]);
        assert_eq!(o.leeway, std::time::Duration::from_secs(60));
        assert_eq!(o.claims.subject, "sub");
        assert_eq!(o.claims.groups.as_deref(), Some("groups"));
        assert_eq!(
            cfg.keys[0].expires.map(|e| e.unix_ms),
            Some(1_769_817_600_000)
        );
        assert_eq!(
            cfg.keys[1].expires.map(|e| e.unix_ms),
            Some(1_767_225_600_000)
        );
        let bad = text.replace("2026-01-31T00:00:00Z", "soon");
        let err = parse_with_env(&bad, &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("keys[0].expires"), "{err}");
        let unknown = text.replace("audiences: [t]", "audiences: [t]\n      audience: x");
        let err = parse_with_env(&unknown, &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("auth.oidc[0]") && err.contains("audience"),
            "{err}"
        );
    }

    #[test]
    fn minimal_parses_with_defaults() {
        let cfg = parse_with_env(MINIMAL, &env);
        assert!(cfg.is_ok(), "{cfg:?}");
        if let Ok(cfg) = cfg {
            assert_eq!(cfg.server.max_body_bytes, 10 * 1024 * 1024);
            assert!(cfg.ledger.enabled);
        }
    }

    #[test]
    fn gateway_owned_headers_and_duplicate_keys_are_rejected() {
        let text = format!(
            "{MINIMAL}providers:\n  - name: p\n    kind: mock\n    forward_headers: [Authorization]\n\
             keys:\n  - {{id: a, hash: \"sha256:{h}\", principal: x}}\n  - {{id: b, hash: \"sha256:{h}\", principal: y}}\n",
            h = "ab".repeat(32)
        );
        let err = parse_with_env(&text, &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("providers[0].forward_headers[0]"), "{err}");
        assert!(err.contains("keys[1].hash"), "{err}");
    }

    #[test]
    fn aws_settings_belong_to_bedrock() {
        let text = format!(
            "{MINIMAL}providers:\n  - name: g\n    kind: gemini\n    aws: {{region: us-east-1}}\n\
             \x20 - name: b\n    kind: bedrock\n    api_key: k\n\
             \x20 - name: ok\n    kind: bedrock\n    aws: {{region: eu-west-1, access_key_id: a, secret_access_key: s}}\n"
        );
        let err = parse_with_env(&text, &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("providers[0].aws"), "{err}");
        assert!(err.contains("providers[1].api_key"), "{err}");
        assert!(!err.contains("providers[2]"), "{err}");
    }
}
