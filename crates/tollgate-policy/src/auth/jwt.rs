//! JWT bearer tokens from OIDC issuers: the shape check that routes a bearer
//! value here instead of to the API-key index, header and claim parsing
//! (for precise reasons before any signature work), offline verification
//! against the issuer's cached keys, and the claims → `Principal` mapping.
//! Owns the token rules; the keys themselves live in `jwks.rs`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate_core::error::BuildError;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::{JwksCache, JwksSource};
use super::{AuthMethod, Principal};
use tollgate_config::{ClaimsConfig, OidcConfig, PrincipalKind};

/// Most groups kept from one token.
const MAX_GROUPS: usize = 256;
/// How long a request may wait for an unknown-kid JWKS refresh.
pub const KID_REFRESH_WAIT: Duration = Duration::from_secs(2);

/// Why a token was refused. Messages name the failed check and never
/// contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token algorithm `none` is not accepted: tokens must be signed")]
    AlgNone,
    #[error("token algorithm `{alg}` is not accepted{}", issuer_suffix(.issuer))]
    AlgNotAllowed { alg: String, issuer: Option<String> },
    #[error("token header lists critical extensions (`crit`), which are not supported")]
    CritHeader,
    #[error("token has no issuer (`iss`)")]
    MissingIssuer,
    #[error("token issuer `{0}` is not accepted")]
    UnknownIssuer(String),
    #[error("unknown signing key `{kid}` for issuer `{issuer}`")]
    UnknownKey { kid: String, issuer: String },
    #[error("no signing keys for issuer `{0}` are available yet (identity provider not reached); try again shortly")]
    KeysUnavailable(String),
    #[error("token algorithm `{alg}` does not match signing key `{kid}` ({kind})")]
    AlgKeyMismatch {
        alg: String,
        kid: String,
        kind: &'static str,
    },
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet (`nbf` in the future)")]
    NotYetValid,
    #[error("token audience not accepted")]
    WrongAudience,
    #[error("token issuer does not match")]
    WrongIssuer,
    #[error("token has no `{0}` claim")]
    MissingClaim(String),
    #[error("token claim `{0}` has the wrong format")]
    InvalidClaim(String),
}

fn issuer_suffix(issuer: &Option<String>) -> String {
    issuer
        .as_ref()
        .map(|i| format!(" for issuer `{i}`"))
        .unwrap_or_default()
}

impl TokenError {
    /// Low-cardinality reason for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "token_malformed",
            TokenError::AlgNone => "alg_none",
            TokenError::AlgNotAllowed { .. } => "alg_not_allowed",
            TokenError::CritHeader => "unsupported_header",
            TokenError::MissingIssuer | TokenError::UnknownIssuer(_) | TokenError::WrongIssuer => {
                "issuer_not_accepted"
            }
            TokenError::UnknownKey { .. } => "unknown_signing_key",
            TokenError::KeysUnavailable(_) => "keys_unavailable",
            TokenError::AlgKeyMismatch { .. } => "alg_key_mismatch",
            TokenError::BadSignature => "invalid_signature",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::WrongAudience => "audience_not_accepted",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::InvalidClaim(_) => "invalid_claim",
        }
    }
}

pub use tollgate_core::bearer::{looks_like_jwt, Peeked};

/// Decodes header and claims without verifying anything
/// (`tollgate_core::bearer::peek`).
pub fn peek(token: &str) -> Result<Peeked, TokenError> {
    tollgate_core::bearer::peek(token).map_err(TokenError::Malformed)
}

/// One configured issuer, ready to verify tokens.
pub struct OidcIssuer {
    pub issuer: Arc<str>,
    pub config: OidcConfig,
    pub algorithms: Vec<Algorithm>,
    validations: Vec<(Algorithm, Validation)>,
    pub jwks: Arc<JwksCache>,
}

