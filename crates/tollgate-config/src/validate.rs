//! Checks that span several fields: references resolve, names are unique,
//! addresses, URLs, hashes and globs are well formed. Every problem is
//! reported with its path, all at once, so one `tollgate validate` run shows
//! everything to fix.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::model::{Config, ProviderKind};

/// Signing algorithms an OIDC issuer may be configured with (asymmetric only).
pub const OIDC_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

pub(crate) fn validate(cfg: &Config) -> Result<(), Vec<String>> {
    let mut p = Vec::new();
    for (path, addr) in [
        ("server.listen", &cfg.server.listen),
        ("server.admin_listen", &cfg.server.admin_listen),
    ] {
        if addr.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "{path}: {addr:?} is not an address like 127.0.0.1:8080"
            ));
        }
    }
    if cfg.server.max_body_bytes == 0 {
        p.push("server.max_body_bytes: must be greater than 0".into());
    }
    if cfg.server.max_concurrent_requests == 0 {
        p.push("server.max_concurrent_requests: must be greater than 0".into());
    }
    let t = &cfg.server.timeouts;
    for (name, d) in [
        ("header_read", t.header_read),
        ("body_read", t.body_read),
        ("idle", t.idle),
    ] {
        if d.is_zero() {
            p.push(format!("server.timeouts.{name}: must be greater than 0"));
        }
    }
    if cfg.ledger.queue_capacity == 0 {
        p.push("ledger.queue_capacity: must be greater than 0".into());
    }
    if let Some(h) = &cfg.ledger.tags.header {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            p.push(format!("ledger.tags.header: {h:?} is not a header name"));
        }
    }
    if cfg.ledger.batch_size == 0 {
        p.push("ledger.batch_size: must be greater than 0".into());
    }
    for (i, g) in cfg.audit.payload_models.iter().enumerate() {
        if globset::Glob::new(g).is_err() {
            p.push(format!("audit.payload_models[{i}]: invalid glob {g:?}"));
        }
    }
    if cfg.audit.queue_capacity == 0 {
        p.push("audit.queue_capacity: must be greater than 0".into());
    }
    if !(0.0..=1.0).contains(&cfg.tracing.sample_ratio) {
        p.push("tracing.sample_ratio: must be between 0 and 1".into());
    }
    if cfg.tracing.enabled && !cfg.tracing.endpoint.starts_with("http") {
        p.push(
            "tracing.endpoint: an http:// or https:// URL is required when tracing is enabled"
                .into(),
        );
    }
    if cfg.ledger.retention.is_some_and(|r| r.as_secs() < 60) {
        p.push("ledger.retention: must be at least 1m".into());
    }
    if let Err(e) = crate::Backend::of(&cfg.storage.url) {
        p.push(format!("storage.url: {e}"));
    }

    let mut providers = HashSet::new();
    for (i, prov) in cfg.providers.iter().enumerate() {
        let at = format!("providers[{i}]");
        if !providers.insert(prov.name.as_str()) {
            p.push(format!("{at}.name: duplicate provider {:?}", prov.name));
        }
        if prov.name.is_empty() || prov.name.contains('/') {
            p.push(format!("{at}.name: must be non-empty and contain no '/'"));
        }
        match (prov.kind, &prov.base_url) {
            (ProviderKind::Openai, None) => {
                p.push(format!("{at}.base_url: required for kind openai"))
            }
            (ProviderKind::Databricks | ProviderKind::AzureOpenai, None) => p.push(format!(
                "{at}.base_url: required (the workspace or resource endpoint URL)"
            )),
            (_, Some(url)) if url::Url::parse(url).is_err() || !url.starts_with("http") => {
                p.push(format!(
                    "{at}.base_url: {:?} is not an http(s) URL",
                    crate::shown_url(url)
                ))
            }
            _ => {}
        }
        if prov.aws.is_some() && prov.kind != ProviderKind::Bedrock {
            p.push(format!("{at}.aws: only kind bedrock signs with AWS keys"));
        }
        if prov.kind == ProviderKind::Bedrock && prov.api_key.is_some() {
            p.push(format!(
                "{at}.api_key: kind bedrock signs requests with AWS keys; set `aws` instead"
            ));
        }
        for (j, h) in prov.forward_headers.iter().enumerate() {
            let name = h.strip_suffix('*').unwrap_or(h);
            if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                p.push(format!(
                    "{at}.forward_headers[{j}]: {h:?} is not a header name"
                ));
            } else if crate::NEVER_FORWARDED
                .iter()
                .any(|n| n.eq_ignore_ascii_case(h))
            {
                p.push(format!(
                    "{at}.forward_headers[{j}]: {h:?} is set by the gateway and is never forwarded"
                ));
            }
        }
        if let Some(key) = &prov.api_key {
            if http::HeaderValue::from_str(&format!("Bearer {}", key.expose())).is_err() {
                p.push(format!(
                    "{at}.api_key: contains characters not allowed in a header"
                ));
            }
        }
        for (name, value) in &prov.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                p.push(format!("{at}.headers.{name}: not a valid header"));
            }
        }
        p.extend(super::credentials::provider_problems(prov, &at));
        if prov.max_response_bytes == 0 {
            p.push(format!("{at}.max_response_bytes: must be greater than 0"));
        }
        let t = &prov.timeouts;
        if t.connect.is_zero() || t.first_byte.is_zero() || t.total.is_zero() {
            p.push(format!(
                "{at}.timeouts: every timeout must be greater than 0"
            ));
        }
    }

    let mut models = HashSet::new();
    for (i, m) in cfg.models.iter().enumerate() {
        let at = format!("models[{i}]");
        if !models.insert(m.name.as_str()) {
            p.push(format!("{at}.name: duplicate model {:?}", m.name));
        }
        if m.name.is_empty() {
            p.push(format!("{at}.name: must not be empty"));
        }
        if !providers.contains(m.provider.as_str()) {
            p.push(format!("{at}.provider: no provider named {:?}", m.provider));
        }
        if let Some(price) = &m.price {
            if price.input_per_mtok < 0.0 || price.output_per_mtok < 0.0 {
                p.push(format!("{at}.price: prices must not be negative"));
            }
        }
        if matches!(&m.endpoints, Some(e) if e.is_empty()) {
            p.push(format!(
                "{at}.endpoints: list at least one endpoint or leave it out"
            ));
        }
    }

    super::routing::validate(&cfg.virtual_models, &models, &mut p);
    super::cache::validate(&cfg.cache, &mut p);
    super::prompts::validate(cfg, &mut p);
    super::guardrails::validate_guardrails(&cfg.guardrails, &mut p);
    super::limits::validate_limits(&cfg.limits, &mut p);

    let mut key_ids = HashSet::new();
    let mut key_hashes = HashSet::new();
    for (i, k) in cfg.keys.iter().enumerate() {
        let at = format!("keys[{i}]");
        if !key_ids.insert(k.id.as_str()) {
            p.push(format!("{at}.id: duplicate key id {:?}", k.id));
        }
        if !key_hashes.insert(k.hash.to_ascii_lowercase()) {
            p.push(format!("{at}.hash: the same key is declared twice"));
        }
        if tollgate_core::keyhash::parse_hash(&k.hash).is_none() {
            p.push(format!(
                "{at}.hash: expected sha256:<64 hex digits> (see `tollgate keys hash`)"
            ));
        }
        for (j, g) in k.models.iter().enumerate() {
            if globset::Glob::new(g).is_err() {
                p.push(format!("{at}.models[{j}]: {g:?} is not a valid glob"));
            }
        }
        if matches!(&k.tenant, Some(t) if t.trim().is_empty()) {
            p.push(format!("{at}.tenant: must not be empty"));
        }
    }

    for (i, m) in cfg.models.iter().enumerate() {
        if matches!(&m.tenant, Some(t) if t.trim().is_empty()) {
            p.push(format!("models[{i}].tenant: must not be empty"));
        }
    }

    validate_auth(cfg, &mut p);
    validate_policy(cfg, &mut p);
    super::mcp::validate_mcp(&cfg.mcp, &mut p);
    super::egress::validate_egress(cfg.egress.as_ref(), &mut p);
    super::secrets::validate_secrets(&cfg.secrets, &mut p);
    super::forward::validate_routes(&cfg.routes, &mut p);
    super::forward::validate_connections(&cfg.connections, &mut p);
    for (i, s) in cfg.mcp.servers.iter().enumerate() {
        let named = s.openapi.as_ref().and_then(|o| o.connection.as_deref());
        if let Some(c) = named.filter(|c| !cfg.connections.iter().any(|k| k.name == *c)) {
            p.push(format!(
                "mcp.servers[{i}].openapi.connection: no connection named {c:?}"
            ));
        }
    }
    super::jobs::validate_jobs(&cfg.jobs, &mut p);

    if p.is_empty() {
        Ok(())
    } else {
        Err(p)
    }
}

