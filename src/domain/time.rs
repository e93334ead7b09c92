//! Wall-clock time as Unix seconds, and its RFC 3339 rendering for v2.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Wall-clock time as Unix milliseconds (events and webhooks, API.md §8).
pub fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// [`rfc3339`] of a time in Unix milliseconds, the milliseconds dropped.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    rfc3339(unix_ms.div_euclid(1000))
}

/// `2026-11-28T10:32:53Z`: UTC, whole seconds (RFC 3339 §5.6).
///
/// Years 0000 to 9999 are written digit by digit (every response of v2 has
/// two of these); any other year goes through `time`'s RFC 3339 formatter,
/// which gives the same text where it can. A time `time` cannot represent is
/// written as the epoch.
pub fn rfc3339(unix_seconds: i64) -> String {
    let Ok(time) = OffsetDateTime::from_unix_timestamp(unix_seconds) else {
        return "1970-01-01T00:00:00Z".to_owned();
    };
    let year = time.year();
    if !(0..=9999).contains(&year) {
        return time.format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned());
    }
    let (hour, minute, second) = time.to_hms();
    let mut text = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut value = value;
        for place in (at..at + digits).rev() {
            text[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, u32::from(u8::from(time.month())), 2);
    put(8, u32::from(time.day()), 2);
    put(11, u32::from(hour), 2);
    put(14, u32::from(minute), 2);
    put(17, u32::from(second), 2);
    String::from_utf8(text.to_vec()).expect("digits and ASCII punctuation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_whole_seconds() {
        assert_eq!(rfc3339(1_764_326_000), "2025-11-28T10:33:20Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_764_326_000_999), "2025-11-28T10:33:20Z");
    }

    #[test]
    fn writes_what_the_time_crate_writes() {
        let stock = |seconds: i64| {
            let formatted = OffsetDateTime::from_unix_timestamp(seconds).ok().and_then(|t| t.format(&Rfc3339).ok());
            formatted.unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
        };
        // Year 0 to 9999, leap days, the ends of months and days, and a spread between.
        let (first, last) = (-62_167_219_200_i64, 253_402_300_799_i64);
        let mut seconds = first;
        while seconds <= last {
            assert_eq!(rfc3339(seconds), stock(seconds), "{seconds}");
            seconds += 86_399_937;
        }
        for seconds in [first, last, -1, 0, 951_782_400, 951_868_799, 1_709_164_800, 4_107_542_399] {
            assert_eq!(rfc3339(seconds), stock(seconds), "{seconds}");
        }
        for outside in [first - 1, last + 1, i64::MIN, i64::MAX] {
            assert_eq!(rfc3339(outside), stock(outside), "{outside}");
        }
    }
}