impl OidcIssuer {
    /// Compiles a validated config; `jwks` is the (possibly reused) key cache.
    pub fn new(config: &OidcConfig, jwks: Arc<JwksCache>) -> Result<Self, BuildError> {
        let mut algorithms = Vec::new();
        let mut validations = Vec::new();
        for a in &config.algorithms {
            let alg = Algorithm::from_str(a).map_err(|_| format!("unknown algorithm {a:?}"))?;
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(format!("HMAC algorithm {a} is not accepted").into());
            }
            let mut v = Validation::new(alg);
            v.leeway = config.leeway.as_secs();
            v.validate_exp = true;
            v.validate_nbf = true;
            v.set_audience(&config.audiences);
            v.set_issuer(&[config.issuer.as_str()]);
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
            algorithms.push(alg);
            validations.push((alg, v));
        }
        Ok(Self {
            issuer: config.issuer.as_str().into(),
            config: config.clone(),
            algorithms,
            validations,
            jwks,
        })
    }

    pub fn source(config: &OidcConfig) -> JwksSource {
        JwksSource {
            issuer: config.issuer.clone(),
            discovery: config.discovery,
            jwks_url: config.jwks_url.clone(),
        }
    }

    /// The header's algorithm, if this issuer accepts it.
    fn algorithm(&self, peeked: &Peeked) -> Result<(Algorithm, &Validation), TokenError> {
        if peeked.alg.eq_ignore_ascii_case("none") || peeked.alg.is_empty() {
            return Err(TokenError::AlgNone);
        }
        let not_allowed = || TokenError::AlgNotAllowed {
            alg: clip(&peeked.alg),
            issuer: Some(self.issuer.to_string()),
        };
        let alg = Algorithm::from_str(&peeked.alg).map_err(|_| not_allowed())?;
        self.validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(a, v)| (*a, v))
            .ok_or_else(not_allowed)
    }

    /// Verifies signature and claims against the cached keys; no I/O.
    pub fn verify(&self, token: &str, peeked: &Peeked) -> Result<Principal, TokenError> {
        let (alg, validation) = self.algorithm(peeked)?;
        let keys = self.jwks.keys();
        if keys.is_empty() {
            return Err(TokenError::KeysUnavailable(self.issuer.to_string()));
        }
        let key = match &peeked.kid {
            Some(kid) => keys.get(kid).ok_or_else(|| TokenError::UnknownKey {
                kid: clip(kid),
                issuer: self.issuer.to_string(),
            })?,
            // No `kid`: the issuer must have exactly one key fit for `alg`.
            None => {
                let mut fit = keys.all().iter().filter(|k| k.accepts(alg));
                match (fit.next(), fit.next()) {
                    (Some(k), None) => k,
                    _ => {
                        return Err(TokenError::UnknownKey {
                            kid: "(none)".into(),
                            issuer: self.issuer.to_string(),
                        })
                    }
                }
            }
        };
        if !key.accepts(alg) {
            return Err(TokenError::AlgKeyMismatch {
                alg: peeked.alg.clone(),
                kid: key.kid.clone().unwrap_or_else(|| "(none)".into()),
                kind: key.kind.as_str(),
            });
        }
        jsonwebtoken::decode::<serde::de::IgnoredAny>(token, &key.key, validation)
            .map_err(|e| map_error(e.kind()))?;
        // `exp`/`nbf` once more on the gateway's clock (the library reads
        // the system clock itself), so every time check follows one clock.
        within_times(&peeked.claims, validation.leeway)?;
        self.principal(&peeked.claims)
    }

    /// Claims → principal, per `claims` mapping.
    pub fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, TokenError> {
        map_claims(&self.config.claims, claims, self.issuer.clone())
    }
}

/// `exp` (required) and `nbf` (optional) against `tollgate_core::clock`.
fn within_times(claims: &Map<String, Value>, leeway: u64) -> Result<(), TokenError> {
    let now = tollgate_core::clock::wall_secs();
    let secs = |name: &str| claims.get(name).and_then(Value::as_f64).map(|v| v as u64);
    match secs("exp") {
        Some(exp) if exp.saturating_add(leeway) < now => return Err(TokenError::Expired),
        Some(_) => {}
        None => return Err(TokenError::InvalidClaim("exp".into())),
    }
    if secs("nbf").is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(clip(c)),
        ErrorKind::InvalidClaimFormat(c) => TokenError::InvalidClaim(clip(c)),
        ErrorKind::InvalidAlgorithm => TokenError::AlgNotAllowed {
            alg: "(header)".into(),
            issuer: None,
        },
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenError::BadSignature,
        ErrorKind::Base64(_) => TokenError::Malformed("bad base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => TokenError::Malformed("bad JSON"),
        _ => TokenError::Malformed("cannot be decoded"),
    }
}

/// At most 100 characters of something that came from the token.
fn clip(s: &str) -> String {
    s.chars()
        .take(100)
        .filter(|c| !c.is_control())
        .collect::<String>()
}