fn validate_auth(cfg: &Config, p: &mut Vec<String>) {
    let mut issuers = HashSet::new();
    for (i, o) in cfg.auth.oidc.iter().enumerate() {
        let at = format!("auth.oidc[{i}]");
        if !issuers.insert(o.issuer.as_str()) {
            p.push(format!(
                "{at}.issuer: duplicate issuer {:?}",
                crate::shown_url(&o.issuer)
            ));
        }
        match url::Url::parse(&o.issuer) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => p.push(format!(
                "{at}.issuer: {:?} is not an http(s) URL (it must equal the tokens' `iss`)",
                crate::shown_url(&o.issuer)
            )),
        }
        if o.audiences.is_empty() {
            p.push(format!(
                "{at}.audiences: list at least one audience (tokens whose `aud` contains none of them are rejected)"
            ));
        }
        for (j, a) in o.audiences.iter().enumerate() {
            if a.is_empty() {
                p.push(format!("{at}.audiences[{j}]: must not be empty"));
            }
        }
        if let Some(url) = &o.jwks_url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => p.push(format!(
                    "{at}.jwks_url: {:?} is not an http(s) URL",
                    crate::shown_url(url)
                )),
            }
        } else if !o.discovery {
            p.push(format!("{at}.jwks_url: required when discovery is false"));
        }
        if o.algorithms.is_empty() {
            p.push(format!("{at}.algorithms: list at least one algorithm"));
        }
        for (j, a) in o.algorithms.iter().enumerate() {
            if OIDC_ALGORITHMS.contains(&a.as_str()) {
                continue;
            }
            let why = if a.eq_ignore_ascii_case("none") {
                "unsigned tokens are never accepted".to_string()
            } else if a.to_ascii_uppercase().starts_with("HS") {
                "HMAC algorithms are not accepted for OIDC issuers (they publish asymmetric keys)"
                    .to_string()
            } else {
                format!(
                    "unknown algorithm; use one of {}",
                    OIDC_ALGORITHMS.join(", ")
                )
            };
            p.push(format!("{at}.algorithms[{j}]: {a:?}: {why}"));
        }
        if o.refresh < std::time::Duration::from_secs(1) {
            p.push(format!("{at}.refresh: must be at least 1s"));
        }
        let c = &o.claims;
        let paths = [
            ("subject", Some(&c.subject)),
            ("groups", c.groups.as_ref()),
            ("tenant", c.tenant.as_ref()),
            ("kind_claim", c.kind_claim.as_ref()),
        ];
        for (name, path) in paths {
            if let Some(path) = path {
                if path.is_empty() || path.starts_with('.') || path.ends_with('.') {
                    p.push(format!(
                        "{at}.claims.{name}: {path:?} is not a claim path like `groups` or `realm_access.roles`"
                    ));
                }
            }
        }
        if !c.service_values.is_empty() && c.kind_claim.is_none() {
            p.push(format!(
                "{at}.claims.service_values: needs claims.kind_claim"
            ));
        }
    }
}

