//! Per-target health and latency bookkeeping, lock-free: fixed rings of
//! atomics written with one `fetch_add` and one `store`, read by scanning.
//! A reader may see a slot a concurrent writer is replacing; either value is
//! a real recent sample, which is all a routing heuristic needs.
//!
//! Health is a circuit breaker: `health.failures` failures within the window
//! open it; after `cooldown` it is half-open and one request (the probe,
//! claimed with a compare-and-swap) is let through; its success closes the
//! breaker, its failure opens it again for another cooldown.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use tollgate_config::{HealthConfig, LatencyConfig};

/// A target's breaker as routing sees it at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Closed: routed by the strategy.
    Healthy,
    /// Closed, but over the SLA: tried last.
    SlaExceeded,
    /// Open: tried last until the cooldown ends.
    Open,
    /// The cooldown is over: the next request may probe it.
    HalfOpen,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::SlaExceeded => "sla_exceeded",
            Health::Open => "open",
            Health::HalfOpen => "half_open",
        }
    }
}

/// The last failure of a target, for the admin view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastFailure {
    /// Wall-clock time (Unix ms).
    pub at_ms: i64,
    /// The error's label (`upstream_status`, `upstream_timeout`, ...).
    pub error: &'static str,
    /// The upstream's status, when it answered one.
    pub status: Option<u16>,
}

/// Failure times (ms + 1; 0 = empty) of the last `threshold` failures.
pub struct TargetStats {
    failures: Box<[AtomicU64]>,
    next_failure: AtomicUsize,
    window_ms: u64,
    /// Latency samples: high 32 bits = time in seconds + 1, low 32 bits =
    /// microseconds per output token.
    samples: Box<[AtomicU64]>,
    next_sample: AtomicUsize,
    latency_window_ms: u64,
    min_samples: usize,
    sla_us_per_token: Option<f64>,
    sla_window_ms: u64,
    /// When the breaker opened (Tokio ms + 1; 0 = closed).
    opened: AtomicU64,
    /// When the half-open probe was claimed (Tokio ms + 1; 0 = none).
    probe: AtomicU64,
    cooldown_ms: u64,
    /// Time to first byte (streams: first chunk) of successful tries, an
    /// exponentially weighted mean in microseconds as f64 bits (0 = none).
    ttfb_ewma: AtomicU64,
    /// Failures since the stats were made (kept across reloads).
    failures_total: AtomicU64,
    /// Written on failures only, read by the admin view: off the hot path.
    last_failure: Mutex<Option<LastFailure>>,
}

/// Weight of the newest sample in the time-to-first-byte mean.
const EWMA_ALPHA: f64 = 0.2;

impl TargetStats {
    pub fn new(health: &HealthConfig, latency: &LatencyConfig) -> Self {
        let slots = |n: usize| {
            (0..n.max(1))
                .map(|_| AtomicU64::new(0))
                .collect::<Vec<_>>()
                .into_boxed_slice()
        };
        Self {
            failures: slots(health.failures),
            next_failure: AtomicUsize::new(0),
            window_ms: health.window.as_millis() as u64,
            samples: slots(latency.max_samples),
            next_sample: AtomicUsize::new(0),
            latency_window_ms: latency.window.as_millis() as u64,
            min_samples: latency.min_samples,
            sla_us_per_token: health.sla_ms_per_token.map(|ms| ms * 1000.0),
            sla_window_ms: health.sla_window.as_millis() as u64,
            opened: AtomicU64::new(0),
            probe: AtomicU64::new(0),
            cooldown_ms: health.cooldown.unwrap_or(health.window).as_millis() as u64,
            ttfb_ewma: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        }
    }

    /// A failure (5xx, 429, 401, 403, timeout, unreachable, a stream cut):
    /// opens the breaker once the window holds `failures` of them, and
    /// re-opens a half-open one at once.
    pub fn record_failure(&self, now_ms: u64) {
        let i = self.next_failure.fetch_add(1, Ordering::Relaxed) % self.failures.len();
        self.failures[i].store(now_ms + 1, Ordering::Relaxed);
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        if self.opened.load(Ordering::Relaxed) != 0
            || self.recent_failures(now_ms) >= self.failures.len()
        {
            self.opened.store(now_ms + 1, Ordering::Relaxed);
            self.probe.store(0, Ordering::Relaxed);
        }
    }

