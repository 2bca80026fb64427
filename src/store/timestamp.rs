//! Timestamps as the store and the API write them: RFC 3339 in UTC, the
//! exact text chrono's serde writes (`2026-11-27T09:38:23.123Z`: no
//! fraction, or 3, 6 or 9 digits, whichever is exact), built without the
//! formatting machinery (a tenth of a commit's serialisation went there).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// The longest text [`write`] produces: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_LEN: usize = 30;

/// Serialises `at` (`#[serde(serialize_with = "...")]`).
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    match Out::of(at) {
        // Only ASCII digits and punctuation were written.
        Some(out) => s.serialize_str(std::str::from_utf8(out.bytes()).unwrap_or_default()),
        None => Serialize::serialize(at, s),
    }
}

/// Serialises an optional timestamp: `null` or as [`serialize`].
pub fn serialize_opt<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize(at, s),
        None => s.serialize_none(),
    }
}

/// Appends `at` to `out` as the JSON string [`serialize`] writes.
pub(super) fn push_json(out: &mut Vec<u8>, at: &DateTime<Utc>) {
    match Out::of(at) {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.bytes());
            out.push(b'"');
        }
        // Writing to a Vec cannot fail.
        None => {
            let _ = serde_json::to_writer(out, at);
        }
    }
}

/// A timestamp's text being written.
struct Out {
    buf: [u8; MAX_LEN],
    len: usize,
}

impl Out {
    /// The text of `at`, or `None` where chrono writes it differently.
    fn of(at: &DateTime<Utc>) -> Option<Self> {
        let mut out = Self {
            buf: [0; MAX_LEN],
            len: 0,
        };
        out.write(at).map(|()| out)
    }

    /// What was written.
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes `at`; `None` (and nothing usable) for what chrono writes
    /// differently: years outside 0..=9999, leap seconds.
    fn write(&mut self, at: &DateTime<Utc>) -> Option<()> {
        let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
        let nanos = at.nanosecond();
        if nanos >= 1_000_000_000 {
            return None;
        }
        self.digits(year, 4);
        self.byte(b'-');
        self.digits(at.month(), 2);
        self.byte(b'-');
        self.digits(at.day(), 2);
        self.byte(b'T');
        self.digits(at.hour(), 2);
        self.byte(b':');
        self.digits(at.minute(), 2);
        self.byte(b':');
        self.digits(at.second(), 2);
        match nanos {
            0 => {}
            _ if nanos.is_multiple_of(1_000_000) => self.fraction(nanos / 1_000_000, 3),
            _ if nanos.is_multiple_of(1_000) => self.fraction(nanos / 1_000, 6),
            _ => self.fraction(nanos, 9),
        }
        self.byte(b'Z');
        Some(())
    }

    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `value` in exactly `count` decimal digits.
    fn digits(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.byte(b'0' + (value / 10u32.pow(i) % 10) as u8);
        }
    }

    fn fraction(&mut self, value: u32, count: u32) {
        self.byte(b'.');
        self.digits(value, count);
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    #[derive(serde::Serialize)]
    struct OursOpt(#[serde(serialize_with = "serialize_opt")] Option<DateTime<Utc>>);

    #[test]
    fn writes_exactly_what_chrono_writes() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let mut cases = vec![DateTime::<Utc>::UNIX_EPOCH, Utc::now()];
        for (date, nanos) in [
            (day(2026, 11, 27), 0),
            (day(2026, 1, 2), 123_000_000),
            (day(1999, 12, 31), 123_456_000),
            (day(2000, 2, 29), 123_456_789),
            (day(2024, 7, 1), 1),
            (day(0, 1, 1), 5_000),
            (day(9999, 12, 31), 999_999_999),
            (day(10000, 1, 1), 0),
            (day(-1, 6, 15), 7),
            // A leap second: chrono writes :60.
            (day(2016, 12, 31), 1_500_000_000),
        ] {
            let time = date.and_hms_nano_opt(23, 59, 59, nanos).unwrap();
            cases.push(time.and_utc());
        }
        for at in cases {
            let chrono = serde_json::to_string(&at).unwrap();
            assert_eq!(serde_json::to_string(&Ours(at)).unwrap(), chrono, "{at:?}");
            assert_eq!(serde_json::to_string(&OursOpt(Some(at))).unwrap(), chrono);
            let mut pushed = b"[".to_vec();
            push_json(&mut pushed, &at);
            assert_eq!(pushed[1..], *chrono.as_bytes(), "{at:?}");
        }
        assert_eq!(serde_json::to_string(&OursOpt(None)).unwrap(), "null");
    }
}