/// Follows a claim path: `groups`, `realm_access.roles`; a key that itself
/// contains dots (`https://example.com/groups`) matches as a whole first.
pub fn claim<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    for (i, _) in path.match_indices('.') {
        if let Some(Value::Object(inner)) = claims.get(&path[..i]) {
            if let Some(v) = claim(inner, &path[i + 1..]) {
                return Some(v);
            }
        }
    }
    None
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A list claim: an array of strings, or one space-separated string (`scp`).
fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(scalar).take(MAX_GROUPS).collect(),
        Value::String(s) => s
            .split_whitespace()
            .map(str::to_owned)
            .take(MAX_GROUPS)
            .collect(),
        _ => Vec::new(),
    }
}

pub fn map_claims(
    cfg: &ClaimsConfig,
    claims: &Map<String, Value>,
    issuer: Arc<str>,
) -> Result<Principal, TokenError> {
    let subject = match claim(claims, &cfg.subject) {
        None | Some(Value::Null) => return Err(TokenError::MissingClaim(cfg.subject.clone())),
        Some(v) => scalar(v).ok_or_else(|| TokenError::InvalidClaim(cfg.subject.clone()))?,
    };
    let groups = cfg
        .groups
        .as_deref()
        .and_then(|p| claim(claims, p))
        .map(list)
        .unwrap_or_default();
    let tenant = cfg
        .tenant
        .as_deref()
        .and_then(|p| claim(claims, p))
        .and_then(scalar)
        .map(|t| Arc::<str>::from(t.as_str()));
    let kind = match cfg.kind_claim.as_deref().and_then(|p| claim(claims, p)) {
        None | Some(Value::Null) => PrincipalKind::User,
        Some(_) if cfg.service_values.is_empty() => PrincipalKind::Service,
        Some(v) => {
            let values = list(v);
            if values.iter().any(|x| cfg.service_values.contains(x)) {
                PrincipalKind::Service
            } else {
                PrincipalKind::User
            }
        }
    };
    Ok(Principal {
        subject: clip_long(&subject).into(),
        kind,
        groups: groups.into(),
        tenant,
        key_id: None,
        issuer: Some(issuer),
        method: AuthMethod::Jwt,
        claims: Some(Arc::new(claims.clone())),
    })
}

fn clip_long(s: &str) -> String {
    s.chars().take(512).collect()
}

/// Tokens already verified: a client reuses its token for many requests,
/// and the signature check is the expensive part. An entry is used only
/// for the very same token (compared whole, in constant time), while it is
/// within `exp`/`nbf` (± leeway), the issuer's key set that verified it is
/// still the current one, and the API keys are the ones no key matched
/// when it was stored (`KeyStamp`), so a hit answers exactly what a key
/// lookup and a full verification would. Looked up by a per-process seeded
/// 64-bit hash of the token rather than its SHA-256: the SHA-256 of an
/// ~800-byte token was ~31 k instructions, an eighth of a whole request
/// with every policy on, and the whole-token comparison makes a hash
/// collision harmless (it can only miss). Sharded, bounded; a full shard
/// is cleared.
struct VerifiedCache {
    seed: foldhash::quality::RandomState,
    shards: Vec<Mutex<HashMap<u64, Verified>>>,
}

/// The API keys a cached token was checked against: the versions of the
/// config's and the store's key indexes (`KeyIndex::version`).
pub type KeyStamp = (u64, u64);

#[derive(Clone)]
struct Verified {
    token: Arc<str>,
    keys: KeyStamp,
    principal: Arc<Principal>,
    issuer: usize,
    generation: u64,
    exp: u64,
    nbf: Option<u64>,
}

const CACHE_SHARDS: usize = 16;
const CACHE_SHARD_CAPACITY: usize = 1024;
/// Longer tokens are verified every time rather than kept (bounds the
/// cache's memory at ~16 k entries × 8 KiB in the worst case).
const CACHE_MAX_TOKEN: usize = 8 * 1024;

impl Default for VerifiedCache {
    fn default() -> Self {
        Self {
            seed: Default::default(),
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }
}

impl VerifiedCache {
    fn slot(&self, token: &str) -> (u64, Option<&Mutex<HashMap<u64, Verified>>>) {
        use std::hash::BuildHasher as _;
        let h = self.seed.hash_one(token);
        (h, self.shards.get((h >> 60) as usize % CACHE_SHARDS))
    }

    fn get(&self, token: &str, keys: KeyStamp) -> Option<Verified> {
        let (h, shard) = self.slot(token);
        let v = shard?.lock().ok()?.get(&h).cloned()?;
        (same_bytes(v.token.as_bytes(), token.as_bytes()) && v.keys == keys).then_some(v)
    }

