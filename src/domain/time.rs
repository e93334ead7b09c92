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

/// `2026-11-28T10:32:53Z`: UTC, whole seconds.
pub fn rfc3339(unix_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
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
}
