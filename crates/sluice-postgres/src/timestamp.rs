//! PostgreSQL's on-the-wire timestamps.

use std::fmt;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
/// Days from 1970-01-01 (the civil algorithms' epoch) to 2000-01-01 (PostgreSQL's epoch).
const DAYS_1970_TO_2000: i64 = 10_957;

/// A PostgreSQL timestamp as sent by the replication protocol: microseconds since
/// 2000-01-01 00:00:00 UTC. `i64::MAX` and `i64::MIN` are the server's `infinity` and
/// `-infinity`.
///
/// The raw value is kept because it is exact and cheap; [`PgTimestamp::to_rfc3339`] and
/// `Display` give the calendar form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    /// PostgreSQL's `infinity`.
    pub const INFINITY: PgTimestamp = PgTimestamp(i64::MAX);
    /// PostgreSQL's `-infinity`.
    pub const NEG_INFINITY: PgTimestamp = PgTimestamp(i64::MIN);

    /// Microseconds since 2000-01-01 00:00:00 UTC.
    pub fn micros_since_2000(self) -> i64 {
        self.0
    }

    /// The timestamp as RFC 3339 text in UTC with microseconds, e.g.
    /// `2024-01-02T03:04:05.123456Z`: fixed width, so the text sorts like the time.
    ///
    /// `None` for `±infinity` and for years outside 0000–9999, which RFC 3339 cannot write
    /// (`Display` writes those as `infinity` or with an expanded, signed year).
    pub fn to_rfc3339(self) -> Option<String> {
        let civil = self.civil()?;
        (0..=9999).contains(&civil.year).then(|| civil.to_string())
    }

    fn civil(self) -> Option<Civil> {
        if self == Self::INFINITY || self == Self::NEG_INFINITY {
            return None;
        }
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let in_day = self.0.rem_euclid(MICROS_PER_DAY);
        let (year, month, day) = civil_from_days(days + DAYS_1970_TO_2000);
        let secs = in_day / MICROS_PER_SECOND;
        Some(Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            micros: in_day % MICROS_PER_SECOND,
        })
    }
}

impl fmt::Display for PgTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.civil() {
            Some(civil) => civil.fmt(f),
            None if *self == Self::INFINITY => f.write_str("infinity"),
            None => f.write_str("-infinity"),
        }
    }
}

struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
}

impl fmt::Display for Civil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } = self;
        match year {
            0..=9999 => write!(f, "{year:04}")?,
            10_000.. => write!(f, "+{year}")?,
            _ => write!(f, "-{:04}", year.unsigned_abs())?,
        }
        write!(
            f,
            "-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}Z"
        )
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01: Howard Hinnant's
/// `civil_from_days`, valid for the whole range of PostgreSQL timestamps.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`] (Hinnant's `days_from_civil`), for tests.
#[cfg(test)]
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_timestamps() {
        let cases = [
            (0, "2000-01-01T00:00:00.000000Z"),
            (1, "2000-01-01T00:00:00.000001Z"),
            (-1, "1999-12-31T23:59:59.999999Z"),
            // 2024-02-29 12:34:56.789 UTC, a leap day.
            (762_525_296_789_000, "2024-02-29T12:34:56.789000Z"),
            // 1970-01-01, the Unix epoch.
            (-946_684_800_000_000, "1970-01-01T00:00:00.000000Z"),
        ];
        for (micros, text) in cases {
            assert_eq!(PgTimestamp(micros).to_rfc3339().as_deref(), Some(text));
            assert_eq!(PgTimestamp(micros).to_string(), text);
        }
    }

    #[test]
    fn infinities_and_far_years() {
        assert_eq!(PgTimestamp::INFINITY.to_string(), "infinity");
        assert_eq!(PgTimestamp::NEG_INFINITY.to_string(), "-infinity");
        assert_eq!(PgTimestamp::INFINITY.to_rfc3339(), None);
        let far = PgTimestamp(i64::MAX - 1);
        assert_eq!(far.to_rfc3339(), None);
        assert_eq!(far.to_string(), "+294277-01-09T04:00:54.775806Z");
        let early = PgTimestamp(i64::MIN + 1);
        assert_eq!(early.to_rfc3339(), None);
        assert_eq!(early.to_string(), "-290278-12-22T19:59:05.224193Z");
    }

    proptest! {
        #[test]
        fn civil_round_trips(days in -110_000_000i64..110_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn rfc3339_sorts_like_micros(a in any::<i64>(), b in any::<i64>()) {
            if let (Some(ta), Some(tb)) = (PgTimestamp(a).to_rfc3339(), PgTimestamp(b).to_rfc3339()) {
                prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
            }
        }
    }
}