    fn put(&self, v: Verified) {
        if v.token.len() > CACHE_MAX_TOKEN {
            return;
        }
        let (h, shard) = self.slot(&v.token);
        if let Some(Ok(mut shard)) = shard.map(|s| s.lock()) {
            if shard.len() >= CACHE_SHARD_CAPACITY {
                shard.clear();
            }
            shard.insert(h, v);
        }
    }
}

/// Whether two byte strings are equal, in time that depends only on their
/// lengths: every byte pair is compared (no early exit), so how long a
/// refusal takes says nothing about how much of a remembered token a
/// presented one matched. Written by hand rather than with `subtle`, whose
/// per-byte optimisation barrier made the comparison of an ~800-byte token
/// ~6 k instructions; this fold is vectorised.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The configured issuers, by `iss`.
#[derive(Default)]
pub struct Issuers {
    by_iss: HashMap<String, Arc<OidcIssuer>>,
    order: Vec<Arc<OidcIssuer>>,
    verified: VerifiedCache,
}

impl Issuers {
    pub fn insert(&mut self, issuer: OidcIssuer) {
        let issuer = Arc::new(issuer);
        self.by_iss
            .insert(issuer.issuer.to_string(), issuer.clone());
        self.order.push(issuer);
    }

    pub fn get(&self, iss: &str) -> Option<&Arc<OidcIssuer>> {
        self.by_iss.get(iss)
    }

    pub fn all(&self) -> &[Arc<OidcIssuer>] {
        &self.order
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The issuer whose rules apply to this token, before any verification.
    pub fn select(&self, peeked: &Peeked) -> Result<&Arc<OidcIssuer>, TokenError> {
        if peeked.crit {
            return Err(TokenError::CritHeader);
        }
        if peeked.alg.eq_ignore_ascii_case("none") || peeked.alg.is_empty() {
            return Err(TokenError::AlgNone);
        }
        let iss = peeked.iss().ok_or(TokenError::MissingIssuer)?;
        self.get(iss)
            .ok_or_else(|| TokenError::UnknownIssuer(clip(iss)))
    }

    /// A verified token seen before, still valid under the current keys
    /// (`keys`: the API keys it must still not be; see `VerifiedCache`).
    pub fn cached(&self, token: &str, keys: KeyStamp) -> Option<Arc<Principal>> {
        let v = self.verified.get(token, keys)?;
        let issuer = self.order.get(v.issuer)?;
        if issuer.jwks.keys().generation != v.generation {
            return None;
        }
        let now = tollgate_core::clock::wall_secs();
        let leeway = issuer.config.leeway.as_secs();
        if v.exp.saturating_add(leeway) < now
            || v.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return None;
        }
        Some(v.principal)
    }

    fn remember(&self, token: &str, keys: KeyStamp, peeked: &Peeked, principal: &Arc<Principal>) {
        let (Some(idx), Some(exp)) = (
            self.order
                .iter()
                .position(|i| Some(&*i.issuer) == principal.issuer.as_deref()),
            peeked.claims.get("exp").and_then(Value::as_u64),
        ) else {
            return;
        };
        let Some(issuer) = self.order.get(idx) else {
            return;
        };
        self.verified.put(Verified {
            token: Arc::from(token),
            keys,
            principal: principal.clone(),
            issuer: idx,
            generation: issuer.jwks.keys().generation,
            exp,
            nbf: peeked.claims.get("nbf").and_then(Value::as_u64),
        });
    }

    /// Verifies a token: offline against cached keys (a token verified
    /// before is answered from the verified-token cache), except that an
    /// unknown `kid` (or an issuer whose keys were never fetched) triggers
    /// one rate-limited JWKS refresh, awaited for at most `KID_REFRESH_WAIT`.
    /// `keys`: the API keys the caller found the token is not
    /// (`KeyStamp`); callers without API keys pass `(0, 0)`.
    pub async fn verify(&self, token: &str, keys: KeyStamp) -> Result<Arc<Principal>, TokenError> {
        if let Some(p) = self.cached(token, keys) {
            return Ok(p);
        }
        let peeked = peek(token)?;
        let principal = Arc::new(self.verify_uncached(token, &peeked).await?);
        self.remember(token, keys, &peeked, &principal);
        Ok(principal)
    }

