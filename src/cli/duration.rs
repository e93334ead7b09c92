//! Durations on the command line: `N` followed by `s`, `m`, `h` or `d` (`10s`, `2m`, `1h`, `7d`).

use std::time::Duration;

/// Parses `N` + `s|m|h|d` (N a whole number, `0s` allowed), for clap's `value_parser`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration '{raw}': expected a whole number and s, m, h or d, such as 10s or 2m");
    let (digits, unit) = raw.trim().split_at(raw.trim().len().saturating_sub(1));
    let seconds_per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let seconds = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(seconds_per_unit)).ok_or_else(invalid)?;
    Ok(Duration::from_secs(seconds))
}

/// A duration of at least one second.
pub fn parse_positive_duration(raw: &str) -> Result<Duration, String> {
    match parse_duration(raw)? {
        Duration::ZERO => Err(format!("invalid duration '{raw}': it must be at least 1s")),
        duration => Ok(duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for invalid in ["", "s", "10", "10x", "10ms", "-1s", "1.5s", "+1s", "10 s", "99999999999999999999d"] {
            assert!(parse_duration(invalid).is_err(), "{invalid:?} is refused");
        }
        assert!(parse_positive_duration("0s").is_err());
        assert_eq!(parse_positive_duration("1s"), Ok(Duration::from_secs(1)));
    }
}