fn validate_policy(cfg: &Config, p: &mut Vec<String>) {
    let mut names = HashSet::new();
    for (i, r) in cfg.policy.rules.iter().enumerate() {
        let at = format!("policy.rules[{i}]");
        if r.name.is_empty() {
            p.push(format!("{at}.name: must not be empty"));
        } else if !names.insert(r.name.as_str()) {
            p.push(format!("{at}.name: duplicate rule {:?}", r.name));
        }
        if r.principals.is_empty()
            && r.groups.is_empty()
            && r.tenants.is_empty()
            && r.kinds.is_empty()
            && r.claims.is_empty()
        {
            p.push(format!(
                "{at}: list at least one selector (principals, groups, tenants, kinds or claims); a rule without one matches nobody"
            ));
        }
        for (j, c) in r.claims.iter().enumerate() {
            let scalar = matches!(
                c.equals,
                Some(
                    serde_json::Value::String(_)
                        | serde_json::Value::Bool(_)
                        | serde_json::Value::Number(_)
                )
            );
            if c.claim.is_empty() || (c.equals.is_some() == c.contains.is_some()) {
                p.push(format!(
                    "{at}.claims[{j}]: name a claim and exactly one of equals or contains"
                ));
            } else if c.equals.is_some() && !scalar {
                p.push(format!(
                    "{at}.claims[{j}].equals: must be a string, boolean or number"
                ));
            }
        }
        if r.models.is_empty()
            && r.tools.is_empty()
            && r.routes.is_empty()
            && r.connections.is_empty()
            && r.jobs.is_empty()
            && !r.admin
        {
            p.push(format!(
                "{at}: grants nothing (no models, tools, routes, connections or jobs, admin: false)"
            ));
        }
        for (field, list) in [
            ("models", &r.models),
            ("tools", &r.tools),
            ("routes", &r.routes),
            ("connections", &r.connections),
            ("jobs", &r.jobs),
        ] {
            for (j, g) in list.iter().enumerate() {
                if globset::Glob::new(g).is_err() {
                    p.push(format!("{at}.{field}[{j}]: {g:?} is not a valid glob"));
                }
            }
        }
        for (j, m) in r.methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                p.push(format!("{at}.methods[{j}]: {m:?} is not an HTTP method"));
            }
        }
        if !r.methods.is_empty() && r.routes.is_empty() && r.connections.is_empty() {
            p.push(format!(
                "{at}.methods: applies to routes and connections, and the rule grants none"
            ));
        }
    }
}
