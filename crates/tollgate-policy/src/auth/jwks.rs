//! Signing keys of one OIDC issuer: discovery, the JWKS fetch, and the
//! cached key set behind an `ArcSwap` that the request path reads without
//! locking. Fetches happen at start, in the background every `refresh`, and
//! — the only identity-provider call a request can ever wait on — once per
//! `unknown_kid_refresh` when a token names a key id not in the cache.
//! A failed fetch never replaces the cached keys: an identity provider that
//! goes down does not stop the tokens its cached keys can verify.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate_core::error::BuildError;
use tollgate_net::{Egress, EgressDenied};

use tokio::time::Instant;

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;

/// Largest discovery document or JWKS accepted.
const MAX_BODY: usize = 1024 * 1024;
/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 64;

/// The kind of public key, as far as matching a token's `alg` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
            KeyKind::Ed25519 => "OKP Ed25519",
        }
    }

    /// Whether a token signed with `alg` can have been signed by this kind of key.
    pub fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyKind::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyKind::EcP256, ES256)
                | (KeyKind::EcP384, ES384)
                | (KeyKind::Ed25519, EdDSA)
        )
    }
}

/// One public key from the issuer's JWKS.
pub struct VerifyKey {
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The JWK's own `alg`, when it names one: tokens must then use exactly it.
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

impl VerifyKey {
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// An immutable set of keys, swapped whole on each successful fetch.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    all: Vec<Arc<VerifyKey>>,
    /// Unix ms of the fetch that produced this set (0: never fetched).
    pub fetched_ms: i64,
    /// Unique per installed set: verified-token cache entries are only
    /// trusted while the set that verified them is the current one.
    pub generation: u64,
    /// SHA-256 of the JWKS document: an unchanged document keeps the set
    /// (and its generation) as is.
    body_hash: [u8; 32],
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl KeySet {
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyKey>> {
        self.by_kid.get(kid)
    }

    pub fn all(&self) -> &[Arc<VerifyKey>] {
        &self.all
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn kids(&self) -> Vec<String> {
        self.all.iter().filter_map(|k| k.kid.clone()).collect()
    }

    /// Parses a JWKS document. Keys that cannot verify signatures (symmetric,
    /// encryption-only, unknown types or curves, malformed) are skipped and
    /// described in the second value.
    pub fn parse(body: &[u8], fetched_ms: i64) -> Result<(KeySet, Vec<String>), JwksError> {
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<Value>,
        }
        let doc: Doc = serde_json::from_slice(body).map_err(JwksError::NotJson)?;
        let mut set = KeySet {
            fetched_ms,
            body_hash: sha2::Sha256::digest(body).into(),
            ..KeySet::default()
        };
        let mut skipped = Vec::new();
        for (i, jwk) in doc.keys.iter().enumerate().take(MAX_KEYS) {
            match parse_jwk(jwk) {
                Ok(key) => {
                    let key = Arc::new(key);
                    if let Some(kid) = &key.kid {
                        set.by_kid.insert(kid.clone(), key.clone());
                    }
                    set.all.push(key);
                }
                Err(why) => skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        Ok((set, skipped))
    }
}

/// Why an issuer's signing keys could not be fetched or read. Its text is
/// kept as the issuer's last error (logs, `token inspect`).
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("GET {url}: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("GET {url}: status {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: body larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("discovery document {url}: {source}")]
    Discovery {
        url: String,
        source: serde_json::Error,
    },
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    WrongIssuer { found: String, expected: String },
    #[error("discovery jwks_uri {0:?} is not an http(s) URL")]
    JwksUri(String),
    #[error("JWKS is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("JWKS has no usable signing key ({0} skipped); keeping the cached keys")]
    NoUsableKey(usize),
    #[error("status lock poisoned")]
    Poisoned,
    #[error("{url:?} is not a valid URL: {message}")]
    BadUrl { url: String, message: String },
    /// The egress allowlist refused the discovery or JWKS URL.
    #[error("{0}")]
    Egress(EgressDenied),
}

/// Why one key of a JWKS document is skipped (the others still count).
#[derive(Debug, thiserror::Error)]
enum KeySkipped {
    #[error("not a signing key (`use` is not `sig`)")]
    NotSigning,
    #[error("unsupported alg {0:?}")]
    UnsupportedAlg(String),
    #[error("missing `{0}`")]
    Missing(&'static str),
    #[error("malformed key: {0}")]
    Malformed(#[from] jsonwebtoken::errors::Error),
    #[error("malformed {0} coordinates")]
    Coordinates(String),
    #[error("malformed Ed25519 key")]
    Ed25519,
    #[error("symmetric keys are never used")]
    Symmetric,
    #[error("unsupported key type {kty:?}{}", curve.as_ref().map(|c| format!(" curve {c:?}")).unwrap_or_default())]
    KeyType { kty: String, curve: Option<String> },
    #[error("alg {alg:?} does not fit a {kind} key")]
    AlgMismatch { alg: Algorithm, kind: &'static str },
}

fn parse_jwk(jwk: &Value) -> Result<VerifyKey, KeySkipped> {
    let s = |name: &str| jwk.get(name).and_then(Value::as_str);
    if s("use").is_some_and(|u| u != "sig") {
        return Err(KeySkipped::NotSigning);
    }
    let alg = match s("alg") {
        None => None,
        Some(a) => {
            Some(Algorithm::from_str(a).map_err(|_| KeySkipped::UnsupportedAlg(a.to_owned()))?)
        }
    };
    let need = |name: &'static str| s(name).ok_or(KeySkipped::Missing(name));
    let bad = KeySkipped::Malformed;
    let (kind, key) = match (s("kty"), s("crv")) {
        (Some("RSA"), _) => (
            KeyKind::Rsa,
            DecodingKey::from_rsa_components(need("n")?, need("e")?).map_err(bad)?,
        ),
        (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
            let (x, y) = (need("x")?, need("y")?);
            let len = if crv == "P-256" { 32 } else { 48 };
            // The coordinates must have the curve's size, or verification
            // would fail later with a less helpful reason.
            if decoded_len(x) != Some(len) || decoded_len(y) != Some(len) {
                return Err(KeySkipped::Coordinates(crv.to_owned()));
            }
            let kind = if crv == "P-256" {
                KeyKind::EcP256
            } else {
                KeyKind::EcP384
            };
            (kind, DecodingKey::from_ec_components(x, y).map_err(bad)?)
        }
        (Some("OKP"), Some("Ed25519")) => {
            let x = need("x")?;
            if decoded_len(x) != Some(32) {
                return Err(KeySkipped::Ed25519);
            }
            (
                KeyKind::Ed25519,
                DecodingKey::from_ed_components(x).map_err(bad)?,
            )
        }
        (Some("oct"), _) => return Err(KeySkipped::Symmetric),
        (kty, crv) => {
            return Err(KeySkipped::KeyType {
                kty: kty.unwrap_or("(none)").to_owned(),
                curve: crv.map(str::to_owned),
            })
        }
    };
    if let Some(a) = alg {
        if !kind.fits(a) {
            return Err(KeySkipped::AlgMismatch {
                alg: a,
                kind: kind.as_str(),
            });
        }
    }
    Ok(VerifyKey {
        kid: s("kid").map(str::to_owned),
        kind,
        alg,
        key,
    })
}

fn decoded_len(b64: &str) -> Option<usize> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .ok()
        .map(|v| v.len())
}

/// Where an issuer's keys come from. Two configs with the same source share
/// one cache across reloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JwksSource {
    pub issuer: String,
    pub discovery: bool,
    pub jwks_url: Option<String>,
}

#[derive(Debug, Default)]
struct FetchStatus {
    /// When the background loop should fetch next (None: now).
    next_due: Option<Instant>,
    failures: u32,
    last_error: Option<String>,
}

/// One issuer's key cache.
pub struct JwksCache {
    pub source: JwksSource,
    keys: ArcSwap<KeySet>,
    client: tollgate_net::Client,
    /// Serialises unknown-kid refreshes and remembers when the last one ran.
    on_demand: tokio::sync::Mutex<Option<Instant>>,
    status: Mutex<FetchStatus>,
}

impl JwksCache {
    /// Discovery and JWKS fetches go out under `egress`.
    pub fn new(source: JwksSource, egress: &Egress) -> Result<Self, BuildError> {
        let client = tollgate_net::client_builder(egress)
            .with(|b| {
                b.connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(5))
            })
            .max_redirects(3)
            .build()
            .map_err(|e| format!("JWKS client: {e}"))?;
        Ok(Self {
            source,
            keys: ArcSwap::from_pointee(KeySet::default()),
            client,
            on_demand: tokio::sync::Mutex::new(None),
            status: Mutex::new(FetchStatus::default()),
        })
    }

    /// The cached keys (cheap; no lock).
    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Installs a key set directly (tests, benchmarks, offline tools).
    pub fn install(&self, mut set: KeySet) {
        set.generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.keys.store(Arc::new(set));
    }

    pub fn last_error(&self) -> Option<String> {
        self.status.lock().ok().and_then(|s| s.last_error.clone())
    }

    /// Fetches discovery (when used) and the JWKS, and swaps the key set in
    /// when it parsed and holds at least one usable key. Returns the number
    /// of keys now cached.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let result = self.fetch().await;
        let mut status = self.status.lock().map_err(|_| JwksError::Poisoned)?;
        match result {
            Ok((set, skipped)) => {
                for why in &skipped {
                    tracing::debug!(issuer = %self.source.issuer, %why, "JWKS key skipped");
                }
                let n = set.all.len();
                if n > 0 && set.body_hash == self.keys.load().body_hash {
                    // Same document: keep the set, so verified tokens stay cached.
                    status.failures = 0;
                    status.last_error = None;
                    return Ok(n);
                }
                if n == 0 {
                    let e = JwksError::NoUsableKey(skipped.len());
                    status.failures += 1;
                    status.last_error = Some(e.to_string());
                    return Err(e);
                }
                self.install(set);
                status.failures = 0;
                status.last_error = None;
                Ok(n)
            }
            Err(e) => {
                status.failures += 1;
                status.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Vec<String>), JwksError> {
        let jwks_url = match &self.source.jwks_url {
            Some(u) => u.clone(),
            None => self.discover().await?,
        };
        let body = self.get(&jwks_url).await?;
        KeySet::parse(&body, tollgate_core::clock::wall_ms())
    }

    async fn discover(&self) -> Result<String, JwksError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.source.issuer.trim_end_matches('/')
        );
        let body = self.get(&url).await?;
        let doc: Discovery =
            serde_json::from_slice(&body).map_err(|source| JwksError::Discovery { url, source })?;
        if doc.issuer != self.source.issuer {
            return Err(JwksError::WrongIssuer {
                found: doc.issuer,
                expected: self.source.issuer.clone(),
            });
        }
        if !(doc.jwks_uri.starts_with("https://") || doc.jwks_uri.starts_with("http://")) {
            return Err(JwksError::JwksUri(doc.jwks_uri));
        }
        Ok(doc.jwks_uri)
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, JwksError> {
        let request = |source: reqwest::Error| match EgressDenied::find(&source) {
            Some(denied) => JwksError::Egress(denied.clone()),
            None => JwksError::Request {
                url: url.to_owned(),
                source,
            },
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| JwksError::BadUrl {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        let mut resp = self
            .client
            .get(parsed)
            .map_err(JwksError::Egress)?
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(request)?;
        if !resp.status().is_success() {
            return Err(JwksError::Status {
                url: url.to_owned(),
                status: resp.status(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(request)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(JwksError::TooLarge {
                    url: url.to_owned(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// For the background loop: whether a fetch is due now. Claims the slot
    /// (so a slow fetch is not started twice) until `finish_scheduled`.
    pub fn take_due(&self, now: Instant) -> bool {
        let Ok(mut s) = self.status.lock() else {
            return false;
        };
        if s.next_due.is_some_and(|due| due > now) {
            return false;
        }
        s.next_due = Some(now + Duration::from_secs(30));
        true
    }

    /// Schedules the next background fetch: `refresh` after a success,
    /// exponential backoff (1 s … min(refresh, 60 s)) after failures.
    pub fn schedule_next(&self, ok: bool, refresh: Duration) {
        if let Ok(mut s) = self.status.lock() {
            let wait = if ok {
                refresh
            } else {
                let exp = 1u64 << s.failures.clamp(1, 7).saturating_sub(1);
                Duration::from_secs(exp).min(refresh.min(Duration::from_secs(60)))
            };
            s.next_due = Some(Instant::now() + wait);
        }
    }

    /// A token named `kid`, which is not cached: fetch the JWKS once more,
    /// unless another unknown-kid fetch ran less than `cooldown` ago.
    /// Waits at most `wait` (the fetch itself finishes in the background).
    /// True when `kid` is cached afterwards.
    pub async fn refresh_for_kid(
        self: &Arc<Self>,
        kid: Option<&str>,
        wait: Duration,
        cooldown: Duration,
        refresh: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let present = |c: &Self| match kid {
            Some(k) => c.keys().get(k).is_some(),
            None => !c.keys().is_empty(),
        };
        let Ok(mut last) = tokio::time::timeout_at(deadline, self.on_demand.lock()).await else {
            return present(self.as_ref());
        };
        // Another request may have fetched it while this one waited.
        if present(self.as_ref()) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < cooldown) {
            return false;
        }
        *last = Some(Instant::now());
        metrics::counter!("tollgate_jwks_refreshes_total", "trigger" => "unknown_kid").increment(1);
        let this = self.clone();
        let task = tokio::spawn(async move {
            let r = this.refresh().await;
            if let Err(e) = &r {
                metrics::counter!("tollgate_jwks_errors_total").increment(1);
                tracing::warn!(issuer = %this.source.issuer, error = %e,
                    "JWKS refresh for an unknown key id failed; keeping the cached keys");
            }
            this.schedule_next(r.is_ok(), refresh);
        });
        let _ = tokio::time::timeout_at(deadline, task).await;
        drop(last);
        present(self.as_ref())
    }
}