    /// `record_failure` that also keeps what failed, for the admin view.
    pub fn record_failure_of(&self, now_ms: u64, failure: LastFailure) {
        self.record_failure(now_ms);
        if let Ok(mut last) = self.last_failure.lock() {
            *last = Some(failure);
        }
    }

    /// A try the upstream answered (first byte, or first chunk of a
    /// stream): closes an open breaker and forgets its failures, so the
    /// target needs `failures` new ones to open again.
    pub fn record_success(&self, first_byte_us: f64) {
        let old = f64::from_bits(self.ttfb_ewma.load(Ordering::Relaxed));
        let new = if old == 0.0 {
            first_byte_us
        } else {
            old + EWMA_ALPHA * (first_byte_us - old)
        };
        self.ttfb_ewma
            .store(new.max(1.0).to_bits(), Ordering::Relaxed);
        self.close();
    }

    /// Closes an open breaker (the upstream answered) and forgets its
    /// failures; a closed one is left as it is.
    pub fn close(&self) {
        if self.opened.load(Ordering::Relaxed) != 0 {
            for f in self.failures.iter() {
                f.store(0, Ordering::Relaxed);
            }
            self.opened.store(0, Ordering::Relaxed);
            self.probe.store(0, Ordering::Relaxed);
        }
    }

    /// The breaker's state (and the SLA rule's) at `now_ms`.
    pub fn health(&self, now_ms: u64) -> Health {
        let opened = self.opened.load(Ordering::Relaxed);
        if opened != 0 {
            return if now_ms.saturating_sub(opened - 1) < self.cooldown_ms {
                Health::Open
            } else {
                Health::HalfOpen
            };
        }
        match (
            self.sla_us_per_token,
            self.mean_us_per_token(now_ms, self.sla_window_ms),
        ) {
            (Some(limit), Some(mean)) if mean > limit => Health::SlaExceeded,
            _ => Health::Healthy,
        }
    }

    /// Claims the half-open probe: true for one caller per cooldown (a
    /// probe that never reports back, say a request refused after routing,
    /// is given up after one cooldown).
    pub fn claim_probe(&self, now_ms: u64) -> bool {
        let held = self.probe.load(Ordering::Relaxed);
        if held != 0 && now_ms.saturating_sub(held - 1) < self.cooldown_ms {
            return false;
        }
        self.probe
            .compare_exchange(held, now_ms + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Time to first byte of recent successful tries (EWMA, ms).
    pub fn first_byte_ms(&self) -> Option<f64> {
        let us = f64::from_bits(self.ttfb_ewma.load(Ordering::Relaxed));
        (us > 0.0).then_some(us / 1000.0)
    }

    /// The latency strategy's window.
    pub fn latency_window_ms(&self) -> u64 {
        self.latency_window_ms
    }

    /// Failures recorded since these stats were made.
    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Ordering::Relaxed)
    }

    pub fn last_failure(&self) -> Option<LastFailure> {
        self.last_failure.lock().ok().and_then(|l| *l)
    }

    /// Records time per output token (microseconds) of a successful call.
    pub fn record_latency(&self, now_ms: u64, us_per_token: f64) {
        let secs = (now_ms / 1000 + 1).min(u64::from(u32::MAX));
        let us = us_per_token.clamp(0.0, f64::from(u32::MAX)) as u64;
        let i = self.next_sample.fetch_add(1, Ordering::Relaxed) % self.samples.len();
        self.samples[i].store((secs << 32) | us, Ordering::Relaxed);
    }

    /// Recent failures within the window.
    pub fn recent_failures(&self, now_ms: u64) -> usize {
        self.failures
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .filter(|&t| t > 0 && now_ms.saturating_sub(t - 1) <= self.window_ms)
            .count()
    }

    /// Routed as healthy: the breaker is closed and the target is under the
    /// SLA (when one is set and there are enough samples), or the breaker
    /// is half-open (the next request goes there first, as the probe).
    pub fn healthy(&self, now_ms: u64) -> bool {
        matches!(self.health(now_ms), Health::Healthy | Health::HalfOpen)
    }

