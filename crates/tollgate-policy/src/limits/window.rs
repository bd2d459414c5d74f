//! Fixed, calendar-aligned windows (UTC): a counter belongs to one window
//! id and starts from zero in the next. Exact: a cap of N admits at most N
//! per window, however many requests race.

/// A counting window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
    /// ISO weeks, Monday 00:00 UTC.
    Week,
    /// Calendar months.
    Month,
    /// No window: a gauge (requests in flight).
    None,
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

impl Window {
    /// The window holding `now_ms`.
    pub fn id(self, now_ms: i64) -> i64 {
        match self {
            Window::Second => now_ms.div_euclid(1000),
            Window::Minute => now_ms.div_euclid(60_000),
            Window::Hour => now_ms.div_euclid(HOUR_MS),
            Window::Day => now_ms.div_euclid(DAY_MS),
            // 1970-01-01 was a Thursday; Monday-based weeks start 3 days earlier.
            Window::Week => (now_ms.div_euclid(DAY_MS) + 3).div_euclid(7),
            Window::Month => {
                let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
                y * 12 + (m - 1)
            }
            Window::None => 0,
        }
    }

    /// When window `id` ends (Unix ms); `i64::MAX` for `None`.
    pub fn end_ms(self, id: i64) -> i64 {
        match self {
            Window::Second => (id + 1) * 1000,
            Window::Minute => (id + 1) * 60_000,
            Window::Hour => (id + 1) * HOUR_MS,
            Window::Day => (id + 1) * DAY_MS,
            Window::Week => ((id + 1) * 7 - 3) * DAY_MS,
            Window::Month => {
                let next = id + 1;
                days_from_civil(next.div_euclid(12), next.rem_euclid(12) + 1, 1) * DAY_MS
            }
            Window::None => i64::MAX,
        }
    }

    /// Its name in the admin and caller views.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Second => "second",
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
            Window::None => "none",
        }
    }

    /// Windows of an hour or longer: their counters are kept in the
    /// ledger's per-window table and restored at start, like budgets.
    pub fn restored(self) -> bool {
        matches!(
            self,
            Window::Hour | Window::Day | Window::Week | Window::Month
        )
    }

    /// When window `id` starts (Unix ms).
    pub fn start_ms(self, id: i64) -> i64 {
        match self {
            Window::None => 0,
            _ => self.end_ms(id - 1),
        }
    }

    /// How long counters of this window must live (Redis TTL), with slack.
    pub fn ttl_ms(self, id: i64, now_ms: i64) -> i64 {
        match self {
            // In-flight gauges: refreshed on every admission; a crashed node's
            // leftovers expire.
            Window::None => 600_000,
            _ => (self.end_ms(id) - now_ms).max(0) + 60_000,
        }
    }
}

// Howard Hinnant's civil-date algorithms (public domain): a few lines of
// integer arithmetic, not worth a date crate on the hot path.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_windows() {
        // 2026-02-15T12:00:00Z
        let t = 1_771_156_800_000;
        let m = Window::Month.id(t);
        assert_eq!(Window::Month.start_ms(m), 1_769_904_000_000); // 2026-02-01
        assert_eq!(Window::Month.end_ms(m), 1_772_323_200_000); // 2026-03-01
        let w = Window::Week.id(t);
        assert_eq!(Window::Week.start_ms(w), 1_770_595_200_000); // Mon 2026-02-09
        assert_eq!(
            Window::Week.end_ms(w) - Window::Week.start_ms(w),
            7 * DAY_MS
        );
        assert_eq!(Window::Day.end_ms(Window::Day.id(t)), 1_771_200_000_000);
        assert_eq!(Window::Minute.end_ms(Window::Minute.id(61_000)), 120_000);
        let h = Window::Hour.id(t);
        assert_eq!(Window::Hour.start_ms(h), t);
        assert_eq!(Window::Hour.end_ms(h), t + HOUR_MS);
        // December rolls into January.
        let dec = Window::Month.id(1_796_083_200_000); // 2026-12-01
        assert_eq!(Window::Month.end_ms(dec), 1_798_761_600_000); // 2027-01-01
    }
}
