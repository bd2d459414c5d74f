//! Token exchange for the caller's own JWT (RFC 8693, as Databricks OIDC
//! federation does): each distinct subject token is exchanged once and the
//! provider token cached until it expires. The cache key is the SHA-256 of
//! the caller's token, never a claim read from it, so a caller can only ever
//! receive a token exchanged for exactly the token it presented. Exchanges
//! for one subject token are single-flight (one async mutex per entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::HeaderValue;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::oauth::{Grant, TokenEndpoint};
use super::token::{schedule, Token};
use super::CredentialError;

/// Most subject tokens cached; past it expired entries are evicted first,
/// then the whole map is cleared (a burst of fresh callers only costs
/// exchanges).
const MAX_SUBJECTS: usize = 10_000;

type Entry = Arc<tokio::sync::Mutex<Option<Token>>>;

pub(super) struct SubjectCache {
    endpoint: TokenEndpoint,
    grant: Grant,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl SubjectCache {
    pub(super) fn new(endpoint: TokenEndpoint, grant: Grant) -> Self {
        Self {
            endpoint,
            grant,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(super) async fn get(&self, subject_token: &str) -> Result<HeaderValue, CredentialError> {
        let key: [u8; 32] = Sha256::digest(subject_token.as_bytes()).into();
        let entry = self.entry(key);
        let mut slot = entry.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| !t.expired()) {
            return Ok(t.header().clone());
        }
        let started = Instant::now();
        let fetched = self
            .endpoint
            .fetch(&self.grant, Some(subject_token))
            .await?;
        // Exchanged tokens are not refreshed in the background: the next
        // request after expiry exchanges again (the caller's token may have
        // expired by then anyway). `refresh_before` only matters for the
        // background refresher, so zero here.
        let token = schedule(fetched, started, std::time::Duration::ZERO);
        let header = token.header().clone();
        *slot = Some(token);
        Ok(header)
    }

    fn entry(&self, key: [u8; 32]) -> Entry {
        let Ok(mut map) = self.entries.lock() else {
            // A poisoned map only loses caching, never correctness.
            return Arc::new(tokio::sync::Mutex::new(None));
        };
        if let Some(e) = map.get(&key) {
            return e.clone();
        }
        if map.len() >= MAX_SUBJECTS {
            map.retain(|_, e| {
                e.try_lock()
                    .map_or(true, |slot| slot.as_ref().is_some_and(|t| !t.expired()))
            });
            if map.len() >= MAX_SUBJECTS {
                map.clear();
            }
        }
        map.entry(key)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(None)))
            .clone()
    }
}
