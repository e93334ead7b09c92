//! When a failed delivery is tried again (API.md §8): after about 5 s, 1 min,
//! 10 min, 1 h, 6 h and 24 h, then it is given up.

use std::time::Duration;

/// The waits after the 1st, 2nd, ... failed attempt; after the last one fails, the delivery is given up.
pub const RETRY_SCHEDULE: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(6 * 60 * 60),
    Duration::from_secs(24 * 60 * 60),
];

/// The most attempts a delivery gets: the first and one per wait of [`RETRY_SCHEDULE`].
pub const MAX_ATTEMPTS: u32 = RETRY_SCHEDULE.len() as u32 + 1;

/// The wait before the next attempt, once `attempts` attempts (this one
/// included) have failed; `None` when that was the last.
///
/// `scale` multiplies the schedule (1.0 in production; tests shrink it, see
/// [`super::WebhookSettings::retry_scale`]). `jitter` in `[0, 1)` adds up to
/// 10 % more, so deliveries that failed together do not all come back at once;
/// a wait is never shorter than the schedule's.
pub fn retry_delay(attempts: u32, scale: f64, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = RETRY_SCHEDULE.get(index)?.mul_f64(scale.max(0.0));
    Some(base + base.mul_f64(jitter.clamp(0.0, 1.0) * 0.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_retries_then_given_up() {
        assert_eq!(retry_delay(1, 1.0, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(2, 1.0, 0.0), Some(Duration::from_secs(60)));
        assert_eq!(retry_delay(6, 1.0, 0.0), Some(Duration::from_secs(86_400)));
        assert_eq!(retry_delay(7, 1.0, 0.0), None);
        assert_eq!(retry_delay(0, 1.0, 0.0), None);
        assert_eq!(MAX_ATTEMPTS, 7);
    }

    #[test]
    fn jitter_only_lengthens_and_scale_shrinks() {
        let waited = retry_delay(1, 1.0, 0.999).unwrap();
        assert!(waited >= Duration::from_secs(5) && waited < Duration::from_millis(5_500), "{waited:?}");
        assert_eq!(retry_delay(2, 0.01, 0.0), Some(Duration::from_millis(600)));
    }
}