    /// `verify` through the verified-token cache, without any refresh.
    pub fn verify_cached_offline(&self, token: &str) -> Result<Arc<Principal>, TokenError> {
        if let Some(p) = self.cached(token, (0, 0)) {
            return Ok(p);
        }
        let peeked = peek(token)?;
        let principal = Arc::new(self.select(&peeked)?.verify(token, &peeked)?);
        self.remember(token, (0, 0), &peeked, &principal);
        Ok(principal)
    }

    async fn verify_uncached(&self, token: &str, peeked: &Peeked) -> Result<Principal, TokenError> {
        let issuer = self.select(peeked)?;
        match issuer.verify(token, peeked) {
            Err(TokenError::UnknownKey { .. } | TokenError::KeysUnavailable(_))
                if issuer.algorithm(peeked).is_ok() =>
            {
                let cfg = &issuer.config;
                // Whether or not the refresh found the key, verify again:
                // the answer then names what is (still) missing.
                issuer
                    .jwks
                    .refresh_for_kid(
                        peeked.kid.as_deref(),
                        KID_REFRESH_WAIT,
                        cfg.unknown_kid_refresh,
                        cfg.refresh,
                    )
                    .await;
                issuer.verify(token, peeked)
            }
            other => other,
        }
    }

    /// Full verification, no cache, no refresh: benchmarks and tests.
    pub fn verify_offline(&self, token: &str) -> Result<Principal, TokenError> {
        let peeked = peek(token)?;
        self.select(&peeked)?.verify(token, &peeked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."));
        assert!(looks_like_jwt("eyJh.eyJz.sig-_"));
        assert!(!looks_like_jwt("tg-abcdef"));
        assert!(!looks_like_jwt("eyJh.eyJz"));
        assert!(!looks_like_jwt("eyJh..sig"));
        assert!(!looks_like_jwt("eyJh.eyJz.a.b"));
        assert!(!looks_like_jwt("eyJh.eyJ=.sig"));
    }

    #[test]
    fn claim_paths() {
        let c = json!({
            "sub": "u1",
            "realm_access": {"roles": ["a", "b"]},
            "https://x.example/groups": ["g"],
            "scp": "read write",
            "tid": 42
        });
        let c = c.as_object().unwrap();
        assert_eq!(claim(c, "realm_access.roles"), Some(&json!(["a", "b"])));
        assert_eq!(claim(c, "https://x.example/groups"), Some(&json!(["g"])));
        assert_eq!(claim(c, "realm_access.nope"), None);
        assert_eq!(list(claim(c, "scp").unwrap()), ["read", "write"]);
        let cfg = ClaimsConfig {
            groups: Some("realm_access.roles".into()),
            tenant: Some("tid".into()),
            kind_claim: Some("scp".into()),
            service_values: vec!["write".into()],
            ..ClaimsConfig::default()
        };
        let p = map_claims(&cfg, c, "https://idp".into()).unwrap();
        assert_eq!(&*p.subject, "u1");
        assert_eq!(&*p.groups, ["a", "b"]);
        assert_eq!(p.tenant.as_deref(), Some("42"));
        assert_eq!(p.kind, PrincipalKind::Service);
        let no_sub = json!({"x": 1});
        assert_eq!(
            map_claims(&cfg, no_sub.as_object().unwrap(), "i".into()),
            Err(TokenError::MissingClaim("sub".into()))
        );
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tollgate/tests/fixtures/jwt")
                .join(name),
        )
        .unwrap()
    }

    /// One RS256 issuer (`https://idp.unit`, audience `t`, the fixture's
    /// keys installed) and a token of it for subject `u` valid for
    /// `valid_secs`.
    fn unit_issuer(valid_secs: u64) -> (Issuers, Arc<JwksCache>, String) {
        let cfg = OidcConfig {
            issuer: "https://idp.unit".into(),
            audiences: vec!["t".into()],
            discovery: false,
            jwks_url: Some("http://127.0.0.1:9/jwks".into()),
            algorithms: vec!["RS256".into()],
            leeway: Duration::ZERO,
            refresh: Duration::from_secs(600),
            unknown_kid_refresh: Duration::from_secs(10),
            claims: ClaimsConfig::default(),
        };
        let cache =
            Arc::new(JwksCache::new(OidcIssuer::source(&cfg), &Default::default()).unwrap());
        cache.install(
            super::super::jwks::KeySet::parse(&fixture("jwks.json"), 1)
                .unwrap()
                .0,
        );
        let mut issuers = Issuers::default();
        issuers.insert(OidcIssuer::new(&cfg, cache.clone()).unwrap());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap();
        let mut h = jsonwebtoken::Header::new(Algorithm::RS256);
        h.kid = Some("test-rsa".into());
        let now = jsonwebtoken::get_current_timestamp();
        let claims =
            json!({"iss": "https://idp.unit", "aud": "t", "sub": "u", "exp": now + valid_secs});
        let token = jsonwebtoken::encode(&h, &claims, &key).unwrap();
        (issuers, cache, token)
    }

