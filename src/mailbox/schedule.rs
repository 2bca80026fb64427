//! When a mailbox may connect: reconnect backoff, skip windows, and the clock
//! they are read from. Pure values and functions, so the schedule is tested
//! with an injected clock and no sleeping.

use std::{fmt, str::FromStr, time::Duration};

use chrono::{DateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rand::Rng;

/// IDLE is re-issued this often unless configured (RFC 2177 allows up to 29).
pub const DEFAULT_IDLE_REFRESH_MINUTES: i64 = 9;
/// First reconnect delay.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The source of "now" for every schedule decision.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Capped exponential backoff with full jitter ("retry at T", never "no").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: DEFAULT_BACKOFF_INITIAL,
            max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`; `None` if `initial` is
    /// zero or above `max`.
    pub fn new(initial: Duration, max: Duration) -> Option<Self> {
        (!initial.is_zero() && initial <= max).then_some(Self { initial, max })
    }

    /// The ceiling of the delay after `failures` consecutive failures (≥ 1).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << exp)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// A delay drawn uniformly from [ceiling/2, ceiling]: spread enough to
    /// break up reconnect storms, never shorter than half the ceiling.
    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(failures);
        let half = ceiling / 2;
        half + rng.gen_range(Duration::ZERO..=ceiling - half)
    }
}

/// A daily window (`"02:00-04:00"`) in the mailbox's zone; it may cross midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipWindow {
    start: NaiveTime,
    end: NaiveTime,
}

impl SkipWindow {
    /// Whether `at`, read in `tz`, falls inside the window (start inclusive).
    pub fn contains(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let t = at.with_timezone(&tz).time();
        let t = NaiveTime::from_hms_opt(t.hour(), t.minute(), t.second()).unwrap_or(t);
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl SkipWindow {
    /// The first start of this window after `at` (read in `tz`).
    pub fn starts_after(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        next_local(self.start, at, tz)
    }

    /// The first end of this window after `at` (read in `tz`).
    pub fn ends_after(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        next_local(self.end, at, tz)
    }
}

/// The first instant after `at` whose wall-clock time in `tz` is `time`;
/// where a daylight-saving gap swallows that time, the next day's.
fn next_local(time: NaiveTime, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let mut day = at.with_timezone(&tz).date_naive();
    for _ in 0..3 {
        if let Some(t) = tz.from_local_datetime(&day.and_time(time)).earliest() {
            let t = t.with_timezone(&Utc);
            if t > at {
                return t;
            }
        }
        day = day.succ_opt().unwrap_or(day);
    }
    at + chrono::Duration::days(1)
}

impl FromStr for SkipWindow {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const HINT: &str = "is not a window; write it as \"HH:MM-HH:MM\" (24-hour, may cross midnight), e.g. \"02:00-04:00\"";
        let (a, b) = s.split_once('-').ok_or(HINT)?;
        let parse = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| HINT);
        let (start, end) = (parse(a)?, parse(b)?);
        if start == end {
            return Err("is empty (start equals end); remove it or widen it");
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for SkipWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn backoff_doubles_within_bounds_and_caps() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        for failures in 1..20 {
            let ceiling =
                Duration::from_secs(1 << (failures - 1).min(6)).min(Duration::from_secs(60));
            assert_eq!(b.ceiling(failures), ceiling);
            let d = b.delay(failures, &mut rng);
            assert!(d >= ceiling / 2 && d <= ceiling, "{failures}: {d:?}");
        }
        assert!(Backoff::new(Duration::ZERO, Duration::from_secs(1)).is_none());
        assert!(Backoff::new(Duration::from_secs(2), Duration::from_secs(1)).is_none());
    }

    #[test]
    fn skip_window_crossing_midnight_in_a_zone() {
        let w: SkipWindow = "23:30-01:00".parse().unwrap();
        let seoul: Tz = "Asia/Seoul".parse().unwrap();
        // 15:00 UTC is 00:00 in Seoul: inside.
        assert!(w.contains(Utc.with_ymd_and_hms(2026, 1, 1, 15, 0, 0).unwrap(), seoul));
        // 16:00 UTC is 01:00 in Seoul: the end is exclusive.
        assert!(!w.contains(Utc.with_ymd_and_hms(2026, 1, 1, 16, 0, 0).unwrap(), seoul));
        // 00:00 UTC is outside in UTC's own reading? 00:00 is inside 23:30-01:00.
        assert!(w.contains(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(), Tz::UTC));
        assert!(!w.contains(Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap(), Tz::UTC));
        assert_eq!(w.to_string(), "23:30-01:00");
        // 12:00 UTC is 21:00 in Seoul: the window starts at 23:30 Seoul (14:30 UTC)
        // and, read from inside, ends at 01:00 Seoul the next day (16:00 UTC).
        let noon = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(
            w.starts_after(noon, seoul),
            Utc.with_ymd_and_hms(2026, 1, 1, 14, 30, 0).unwrap()
        );
        assert_eq!(
            w.ends_after(noon, seoul),
            Utc.with_ymd_and_hms(2026, 1, 1, 16, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_windows_are_rejected() {
        for bad in ["", "02:00", "25:00-01:00", "02:00-02:00", "2-4"] {
            assert!(bad.parse::<SkipWindow>().is_err(), "{bad}");
        }
    }
}