    /// Mean time per output token over `window_ms`, or `None` below
    /// `min_samples` samples.
    pub fn mean_us_per_token(&self, now_ms: u64, window_ms: u64) -> Option<f64> {
        let now_s = now_ms / 1000 + 1;
        let window_s = window_ms.div_ceil(1000);
        let (mut n, mut sum) = (0usize, 0u64);
        for s in self.samples.iter() {
            let v = s.load(Ordering::Relaxed);
            let t = v >> 32;
            if t > 0 && now_s.saturating_sub(t) <= window_s {
                n += 1;
                sum += v & 0xffff_ffff;
            }
        }
        (n >= self.min_samples.max(1)).then(|| sum as f64 / n as f64)
    }

    /// The latency strategy's score: mean time per token, 0 (fastest) while
    /// there are too few samples.
    pub fn latency_score(&self, now_ms: u64) -> f64 {
        self.mean_us_per_token(now_ms, self.latency_window_ms)
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stats() -> TargetStats {
        TargetStats::new(&HealthConfig::default(), &LatencyConfig::default())
    }

    #[test]
    fn two_failures_open_the_breaker_until_a_probe_succeeds() {
        let s = stats();
        assert_eq!(s.health(1_000), Health::Healthy);
        s.record_failure(1_000);
        assert_eq!(s.health(1_001), Health::Healthy);
        s.record_failure(2_000);
        assert_eq!(s.health(2_001), Health::Open);
        // The cooldown (the 2-minute window) runs from the opening failure.
        assert_eq!(s.health(121_999), Health::Open);
        assert_eq!(s.health(122_000), Health::HalfOpen);
        assert!(s.claim_probe(122_000), "one probe");
        assert!(!s.claim_probe(122_001), "only one");
        // A failed probe re-opens at once, for a whole cooldown.
        s.record_failure(122_500);
        assert_eq!(s.health(122_501), Health::Open);
        assert_eq!(s.health(242_500), Health::HalfOpen);
        assert!(s.claim_probe(242_500));
        s.record_success(1_000.0);
        assert_eq!(s.health(242_601), Health::Healthy);
        // Closed again, with its failures forgotten: one more is not enough.
        s.record_failure(242_700);
        assert_eq!(s.health(242_701), Health::Healthy);
    }

    #[test]
    fn an_unreported_probe_is_given_up_after_a_cooldown() {
        let s = stats();
        s.record_failure(0);
        s.record_failure(0);
        assert!(s.claim_probe(120_000));
        assert!(!s.claim_probe(239_999));
        assert!(s.claim_probe(240_000));
    }

    #[test]
    fn latency_needs_min_samples_and_ages_out() {
        let s = stats();
        s.record_latency(0, 2000.0);
        s.record_latency(10, 4000.0);
        assert_eq!(
            s.latency_score(20),
            0.0,
            "two samples: still gathering data"
        );
        s.record_latency(20, 3000.0);
        assert_eq!(s.latency_score(30), 3000.0);
        assert_eq!(
            s.latency_score(21 * 60 * 1000 + 1000),
            0.0,
            "outside the 20-minute window"
        );
    }

    #[test]
    fn sla_cutoff_marks_slow_targets_unhealthy() {
        let health = HealthConfig {
            sla_ms_per_token: Some(5.0),
            sla_window: Duration::from_secs(180),
            ..HealthConfig::default()
        };
        let s = TargetStats::new(&health, &LatencyConfig::default());
        for t in 0..3 {
            s.record_latency(t, 9_000.0);
        }
        assert!(!s.healthy(10));
        assert!(
            s.healthy(200_000),
            "samples older than the SLA window no longer count"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn windows_follow_the_paused_clock() {
        let s = stats();
        let now = super::super::clock::now_ms;
        s.record_failure(now());
        s.record_failure(now());
        assert!(!s.healthy(now()));
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(!s.healthy(now()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(s.health(now()), Health::HalfOpen);
        assert!(s.healthy(now()));
    }
}