    #[test]
    fn verified_cache_follows_expiry_and_key_changes() {
        use super::super::jwks::KeySet;
        let (issuers, cache, token) = unit_issuer(1);
        let jwks = fixture("jwks.json");
        let a = issuers.verify_cached_offline(&token).unwrap();
        let b = issuers.verify_cached_offline(&token).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "second answer comes from the cache");
        // Only the very same token, under the same API keys, is answered.
        assert!(issuers.cached(&token, (0, 0)).is_some());
        assert!(issuers.cached(&token, (0, 1)).is_none());
        // One signature character changed (not the last: its low bits are
        // padding, so a change there can make it invalid base64url).
        let at = token.len() - 10;
        let swap = if &token[at..=at] == "A" { "B" } else { "A" };
        let other = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
        assert!(issuers.cached(&other, (0, 0)).is_none());
        assert!(issuers.cached(&token[..token.len() - 1], (0, 0)).is_none());
        assert_eq!(
            issuers.verify_cached_offline(&other),
            Err(TokenError::BadSignature)
        );
        // A key set installed anew: a new generation, so the token is re-verified.
        cache.install(KeySet::parse(&jwks, 2).unwrap().0);
        let c = issuers.verify_cached_offline(&token).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        // The key removed at the issuer: the cached answer is not used.
        let only_ec = json!({"keys": [serde_json::from_slice::<Value>(&jwks).unwrap()["keys"][1]]});
        cache.install(KeySet::parse(only_ec.to_string().as_bytes(), 3).unwrap().0);
        assert!(matches!(
            issuers.verify_cached_offline(&token),
            Err(TokenError::UnknownKey { .. })
        ));
        // Expiry is checked on every hit.
        cache.install(KeySet::parse(&jwks, 4).unwrap().0);
        assert!(issuers.verify_cached_offline(&token).is_ok());
        tollgate_core::clock::advance_wall(Duration::from_millis(2100));
        assert_eq!(
            issuers.verify_cached_offline(&token),
            Err(TokenError::Expired)
        );
    }

    /// A JWT answered from the verified-token cache is still refused as a
    /// JWT, and answered as the key, once an API key with its value exists.
    #[tokio::test]
    async fn a_key_added_after_the_token_was_cached_wins() {
        use super::super::{hash_key, AuthMethod, Credentials, KeyEntry, KeyIndex};
        let (issuers, _cache, token) = unit_issuer(600);
        let config_keys = KeyIndex::default();
        let mut store_keys = KeyIndex::default();
        fn creds<'a>(c: &'a KeyIndex, s: &'a KeyIndex, i: &'a Issuers) -> Credentials<'a> {
            Credentials {
                config_keys: c,
                store_keys: s,
                issuers: i,
            }
        }
        for _ in 0..2 {
            let id = creds(&config_keys, &store_keys, &issuers)
                .check(&token)
                .await
                .unwrap();
            assert!(id.key.is_none());
            assert_eq!(id.principal.method, AuthMethod::Jwt);
        }
        let principal = Principal {
            subject: "the-key".into(),
            kind: PrincipalKind::User,
            groups: Arc::from(Vec::new()),
            tenant: None,
            key_id: Some("k".into()),
            issuer: None,
            method: AuthMethod::ApiKey,
            claims: None,
        };
        store_keys.insert(
            hash_key(&token),
            KeyEntry {
                principal: Arc::new(principal),
                models: super::super::ModelGrant::new(&["*".into()]).unwrap(),
                expires_ms: None,
            },
        );
        let id = creds(&config_keys, &store_keys, &issuers)
            .check(&token)
            .await
            .unwrap();
        assert!(id.key.is_some(), "the key wins over the cached token");
        assert_eq!(&*id.principal.subject, "the-key");
    }

    #[test]
    fn same_bytes_compares_whole() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
        assert!(!same_bytes(b"xbc", b"abc"));
    }

    #[test]
    fn peek_rejects_garbage() {
        assert!(peek("a.b.c").is_err());
        assert!(peek("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.").is_ok());
        assert!(peek("eyJhbGciOiJub25lIn0.W10.").is_err()); // payload is an array
    }
}
