//! A cached OAuth token with background refresh.
//!
//! - The token is fetched at startup and refreshed ahead of expiry
//!   (`refresh_before`, at most half the lifetime) by a background task, so a
//!   request normally just clones the cached header.
//! - A request waits on the token endpoint only when there is no unexpired
//!   token (startup race, or refreshes kept failing until it expired).
//! - Single flight: every fetch holds one async mutex. A request that waited
//!   while another fetch ran takes that fetch's outcome instead of starting
//!   its own, so N concurrent requests cost one token request. A failure is
//!   remembered for `FAILURE_HOLD` so a burst does not hammer the endpoint.
//! - The background task holds only a `Weak`; it ends when the provider is
//!   dropped (config reload that changed it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::time::Instant;

use super::oauth::{Fetched, Grant, TokenEndpoint};
use super::CredentialError;

/// How long a failed fetch answers later callers without a new try.
const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// Shortest time between two background refreshes (a token that claims a
/// zero lifetime must not make the refresher spin).
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Background retry delays after a failed refresh.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub(super) struct Token {
    header: HeaderValue,
    /// Treated as expired from here (a little before the real expiry, so a
    /// token does not run out while a request is in flight).
    expires_at: Instant,
    refresh_at: Instant,
}

#[derive(Default)]
struct LastFailure {
    at: Option<Instant>,
    error: Option<CredentialError>,
}

pub(super) struct TokenSource {
    endpoint: TokenEndpoint,
    grant: Grant,
    refresh_before: Duration,
    current: ArcSwapOption<Token>,
    /// Held for the whole of a fetch: the single-flight lock.
    flight: tokio::sync::Mutex<LastFailure>,
    /// Bumped after every finished fetch, success or failure.
    generation: AtomicU64,
}

impl TokenSource {
    /// Builds the source and, inside a Tokio runtime, starts its refresher.
    pub(super) fn start(
        provider: &str,
        endpoint: TokenEndpoint,
        grant: Grant,
        refresh_before: Duration,
    ) -> Arc<Self> {
        let src = Arc::new(Self {
            endpoint,
            grant,
            refresh_before,
            current: ArcSwapOption::empty(),
            flight: tokio::sync::Mutex::new(LastFailure::default()),
            generation: AtomicU64::new(0),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(refresher(Arc::downgrade(&src), provider.to_string()));
        }
        src
    }

    /// The header for a request: the cached token while unexpired.
    pub(super) async fn get(&self) -> Result<HeaderValue, CredentialError> {
        if let Some(t) = self.valid() {
            return Ok(t.header.clone());
        }
        let seen = self.generation.load(Ordering::Acquire);
        let mut last = self.flight.lock().await;
        if let Some(t) = self.valid() {
            return Ok(t.header.clone());
        }
        let held = last.at.is_some_and(|at| at.elapsed() < FAILURE_HOLD);
        if self.generation.load(Ordering::Acquire) != seen || held {
            if let Some(e) = &last.error {
                return Err(e.clone());
            }
        }
        self.fetch_locked(&mut last).await.map(|t| t.header.clone())
    }

    /// Fetches now unless a fetch finished while waiting for the lock; used
    /// by the background refresher. Returns the token now cached.
    async fn refresh(&self) -> Result<Arc<Token>, CredentialError> {
        let seen = self.generation.load(Ordering::Acquire);
        let mut last = self.flight.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            if let Some(t) = self.current.load_full() {
                if Instant::now() < t.refresh_at {
                    return Ok(t);
                }
            }
        }
        self.fetch_locked(&mut last).await
    }

    async fn fetch_locked(&self, last: &mut LastFailure) -> Result<Arc<Token>, CredentialError> {
        let started = Instant::now();
        let result = self.endpoint.fetch(&self.grant, None).await;
        let out = match result {
            Ok(f) => {
                let token = Arc::new(schedule(f, started, self.refresh_before));
                self.current.store(Some(token.clone()));
                *last = LastFailure::default();
                Ok(token)
            }
            Err(e) => {
                last.at = Some(Instant::now());
                last.error = Some(e.clone());
                Err(e)
            }
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        out
    }

    fn valid(&self) -> Option<Arc<Token>> {
        self.current
            .load_full()
            .filter(|t| Instant::now() < t.expires_at)
    }
}

/// When a token fetched at `started` counts as expired and when to refresh it.
pub(super) fn schedule(f: Fetched, started: Instant, refresh_before: Duration) -> Token {
    let life = f.lifetime;
    let skew = (life / 10).min(Duration::from_secs(5));
    let ahead = refresh_before.min(life / 2);
    Token {
        header: f.header,
        expires_at: started + life - skew,
        refresh_at: started + life - ahead,
    }
}

impl Token {
    pub(super) fn header(&self) -> &HeaderValue {
        &self.header
    }

    pub(super) fn expired(&self) -> bool {
        Instant::now() >= self.expires_at
    }
}

async fn refresher(src: Weak<TokenSource>, provider: String) {
    let mut retry = RETRY_MIN;
    loop {
        let Some(s) = src.upgrade() else { return };
        let next = match s.refresh().await {
            Ok(t) => {
                retry = RETRY_MIN;
                t.refresh_at.max(Instant::now() + MIN_INTERVAL)
            }
            Err(e) => {
                tracing::warn!(%provider, error = %e, "upstream token refresh failed; retrying");
                let at = Instant::now() + retry;
                retry = (retry * 2).min(RETRY_MAX);
                at
            }
        };
        drop(s);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_ahead_and_expires_with_skew() {
        let now = Instant::now();
        let f = |secs| Fetched {
            header: HeaderValue::from_static("Bearer x"),
            lifetime: Duration::from_secs(secs),
        };
        let t = schedule(f(3600), now, Duration::from_secs(300));
        assert_eq!(t.refresh_at - now, Duration::from_secs(3300));
        assert_eq!(t.expires_at - now, Duration::from_secs(3595));
        // A short-lived token is refreshed at half its life at the latest.
        let t = schedule(f(4), now, Duration::from_secs(300));
        assert_eq!(t.refresh_at - now, Duration::from_secs(2));
        assert!(t.expires_at > t.refresh_at);
    }
}
