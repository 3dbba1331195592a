//! Calendar days and the day/week/month buckets metrics are read in.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Milliseconds in one day.
const DAY_MS: i64 = 86_400_000;

/// A UTC calendar day, stored as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Day(i32);

/// A day string that is not a real `YYYY-MM-DD` date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a date in the form YYYY-MM-DD")]
pub struct DayParseError(pub String);

impl Day {
    /// The day of a Unix time in milliseconds (UTC).
    pub fn from_unix_ms(ms: i64) -> Day {
        Day(ms.div_euclid(DAY_MS) as i32)
    }

    /// The day with this many days since 1970-01-01.
    pub fn from_days(days: i32) -> Day {
        Day(days)
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i32 {
        self.0
    }

    /// The day from a year, month (1–12) and day of month, if it exists.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Day> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Day(days_from_civil(year, month, day)))
    }

    /// Year, month (1–12) and day of month.
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// This day plus `n` days.
    pub fn plus(self, n: i32) -> Day {
        Day(self.0 + n)
    }

    /// The Monday that starts this day's ISO week.
    pub fn week_start(self) -> Day {
        // 1970-01-01 was a Thursday: Monday-based weekday index is (days + 3) mod 7.
        Day(self.0 - (self.0 + 3).rem_euclid(7))
    }

    /// The ISO 8601 week of this day, as `YYYY-Www` (the year the week's Thursday falls in).
    pub fn iso_week(self) -> String {
        let thursday = self.week_start().plus(3);
        let (year, _, _) = thursday.ymd();
        let first = Day(days_from_civil(year, 1, 1));
        let week = (thursday.0 - first.0) / 7 + 1;
        format!("{year}-W{week:02}")
    }

    /// The first day of this day's month.
    pub fn month_start(self) -> Day {
        let (y, m, _) = self.ymd();
        Day(days_from_civil(y, m, 1))
    }

    /// The first day of the bucket of the given size that holds this day.
    pub fn bucket_start(self, bucket: Bucket) -> Day {
        match bucket {
            Bucket::Day => self,
            Bucket::Week => self.week_start(),
            Bucket::Month => self.month_start(),
        }
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Day {
    type Err = DayParseError;
    fn from_str(s: &str) -> Result<Day, DayParseError> {
        let err = || DayParseError(s.chars().take(40).collect());
        let bytes = s.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, DayParseError> {
            let part = s.get(r).ok_or_else(err)?;
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        Day::from_ymd(y as i32, m, d).ok_or_else(err)
    }
}

impl From<Day> for String {
    fn from(d: Day) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for Day {
    type Error = DayParseError;
    fn try_from(s: String) -> Result<Day, DayParseError> {
        s.parse()
    }
}

/// The size of the time buckets a metric series is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// One bucket per UTC day.
    #[default]
    Day,
    /// One bucket per ISO week (Monday to Sunday).
    Week,
    /// One bucket per calendar month.
    Month,
}

impl FromStr for Bucket {
    type Err = String;
    fn from_str(s: &str) -> Result<Bucket, String> {
        match s {
            "day" => Ok(Bucket::Day),
            "week" => Ok(Bucket::Week),
            "month" => Ok(Bucket::Month),
            other => Err(format!(
                "bucket must be day, week or month, not '{}'",
                other.chars().take(20).collect::<String>()
            )),
        }
    }
}

/// Unix milliseconds as an RFC 3339 UTC time (`2026-11-26T02:00:00.123Z`); out-of-range times
/// give the Unix epoch.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// The current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days algorithms.
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i32 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod iso_week_tests {
    use super::Day;

    #[test]
    fn iso_weeks_belong_to_the_year_of_their_thursday() {
        for (day, week) in [
            ("2026-12-28", "2026-W53"),
            ("2027-01-03", "2026-W53"),
            ("2027-01-04", "2027-W01"),
            ("2024-12-30", "2025-W01"),
            ("2021-01-03", "2020-W53"),
            ("2026-01-01", "2026-W01"),
            ("2026-06-15", "2026-W25"),
        ] {
            assert_eq!(day.parse::<Day>().unwrap().iso_week(), week, "{day}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_the_milliseconds_that_are_there() {
        assert_eq!(rfc3339(1_795_658_400_123), "2026-11-26T02:00:00.123Z");
        assert_eq!(rfc3339(1_795_658_400_000), "2026-11-26T02:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn epoch_and_known_dates_round_trip() {
        assert_eq!(Day::from_days(0).to_string(), "1970-01-01");
        assert_eq!(
            "2024-02-29".parse::<Day>().map(|d| d.to_string()),
            Ok("2024-02-29".into())
        );
        assert_eq!(
            Day::from_unix_ms(1_700_000_000_000).to_string(),
            "2023-11-14"
        );
        assert_eq!(Day::from_unix_ms(-1).to_string(), "1969-12-31");
        // Every day from 0001-01-01 to 9999-12-31.
        for days in -719_162..=2_932_896 {
            let d = Day::from_days(days);
            assert_eq!(d.to_string().parse::<Day>(), Ok(d));
        }
    }

    #[test]
    fn impossible_dates_are_rejected() {
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "2023-00-10",
            "2023-1-01",
            "20230101",
            "abcd-ef-gh",
            "2023-01-32",
            "+023-01-01",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
    }

    #[test]
    fn week_starts_on_monday_and_month_on_the_first() {
        let d: Day = "2026-11-26".parse().unwrap(); // a Thursday
        assert_eq!(d.week_start().to_string(), "2026-11-23");
        assert_eq!(d.month_start().to_string(), "2026-11-01");
        let monday: Day = "2026-11-23".parse().unwrap();
        assert_eq!(monday.week_start(), monday);
        let sunday: Day = "2026-11-29".parse().unwrap();
        assert_eq!(sunday.week_start(), monday);
    }
}
