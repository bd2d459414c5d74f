//! Checks that span several fields: references resolve, names are unique,
//! addresses, URLs, hashes and globs are well formed. Every problem is
//! reported with its path, all at once, so one `tollgate validate` run shows
//! everything to fix.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::model::{Config, ProviderKind};

pub fn validate(cfg: &Config) -> Result<(), Vec<String>> {
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
    if !cfg.storage.url.starts_with("sqlite:") {
        p.push(format!(
            "storage.url: {:?} is not supported; use sqlite://PATH",
            cfg.storage.url
        ));
    }
    if cfg.ledger.queue_capacity == 0 {
        p.push("ledger.queue_capacity: must be greater than 0".into());
    }
    if cfg.ledger.batch_size == 0 {
        p.push("ledger.batch_size: must be greater than 0".into());
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
            (_, Some(url)) if reqwest::Url::parse(url).is_err() || !url.starts_with("http") => {
                p.push(format!("{at}.base_url: {url:?} is not an http(s) URL"))
            }
            _ => {}
        }
        for (j, h) in prov.forward_headers.iter().enumerate() {
            let name = h.strip_suffix('*').unwrap_or(h);
            if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                p.push(format!(
                    "{at}.forward_headers[{j}]: {h:?} is not a header name"
                ));
            } else if crate::providers::NEVER_FORWARDED
                .iter()
                .any(|n| n.eq_ignore_ascii_case(h))
            {
                p.push(format!(
                    "{at}.forward_headers[{j}]: {h:?} is set by the gateway and is never forwarded"
                ));
            }
        }
        if let Some(key) = &prov.api_key {
            if http::HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
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
        if crate::auth::parse_hash(&k.hash).is_none() {
            p.push(format!(
                "{at}.hash: expected sha256:<64 hex digits> (see `tollgate keys hash`)"
            ));
        }
        for (j, g) in k.models.iter().enumerate() {
            if globset::Glob::new(g).is_err() {
                p.push(format!("{at}.models[{j}]: {g:?} is not a valid glob"));
            }
        }
    }

    if p.is_empty() {
        Ok(())
    } else {
        Err(p)
    }
}
