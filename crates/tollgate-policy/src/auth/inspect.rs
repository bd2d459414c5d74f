//! `tollgate token inspect`: how a bearer value would be authenticated and
//! what it may use — the operator's tool for "access denied" tickets. Uses
//! exactly the request path's checks; the claims it shows for an invalid
//! token are unverified and labelled so.

use serde::Serialize;
use serde_json::Value;

use super::{jwt, Credentials, Grant, Policy, Principal};

#[derive(Debug, Serialize)]
pub struct PrincipalView {
    pub subject: String,
    pub kind: &'static str,
    pub groups: Vec<String>,
    pub tenant: Option<String>,
    pub method: &'static str,
    pub issuer: Option<String>,
    pub key_id: Option<String>,
}

impl From<&Principal> for PrincipalView {
    fn from(p: &Principal) -> Self {
        Self {
            subject: p.subject.to_string(),
            kind: p.kind.as_str(),
            groups: p.groups.to_vec(),
            tenant: p.tenant.as_deref().map(str::to_owned),
            method: p.method.as_str(),
            issuer: p.issuer.as_deref().map(str::to_owned),
            key_id: p.key_id.as_deref().map(str::to_owned),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ModelAccess {
    pub model: String,
    pub allowed: bool,
    /// `key` (the API key's own list), `rule:NAME`, `not_granted`, `tenant_mismatch`.
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// `jwt` or `api_key`.
    pub credential: &'static str,
    pub valid: bool,
    /// The failed check, when not valid.
    pub failure: Option<String>,
    pub failure_reason: Option<&'static str>,
    /// JWT: the issuer config that matched, the header's `alg` and `kid`,
    /// the issuer's cached key ids, and the last JWKS fetch error if any.
    pub issuer: Option<String>,
    pub alg: Option<String>,
    pub kid: Option<String>,
    pub cached_kids: Vec<String>,
    pub jwks_error: Option<String>,
    /// JWT: the claims as sent (unverified when `valid` is false).
    pub claims: Option<Value>,
    /// The principal: verified, or (for an invalid token whose claims could
    /// be mapped) what it would have been.
    pub principal: Option<PrincipalView>,
    pub principal_verified: bool,
    pub rules: Vec<String>,
    pub admin: bool,
    pub models: Vec<ModelAccess>,
}

/// Inspects one bearer value. `models` are the configured models with
/// their owning tenant, in listing order.
pub async fn inspect<'m>(
    creds: &Credentials<'_>,
    policy: &Policy,
    models: impl Iterator<Item = (&'m str, Option<&'m str>)>,
    presented: &str,
) -> Report {
    let presented = bare(presented);
    let is_jwt = jwt::looks_like_jwt(presented);
    let mut r = Report {
        credential: if is_jwt { "jwt" } else { "api_key" },
        valid: false,
        failure: None,
        failure_reason: None,
        issuer: None,
        alg: None,
        kid: None,
        cached_kids: Vec::new(),
        jwks_error: None,
        claims: None,
        principal: None,
        principal_verified: false,
        rules: Vec::new(),
        admin: false,
        models: Vec::new(),
    };
    let mut unverified: Option<Principal> = None;
    if is_jwt {
        if let Ok(p) = jwt::peek(presented) {
            r.alg = Some(p.alg.clone());
            r.kid = p.kid.clone();
            r.claims = Some(Value::Object(p.claims.clone()));
            if let Ok(iss) = creds.issuers.select(&p) {
                r.issuer = Some(iss.issuer.to_string());
                unverified = iss.principal(&p.claims).ok();
            }
        }
    }
    let result = creds.check(presented).await;
    if let Some(iss) = r.issuer.as_deref().and_then(|i| creds.issuers.get(i)) {
        r.cached_kids = iss.jwks.keys().kids();
        r.jwks_error = iss.jwks.last_error();
    }
    let identity = match result {
        Ok(id) => {
            r.valid = true;
            r.principal_verified = true;
            Some(id)
        }
        Err(e) => {
            r.failure = Some(e.to_string());
            r.failure_reason = Some(e.label());
            None
        }
    };
    let principal = identity
        .as_ref()
        .map(|i| (*i.principal).clone())
        .or(unverified);
    let Some(principal) = principal else {
        return r;
    };
    let key_grant = identity.as_ref().and_then(|i| i.key_grant());
    let access = policy.evaluate(&principal, key_grant);
    r.rules = access.rule_names();
    r.admin = access.admin;
    r.models = models
        .map(|(name, owner)| {
            let d = access.decide(name, owner);
            ModelAccess {
                model: name.to_string(),
                allowed: d.is_ok(),
                why: match d {
                    Ok(Grant::Key) => "key".into(),
                    Ok(Grant::Rule(n)) => format!("rule:{n}"),
                    Err(d) => d.label().into(),
                },
            }
        })
        .collect();
    r.principal = Some(PrincipalView::from(&principal));
    r
}

/// The credential without whitespace or a `Bearer ` prefix.
fn bare(presented: &str) -> &str {
    let presented = presented.trim();
    presented
        .strip_prefix("Bearer ")
        .or_else(|| presented.strip_prefix("bearer "))
        .unwrap_or(presented)
        .trim()
}

impl Report {
    /// An API key the gateway does not know (revoked keys leave its index)
    /// that the store holds as revoked: the result says `key_revoked`,
    /// with the key id and when, instead of `invalid_key`. `revoked` lists
    /// the store's revoked keys as (id, stored hash, revoked at Unix ms).
    pub fn note_revoked<'k>(
        &mut self,
        presented: &str,
        revoked: impl IntoIterator<Item = (&'k str, &'k str, i64)>,
    ) {
        if self.credential != "api_key" || self.failure_reason != Some("invalid_key") {
            return;
        }
        let hash = super::hash_key(bare(presented));
        let Some((id, _, at_ms)) = revoked
            .into_iter()
            .find(|(_, stored, _)| super::parse_hash(stored) == Some(hash))
        else {
            return;
        };
        let at = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
        self.failure_reason = Some("key_revoked");
        self.failure = Some(format!(
            "API key `{id}` was revoked at {}",
            humantime::format_rfc3339_seconds(at)
        ));
    }

    /// Human-readable form for the terminal.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(o, "credential: {}", self.credential);
        if let Some(i) = &self.issuer {
            let _ = writeln!(o, "issuer:     {i}");
        }
        if self.credential == "jwt" {
            let _ = writeln!(
                o,
                "header:     alg={} kid={}",
                self.alg.as_deref().unwrap_or("?"),
                self.kid.as_deref().unwrap_or("(none)")
            );
            if self.issuer.is_some() {
                let _ = writeln!(o, "cached keys: {}", self.cached_kids.join(", "));
            }
            if let Some(e) = &self.jwks_error {
                let _ = writeln!(o, "JWKS error: {e}");
            }
        }
        match (&self.failure, self.failure_reason) {
            (Some(f), Some(reason)) => {
                let _ = writeln!(o, "result:     REJECTED ({reason}): {f}");
            }
            _ => {
                let _ = writeln!(o, "result:     VALID");
            }
        }
        if let Some(p) = &self.principal {
            let note = if self.principal_verified {
                ""
            } else {
                " (unverified: from the token's claims)"
            };
            let _ = writeln!(o, "principal{note}:");
            let _ = writeln!(o, "  subject: {}", p.subject);
            let _ = writeln!(o, "  kind:    {}", p.kind);
            let _ = writeln!(o, "  groups:  {}", p.groups.join(", "));
            let _ = writeln!(o, "  tenant:  {}", p.tenant.as_deref().unwrap_or("(none)"));
            if let Some(k) = &p.key_id {
                let _ = writeln!(o, "  key id:  {k}");
            }
            let _ = writeln!(o, "policy rules: {}", self.rules.join(", "));
            let _ = writeln!(o, "admin:        {}", self.admin);
            let _ = writeln!(o, "models:");
            for m in &self.models {
                let mark = if m.allowed { "allow" } else { "deny " };
                let _ = writeln!(o, "  {mark} {:<32} {}", m.model, m.why);
            }
        }
        o
    }
}
