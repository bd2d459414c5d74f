//! Per-target health and latency bookkeeping, lock-free: fixed rings of
//! atomics written with one `fetch_add` and one `store`, read by scanning.
//! A reader may see a slot a concurrent writer is replacing; either value is
//! a real recent sample, which is all a routing heuristic needs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tollgate_config::{HealthConfig, LatencyConfig};

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
}

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
        }
    }

    pub fn record_failure(&self, now_ms: u64) {
        let i = self.next_failure.fetch_add(1, Ordering::Relaxed) % self.failures.len();
        self.failures[i].store(now_ms + 1, Ordering::Relaxed);
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

    /// Healthy: fewer than the threshold of failures in the window, and
    /// under the SLA (when one is set and there are enough samples).
    pub fn healthy(&self, now_ms: u64) -> bool {
        if self.recent_failures(now_ms) >= self.failures.len() {
            return false;
        }
        match self.sla_us_per_token {
            Some(limit) => match self.mean_us_per_token(now_ms, self.sla_window_ms) {
                Some(mean) => mean <= limit,
                None => true,
            },
            None => true,
        }
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
    fn unhealthy_after_two_failures_recovers_after_window() {
        let s = stats();
        assert!(s.healthy(1_000));
        s.record_failure(1_000);
        assert!(s.healthy(1_001));
        s.record_failure(2_000);
        assert!(!s.healthy(2_001));
        // The first failure ages out of the 2-minute window.
        assert!(!s.healthy(121_000));
        assert!(s.healthy(121_001));
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
        assert!(s.healthy(now()));
    }
}
